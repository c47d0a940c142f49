//! The compliance trail's digest chain (docs/operations.md, "Compliance
//! trail"). An export is a sequence of records, one per line (JSON lines or
//! CSV); every record carries `prev`, the SHA-256 (hex) of the previous line's
//! exact bytes (64 zeros for the first), and the last record is an `end` record
//! with the count of records before it. Removing, reordering or changing a line
//! breaks the next line's `prev`; cutting the end off loses the `end` record;
//! and the export's final digest (of the `end` line) is kept in the audit
//! trail, so a forged tail does not match it either.

use sha2::{Digest, Sha256};

/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The SHA-256 of a line (without its newline), in hex.
pub fn digest(line: &[u8]) -> String {
    let d = Sha256::digest(line);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// What checking a trail found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Intact: `records` records before the end record, ending in `digest`
    /// (the end line's own digest, as the audit trail holds it); `complete`
    /// is false when the export stopped at its limit.
    Intact { records: u64, digest: String, complete: bool },
    /// Broken at line `line` (1-based), saying why.
    Broken { line: usize, why: String },
}

/// The format of a trail file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    JsonLines,
    Csv,
}

/// The `prev` and `type` of a line: a JSON object's fields, or a CSV row's
/// first (`type`) and last (`prev`) columns. CSV fields are quoted when they
/// hold a comma, quote or newline, so the last column is after the last comma.
fn fields(format: Format, line: &str) -> Option<(String, String)> {
    match format {
        Format::JsonLines => {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            Some((v["type"].as_str()?.to_string(), v["prev"].as_str()?.to_string()))
        }
        Format::Csv => {
            let kind = line.split(',').next()?.to_string();
            let prev = line.rsplit(',').next()?.to_string();
            Some((kind, prev))
        }
    }
}

/// Checks a trail's lines (a CSV trail's first line is its header, outside the chain).
pub fn verify(format: Format, text: &str) -> Verdict {
    let mut lines = text.lines().enumerate().peekable();
    if format == Format::Csv {
        lines.next();
    }
    let mut prev = GENESIS.to_string();
    for (records, (i, line)) in lines.enumerate() {
        let records = records as u64;
        let n = i + 1;
        let Some((kind, claimed)) = fields(format, line) else {
            return Verdict::Broken { line: n, why: "not a trail record".into() };
        };
        if claimed != prev {
            return Verdict::Broken { line: n, why: format!("prev is {claimed}, the line before hashes to {prev}") };
        }
        prev = digest(line.as_bytes());
        if kind == "end" {
            let (count, complete) = match format {
                Format::JsonLines => {
                    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
                    (v["count"].as_u64(), v["complete"].as_bool().unwrap_or(false))
                }
                Format::Csv => {
                    (line.split(',').nth(1).and_then(|c| c.parse().ok()), line.rsplit(',').nth(1) == Some("true"))
                }
            };
            if count != Some(records) {
                return Verdict::Broken {
                    line: n,
                    why: format!("the end record counts {count:?}, the trail holds {records}"),
                };
            }
            if let Some(extra) = text.lines().nth(i + 1) {
                let _ = extra;
                return Verdict::Broken { line: n + 1, why: "lines after the end record".into() };
            }
            return Verdict::Intact { records, digest: prev, complete };
        }
    }
    Verdict::Broken { line: text.lines().count() + 1, why: "no end record: the trail is cut short".into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(lines: &[&str]) -> String {
        let mut prev = GENESIS.to_string();
        let mut out = String::new();
        for l in lines {
            let line = l.replace("PREV", &prev);
            prev = digest(line.as_bytes());
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    #[test]
    fn an_intact_trail_verifies_and_any_change_is_found() {
        let text = chain(&[
            r#"{"type":"message","id":"msg_1","prev":"PREV"}"#,
            r#"{"type":"attempt","id":"atmpt_1","prev":"PREV"}"#,
            r#"{"type":"end","count":2,"prev":"PREV"}"#,
        ]);
        assert!(matches!(verify(Format::JsonLines, &text), Verdict::Intact { records: 2, .. }));
        let lines: Vec<&str> = text.lines().collect();
        let removed = format!("{}\n{}\n", lines[0], lines[2]);
        assert!(matches!(verify(Format::JsonLines, &removed), Verdict::Broken { line: 2, .. }));
        let changed = text.replace("atmpt_1", "atmpt_2");
        assert!(matches!(verify(Format::JsonLines, &changed), Verdict::Broken { line: 3, .. }));
        let cut = format!("{}\n{}\n", lines[0], lines[1]);
        assert!(matches!(verify(Format::JsonLines, &cut), Verdict::Broken { .. }));
        let appended = format!("{text}{}\n", lines[1]);
        assert!(matches!(verify(Format::JsonLines, &appended), Verdict::Broken { line: 4, .. }));
    }

    #[test]
    fn csv_trails_chain_too() {
        let text = format!("type,count,complete,prev\n{}", chain(&["message,\"a, b\",,PREV", "end,1,true,PREV"]));
        let v = verify(Format::Csv, &text);
        assert!(matches!(v, Verdict::Intact { records: 1, complete: true, .. }), "{v:?}");
    }
}
