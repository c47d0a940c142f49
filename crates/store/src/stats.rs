//! Delivery statistics: rollups of attempts per application, endpoint, event
//! type and time bucket, written with the attempts themselves (in the same
//! transaction) and kept after the attempts expire.
//!
//! A rollup row holds counts (attempts, successes, failures by class), bytes
//! sent, and two latency sketches: the attempt's response time, and for
//! scheduled attempts that succeeded, the time from accepting the message to
//! delivering it. Rows start per minute; the retention sweep folds minute rows
//! into hour rows and hour rows into day rows ([`Granularity`]). Every merge is
//! a sum, so a folded row holds exactly what its parts held.

use std::collections::BTreeMap;

/// The sketch's relative accuracy: a reported percentile is within 2% of the
/// true value (a DDSketch with γ = 1.04 over whole milliseconds).
const GAMMA: f64 = 1.04;

/// How an attempt ended, as the statistics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptClass {
    /// A 2xx response.
    Success,
    /// A 4xx response.
    Http4xx,
    /// A 5xx response.
    Http5xx,
    /// No response within the timeout.
    Timeout,
    /// The connection could not be made (refused, reset, DNS).
    Connection,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// Anything else: another status (1xx, 3xx), a request hookd could not
    /// build (a template's error, an address the SSRF guard refuses).
    Other,
}

impl AttemptClass {
    /// The class of an attempt that got a response with `status`.
    pub fn of_status(status: u16) -> AttemptClass {
        match status {
            200..=299 => AttemptClass::Success,
            400..=499 => AttemptClass::Http4xx,
            500..=599 => AttemptClass::Http5xx,
            _ => AttemptClass::Other,
        }
    }

    pub fn code(self) -> i16 {
        self as i16
    }
}

/// What the statistics need of an attempt besides what the attempt row holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptFacts {
    pub event_type: String,
    pub class: AttemptClass,
    /// Bytes of the request body sent.
    pub bytes: i64,
    /// For a scheduled attempt that succeeded: milliseconds from accepting the
    /// message to this delivery.
    pub delivered_after_ms: Option<i64>,
}

/// The width of a rollup row's time bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Granularity {
    Minute,
    Hour,
    Day,
}

impl Granularity {
    pub const fn width_ms(self) -> i64 {
        match self {
            Granularity::Minute => 60_000,
            Granularity::Hour => 3_600_000,
            Granularity::Day => 86_400_000,
        }
    }

    /// The start of the bucket holding `at_ms`.
    pub const fn bucket(self, at_ms: i64) -> i64 {
        at_ms.div_euclid(self.width_ms()) * self.width_ms()
    }
}

/// How long rows of each width are kept before they are folded into the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollupRetention {
    /// Minute rows older than this are folded into hour rows.
    pub minutes_ms: i64,
    /// Hour rows older than this are folded into day rows.
    pub hours_ms: i64,
    /// Day rows older than this are deleted (0: kept).
    pub days_ms: i64,
}

impl Default for RollupRetention {
    fn default() -> Self {
        RollupRetention { minutes_ms: 6 * 3_600_000, hours_ms: 14 * 86_400_000, days_ms: 0 }
    }
}

/// A mergeable latency histogram with logarithmic buckets (DDSketch): bucket
/// `i ≥ 1` holds values in (γ^(i-2), γ^(i-1)] milliseconds; bucket 0 holds 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sketch {
    counts: BTreeMap<u32, u64>,
}

impl Sketch {
    /// The bucket of a value in whole milliseconds.
    pub fn index(ms: i64) -> u32 {
        if ms <= 0 {
            return 0;
        }
        1 + ((ms as f64).ln() / GAMMA.ln()).ceil().max(0.0) as u32
    }

    /// The value a bucket stands for: within 2% of any value it holds.
    fn value(index: u32) -> f64 {
        if index == 0 {
            return 0.0;
        }
        2.0 * GAMMA.powi(index as i32 - 1) / (GAMMA + 1.0)
    }

    pub fn add(&mut self, ms: i64) {
        self.add_index(Self::index(ms), 1);
    }

    pub fn add_index(&mut self, index: u32, n: u64) {
        *self.counts.entry(index).or_default() += n;
    }

    pub fn merge(&mut self, other: &Sketch) {
        for (&i, &n) in &other.counts {
            self.add_index(i, n);
        }
    }

    pub fn count(&self) -> u64 {
        self.counts.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The `q`-quantile (0 ≤ q ≤ 1) in milliseconds, `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (&i, &n) in &self.counts {
            seen += n;
            if seen >= rank {
                return Some((Self::value(i) * 10.0).round() / 10.0);
            }
        }
        None
    }

    /// As stored: a JSON object of bucket index to count.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.counts.len() * 8 + 2);
        out.push('{');
        for (k, (i, n)) in self.counts.iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            out.push_str(&format!("\"{i}\":{n}"));
        }
        out.push('}');
        out
    }

    /// Reads what [`Sketch::to_json`] wrote; entries that are not an index and
    /// a count are skipped.
    pub fn from_json(text: &str) -> Sketch {
        let map: BTreeMap<String, serde_json::Value> = serde_json::from_str(text).unwrap_or_default();
        let mut s = Sketch::default();
        for (k, v) in map {
            if let (Ok(i), Some(n)) = (k.parse::<u32>(), v.as_u64()) {
                s.add_index(i, n);
            }
        }
        s
    }
}

/// Counts of one rollup row, or of many added up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rollup {
    pub attempts: u64,
    pub success: u64,
    pub fail_4xx: u64,
    pub fail_5xx: u64,
    pub fail_timeout: u64,
    pub fail_connection: u64,
    pub fail_tls: u64,
    pub fail_other: u64,
    pub bytes: u64,
    pub latency_sum_ms: u64,
    pub latency_max_ms: u64,
    /// Attempt response times.
    pub latency: Sketch,
    /// Accept-to-delivery times of scheduled attempts that succeeded.
    pub delivery: Sketch,
}

impl Rollup {
    /// Counts one attempt.
    pub fn add(&mut self, facts: &AttemptFacts, duration_ms: i64) {
        self.attempts += 1;
        match facts.class {
            AttemptClass::Success => self.success += 1,
            AttemptClass::Http4xx => self.fail_4xx += 1,
            AttemptClass::Http5xx => self.fail_5xx += 1,
            AttemptClass::Timeout => self.fail_timeout += 1,
            AttemptClass::Connection => self.fail_connection += 1,
            AttemptClass::Tls => self.fail_tls += 1,
            AttemptClass::Other => self.fail_other += 1,
        }
        let ms = duration_ms.max(0);
        self.bytes += facts.bytes.max(0) as u64;
        self.latency_sum_ms += ms as u64;
        self.latency_max_ms = self.latency_max_ms.max(ms as u64);
        self.latency.add(ms);
        if let Some(d) = facts.delivered_after_ms {
            self.delivery.add(d.max(0));
        }
    }

    pub fn merge(&mut self, o: &Rollup) {
        self.attempts += o.attempts;
        self.success += o.success;
        self.fail_4xx += o.fail_4xx;
        self.fail_5xx += o.fail_5xx;
        self.fail_timeout += o.fail_timeout;
        self.fail_connection += o.fail_connection;
        self.fail_tls += o.fail_tls;
        self.fail_other += o.fail_other;
        self.bytes += o.bytes;
        self.latency_sum_ms += o.latency_sum_ms;
        self.latency_max_ms = self.latency_max_ms.max(o.latency_max_ms);
        self.latency.merge(&o.latency);
        self.delivery.merge(&o.delivery);
    }

    pub fn failures(&self) -> u64 {
        self.attempts - self.success
    }
}

/// Where a rollup row belongs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RollupKey {
    pub org_id: String,
    pub app_id: String,
    pub endpoint_id: String,
    pub event_type: String,
    pub width_ms: i64,
    pub bucket_start: i64,
}

/// A statistics read: the rollups of one application (or one of its
/// endpoints), for some event types (all when empty), added up per `period_ms`
/// slot (aligned to the epoch) and event type, over rows whose bucket starts in
/// [since, until).
#[derive(Debug, Clone)]
pub struct StatsQuery {
    pub org_id: String,
    pub app_id: String,
    pub endpoint_id: Option<String>,
    pub event_types: Vec<String>,
    pub since: i64,
    pub until: i64,
    pub period_ms: i64,
}

/// One slot of a statistics read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsRow {
    /// The slot's start (a multiple of the period).
    pub slot_start: i64,
    pub event_type: String,
    pub rollup: Rollup,
}

/// Deliveries waiting now, for one application or endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueNow {
    /// Scheduled or leased.
    pub depth: u64,
    /// Waiting because their endpoint is disabled.
    pub paused: u64,
    /// When the oldest scheduled or leased delivery's message was accepted.
    pub oldest_created_at: Option<i64>,
}

/// One application's attempts in a recent window and in the baseline before
/// it (from minute rollups), for spike detection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppTraffic {
    pub org_id: String,
    pub app_id: String,
    pub recent_attempts: u64,
    pub recent_failures: u64,
    pub base_attempts: u64,
    pub base_failures: u64,
}

/// Adds attempts into rollup rows by minute; attempts without facts (statistics
/// off) are left out.
pub fn minute_rollups<'a>(attempts: impl IntoIterator<Item = &'a crate::Attempt>) -> BTreeMap<RollupKey, Rollup> {
    let mut out: BTreeMap<RollupKey, Rollup> = BTreeMap::new();
    for a in attempts {
        let Some(f) = &a.facts else { continue };
        let key = RollupKey {
            org_id: a.org_id.clone(),
            app_id: a.app_id.clone(),
            endpoint_id: a.endpoint_id.clone(),
            event_type: f.event_type.clone(),
            width_ms: Granularity::Minute.width_ms(),
            bucket_start: Granularity::Minute.bucket(a.created_at),
        };
        out.entry(key).or_default().add(f, a.response_duration_ms);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_two_percent() {
        let mut s = Sketch::default();
        let values: Vec<i64> = (1..=10_000).map(|i| (i * 37) % 5_000 + 1).collect();
        for &v in &values {
            s.add(v);
        }
        let mut sorted = values.clone();
        sorted.sort();
        for q in [0.5, 0.9, 0.99, 1.0] {
            let exact = sorted[((q * sorted.len() as f64).ceil() as usize).max(1) - 1] as f64;
            let got = s.quantile(q).unwrap();
            assert!((got - exact).abs() <= exact * 0.02 + 0.05, "q{q}: {got} vs {exact}");
        }
        assert_eq!(Sketch::default().quantile(0.5), None);
    }

    #[test]
    fn sketches_merge_exactly_and_survive_json() {
        let (mut a, mut b, mut all) = (Sketch::default(), Sketch::default(), Sketch::default());
        for v in 0..500 {
            a.add(v);
            all.add(v);
        }
        for v in 300..2_000 {
            b.add(v);
            all.add(v);
        }
        a.merge(&b);
        assert_eq!(a, all);
        assert_eq!(Sketch::from_json(&a.to_json()), a);
        assert_eq!(Sketch::from_json("{\"x\":1,\"3\":\"no\",\"4\":2}").count(), 2);
    }

    #[test]
    fn buckets_align_to_their_width() {
        assert_eq!(Granularity::Minute.bucket(125_000), 120_000);
        assert_eq!(Granularity::Hour.bucket(3_600_000 * 5 + 1), 3_600_000 * 5);
        assert_eq!(Granularity::Day.bucket(-1), -86_400_000);
    }
}
