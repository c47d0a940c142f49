//! An endpoint's figures as charts (SVG without inline styles, which the CSP
//! forbids; each with its numbers as text for screen readers): deliveries by
//! state, and its recent attempts over time with latency percentiles.

use hookd_core::timefmt::parse_rfc3339_millis;
use maud::{html, Markup};
use serde_json::Value;

/// Bars of the attempts-over-time chart.
const BUCKETS: usize = 12;

/// The endpoint's deliveries by state, as bars (SVG: no inline styles, which
/// the CSP forbids), with the numbers as text for screen readers.
pub fn stats_chart(stats: &Value) -> Markup {
    let rows = [
        ("succeeded", "success", "#116329"),
        ("failed", "fail", "#a40e26"),
        ("sending", "sending", "#0b57d0"),
        ("pending", "pending", "#6e7781"),
    ];
    let max = rows.iter().map(|(_, k, _)| stats[*k].as_u64().unwrap_or(0)).max().unwrap_or(0).max(1);
    html! {
        h2 { "Deliveries" }
        figure {
            svg width="420" height=(rows.len() * 26 + 4) role="img" aria-labelledby="stats-caption" {
                @for (i, (label, key, colour)) in rows.iter().enumerate() {
                    @let n = stats[*key].as_u64().unwrap_or(0);
                    text x="0" y=(i * 26 + 17) font-size="13" { (label) }
                    rect x="90" y=(i * 26 + 4) height="18" width=(n.saturating_mul(260) / max) fill=(colour) {}
                    text x=(94 + n.saturating_mul(260) / max) y=(i * 26 + 17) font-size="13" { (n) }
                }
            }
            figcaption id="stats-caption" {
                @for (label, key, _) in rows { (label) ": " (stats[key].as_u64().unwrap_or(0)) ". " }
            }
        }
    }
}

/// A bar's width in words: `250 ms`, `12 s`, `5 min`, `3 h`.
fn duration(ms: i64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{} s", ms / 1_000)
    } else if ms < 3_600_000 {
        format!("{} min", ms / 60_000)
    } else {
        format!("{} h", ms / 3_600_000)
    }
}

/// The `p`th percentile (0–100) of sorted `values`, nearest rank.
fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// One bar: its start, successes, failures and median latency.
struct Bucket {
    start: i64,
    ok: u64,
    failed: u64,
    p50: Option<i64>,
}

fn buckets(attempts: &[(i64, bool, i64)]) -> (Vec<Bucket>, i64) {
    let (Some(first), Some(last)) = (attempts.iter().map(|a| a.0).min(), attempts.iter().map(|a| a.0).max()) else {
        return (Vec::new(), 0);
    };
    let width = ((last - first) / BUCKETS as i64 + 1).max(1);
    let mut out: Vec<Bucket> =
        (0..BUCKETS).map(|i| Bucket { start: first + i as i64 * width, ok: 0, failed: 0, p50: None }).collect();
    let mut latencies: Vec<Vec<i64>> = vec![Vec::new(); BUCKETS];
    for (at, ok, ms) in attempts {
        let i = (((at - first) / width) as usize).min(BUCKETS - 1);
        if *ok {
            out[i].ok += 1;
        } else {
            out[i].failed += 1;
        }
        latencies[i].push(*ms);
    }
    for (b, mut l) in out.iter_mut().zip(latencies) {
        l.sort_unstable();
        b.p50 = percentile(&l, 50);
    }
    (out, width)
}

/// The endpoint's recent attempts (an API list answer, newest first): successes
/// and failures over time, and latency percentiles.
pub fn attempts_chart(list: &Value) -> Markup {
    let attempts: Vec<(i64, bool, i64)> = list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let at = parse_rfc3339_millis(a["timestamp"].as_str()?)?;
            Some((at, a["status"] == 0, a["responseDurationMs"].as_i64().unwrap_or(0)))
        })
        .collect();
    if attempts.is_empty() {
        return html! {};
    }
    let mut all: Vec<i64> = attempts.iter().map(|a| a.2).collect();
    all.sort_unstable();
    let (bars, width) = buckets(&attempts);
    let max = bars.iter().map(|b| b.ok + b.failed).max().unwrap_or(1).max(1);
    let failed: u64 = bars.iter().map(|b| b.failed).sum();
    let span = |ms: i64| hookd_core::timefmt::format_millis(ms);
    let (h, bar_w) = (120u64, 30usize);
    html! {
        h2 { "Recent attempts over time" }
        figure {
            svg width=(BUCKETS * (bar_w + 6) + 10) height=(h + 24) role="img" aria-labelledby="attempts-caption" {
                @for (i, b) in bars.iter().enumerate() {
                    @let ok_h = b.ok * h / max;
                    @let fail_h = b.failed * h / max;
                    @let x = 5 + i * (bar_w + 6);
                    rect x=(x) y=(h - ok_h) width=(bar_w) height=(ok_h) fill="#116329" {
                        title { (span(b.start)) ": " (b.ok) " succeeded, " (b.failed) " failed" }
                    }
                    rect x=(x) y=(h - ok_h - fail_h) width=(bar_w) height=(fail_h) fill="#a40e26" {}
                    @if let Some(p) = b.p50 { text x=(x) y=(h + 16) font-size="10" { (p) "ms" } }
                }
            }
            figcaption id="attempts-caption" {
                "The last " (attempts.len()) " attempts, from " (span(attempts.iter().map(|a| a.0).min().unwrap_or(0)))
                ", in bars of " (duration(width)) ": " (attempts.len() as u64 - failed) " succeeded (green), "
                (failed) " failed (red); under each bar its median latency."
            }
        }
        table class="compact" {
            caption { "Latency of these attempts" }
            thead { tr { th scope="col" { "p50" } th scope="col" { "p90" } th scope="col" { "p99" } th scope="col" { "max" } } }
            tbody {
                tr {
                    @for p in [50, 90, 99, 100] { td { (percentile(&all, p).unwrap_or(0)) " ms" } }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!((percentile(&v, 50), percentile(&v, 99), percentile(&v, 100)), (Some(50), Some(99), Some(100)));
        assert_eq!(percentile(&[7], 90), Some(7));
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(
            (duration(1), duration(12_500), duration(300_000), duration(7_200_000)),
            ("1 ms".into(), "12 s".into(), "5 min".into(), "2 h".into())
        );
    }

    #[test]
    fn attempts_fall_into_their_time_buckets() {
        let attempts = [(0, true, 10), (1_000, false, 30), (11_999, true, 20), (12_000, true, 40)];
        let (bars, width) = buckets(&attempts);
        assert_eq!((bars.len(), width), (BUCKETS, 1_001));
        assert_eq!((bars[0].ok, bars[0].failed, bars[0].p50), (1, 1, Some(10)));
        assert_eq!((bars[11].ok, bars[11].p50), (2, Some(20)));
        let list = json!({"data": [{"timestamp": "2026-12-05T08:00:00.000Z", "status": 2, "responseDurationMs": 12}]});
        let html = attempts_chart(&list).into_string();
        assert!(html.contains("0 succeeded") && html.contains("1 failed") && html.contains("12 ms"), "{html}");
    }
}
