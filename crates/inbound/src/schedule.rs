//! Sources that run on a schedule instead of receiving: `cron` emits a fixed
//! payload when its cron expression fires; `poll` fetches a provider's status
//! URL every interval and feeds each item in as if the provider had sent it
//! (for providers whose callbacks are lost or late).

use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

/// Checks a five-field cron expression (minute hour day-of-month month
/// day-of-week; `*`, `*/n`, `a-b`, `a-b/n` and lists).
pub fn check_cron(expr: &str) -> Result<(), String> {
    let cron = Cron::parse(expr)?;
    // A schedule that never fires (`0 0 31 2 *`) is a mistake.
    match cron.next_after(0) {
        Some(_) => Ok(()),
        None => Err(format!("{expr:?} never fires")),
    }
}

/// A parsed cron schedule: which minutes, hours, days, months and weekdays match.
#[derive(Debug, Clone)]
pub struct Cron {
    fields: [u64; 5],
    /// Day-of-month and day-of-week both restricted: a day matches either (as cron has it).
    either_day: bool,
}

const CRON_RANGES: [(u32, u32); 5] = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];

/// How far ahead the next firing is looked for (a leap day fires every four years).
const LOOKAHEAD_DAYS: i64 = 366 * 8;

impl Cron {
    pub fn parse(expr: &str) -> Result<Cron, String> {
        let parts: Vec<&str> = expr.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!("{expr:?}: five fields (minute hour day month weekday)"));
        }
        let mut fields = [0u64; 5];
        for (i, part) in parts.iter().enumerate() {
            let (lo, hi) = CRON_RANGES[i];
            for item in part.split(',') {
                let (range, step) = match item.split_once('/') {
                    Some((r, s)) => {
                        (r, s.parse::<u32>().ok().filter(|s| *s > 0).ok_or_else(|| format!("bad step in {item:?}"))?)
                    }
                    None => (item, 1),
                };
                let (a, b) = if range == "*" {
                    (lo, hi)
                } else if let Some((a, b)) = range.split_once('-') {
                    (num(a, lo, hi)?, num(b, lo, hi)?)
                } else {
                    let a = num(range, lo, hi)?;
                    (a, if step > 1 { hi } else { a })
                };
                if a > b {
                    return Err(format!("{item:?}: the range runs backwards"));
                }
                let mut v = a;
                while v <= b {
                    fields[i] |= 1 << v;
                    v += step;
                }
            }
        }
        // Sunday is 0 or 7.
        if fields[4] & (1 << 7) != 0 {
            fields[4] |= 1;
        }
        let either_day = !parts[2].starts_with('*') && !parts[4].starts_with('*');
        Ok(Cron { fields, either_day })
    }

    fn has(&self, field: usize, v: u32) -> bool {
        self.fields[field] & (1 << v) != 0
    }

    fn day_matches(&self, t: OffsetDateTime) -> bool {
        let dom = self.has(2, u32::from(t.day()));
        let dow = self.has(4, u32::from(t.weekday().number_days_from_sunday()));
        if self.either_day {
            dom || dow
        } else {
            dom && dow
        }
    }

    /// Whether the schedule fires in the minute starting at `unix_secs` (UTC).
    pub fn matches(&self, unix_secs: i64) -> bool {
        let t = OffsetDateTime::from_unix_timestamp(unix_secs).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        self.has(0, u32::from(t.minute()))
            && self.has(1, u32::from(t.hour()))
            && self.has(3, u32::from(u8::from(t.month())))
            && self.day_matches(t)
    }

    /// The start (unix seconds) of the first minute after `unix_secs` in which
    /// the schedule fires; `None` if it does not within eight years.
    pub fn next_after(&self, unix_secs: i64) -> Option<i64> {
        let start = OffsetDateTime::from_unix_timestamp(unix_secs.div_euclid(60) * 60 + 60).ok()?;
        let limit = start + Duration::days(LOOKAHEAD_DAYS);
        let mut t = start;
        while t < limit {
            if !self.has(3, u32::from(u8::from(t.month()))) || !self.day_matches(t) {
                // The next day at 00:00.
                t = t.replace_time(time::Time::MIDNIGHT) + Duration::days(1);
            } else if !self.has(1, u32::from(t.hour())) {
                t = t.replace_time(time::Time::from_hms(t.hour(), 0, 0).ok()?) + Duration::hours(1);
            } else if !self.has(0, u32::from(t.minute())) {
                t += Duration::minutes(1);
            } else {
                return Some(t.unix_timestamp());
            }
        }
        None
    }
}

fn num(s: &str, lo: u32, hi: u32) -> Result<u32, String> {
    s.parse::<u32>().ok().filter(|n| (lo..=hi).contains(n)).ok_or_else(|| format!("{s:?} is not in {lo}-{hi}"))
}

/// What a `poll` source fetches, how often, and how it reads the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollConfig {
    pub url: String,
    pub interval_secs: u32,
    /// Headers sent with each GET (API keys: never shown again).
    pub headers: Vec<(String, String)>,
    /// `Authorization: Bearer …`.
    pub bearer_token: Option<String>,
    /// HTTP basic authentication.
    pub basic: Option<(String, String)>,
    /// Where the list of items is in the answer; empty: the answer is the list.
    pub items_pointer: String,
    /// Where each item's id is (the dedupe key, with its status when tracked).
    pub id_pointer: String,
    /// The largest answer read.
    pub max_bytes: u32,
    /// Feed the items into this source (id or uid) instead: the one that
    /// receives the provider's callbacks, so both share dedupe, tracked
    /// objects and endpoints.
    pub target_source: Option<String>,
}

pub const POLL_MIN_INTERVAL_SECS: u32 = 10;
pub const POLL_MAX_INTERVAL_SECS: u32 = 86_400;
/// Items taken from one answer at most.
pub const POLL_MAX_ITEMS: usize = 1000;

impl PollConfig {
    pub fn parse(c: &Map<String, Value>) -> Result<PollConfig, String> {
        let text = |field: &str| -> Result<Option<String>, String> {
            match c.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.len() <= 4096 => Ok(Some(s.clone())),
                Some(_) => Err(format!("config.{field}: a string of at most 4096 characters")),
            }
        };
        let url = text("url")?.ok_or("config.url is required for this type")?;
        let parsed = url::Url::parse(&url).map_err(|e| format!("config.url: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("config.url: an http or https URL".into());
        }
        let number = |field: &str, default: u32, lo: u32, hi: u32| -> Result<u32, String> {
            match c.get(field) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v
                    .as_u64()
                    .filter(|n| (u64::from(lo)..=u64::from(hi)).contains(n))
                    .map(|n| n as u32)
                    .ok_or_else(|| format!("config.{field}: a whole number from {lo} to {hi}")),
            }
        };
        let interval_secs = number("intervalSeconds", 60, POLL_MIN_INTERVAL_SECS, POLL_MAX_INTERVAL_SECS)?;
        let max_bytes = number("maxBytes", 1 << 20, 1, crate::settings::MAX_BODY_LIMIT)?;
        let pointer = |field: &str, value: &str| -> Result<(), String> {
            if (!value.is_empty() && !value.starts_with('/')) || value.len() > 256 {
                return Err(format!("config.{field}: a JSON pointer such as /data (at most 256 characters)"));
            }
            Ok(())
        };
        let items_pointer = text("itemsPointer")?.unwrap_or_default();
        pointer("itemsPointer", &items_pointer)?;
        let id_pointer =
            text("idPointer")?.filter(|p| !p.is_empty()).ok_or("config.idPointer is required (e.g. /id)")?;
        pointer("idPointer", &id_pointer)?;
        let mut headers = Vec::new();
        match c.get("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(h)) if h.len() <= 20 => {
                for (name, value) in h {
                    crate::hmac::check_header_name("headers", name)?;
                    let value = value.as_str().filter(|v| v.len() <= 4096 && !v.chars().any(char::is_control));
                    let value =
                        value.ok_or_else(|| format!("config.headers.{name}: a string without control characters"))?;
                    headers.push((name.to_ascii_lowercase(), value.to_string()));
                }
            }
            Some(_) => return Err("config.headers: an object of at most 20 header names and values".into()),
        }
        let basic = match (text("username")?, text("password")?) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            _ => return Err("config.username and config.password go together".into()),
        };
        Ok(PollConfig {
            url,
            interval_secs,
            headers,
            bearer_token: text("bearerToken")?,
            basic,
            items_pointer,
            id_pointer,
            max_bytes,
            target_source: text("targetSource")?,
        })
    }

    /// The items of an answer: the array at `itemsPointer` (a single object
    /// there is one item).
    pub fn items(&self, answer: &Value) -> Result<Vec<Value>, String> {
        let at = if self.items_pointer.is_empty() { Some(answer) } else { answer.pointer(&self.items_pointer) };
        match at {
            Some(Value::Array(items)) => Ok(items.iter().take(POLL_MAX_ITEMS).cloned().collect()),
            Some(item @ Value::Object(_)) => Ok(vec![item.clone()]),
            Some(_) => Err(format!("{:?} in the answer is not a list", self.items_pointer)),
            None => Err(format!("the answer has nothing at {:?}", self.items_pointer)),
        }
    }

    /// An item's id, as its dedupe key is made of.
    pub fn item_id(&self, item: &Value) -> Option<String> {
        match item.pointer(&self.id_pointer)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cron_schedules_match_their_minutes() {
        // 1_700_000_100 is 22:15:00 UTC.
        let every_15 = Cron::parse("*/15 * * * *").unwrap();
        assert!(every_15.matches(1_700_000_100));
        assert!(!every_15.matches(1_700_000_100 + 60));
        // 2023-11-14 is a Tuesday (2).
        assert!(Cron::parse("0 22 * * 2").unwrap().matches(1_700_000_000 - 1_700_000_000 % 3600));
        assert!(Cron::parse("61 * * * *").is_err());
        assert!(Cron::parse("* * *").is_err());
    }

    #[test]
    fn the_next_firing_is_the_first_matching_minute_after() {
        let at = 1_700_000_100; // Tue 2023-11-14 22:15:00 UTC
        assert_eq!(Cron::parse("*/15 * * * *").unwrap().next_after(at), Some(at + 15 * 60));
        assert_eq!(Cron::parse("* * * * *").unwrap().next_after(at + 30), Some(at + 60));
        // 09:30 on the next weekday: Wednesday the 15th.
        let weekday = Cron::parse("30 9 * * 1-5").unwrap().next_after(at).unwrap();
        assert_eq!(weekday, 1_700_040_600);
        // The 1st of the month or any Monday: Monday the 20th comes first.
        let either = Cron::parse("0 0 1 * 1").unwrap().next_after(at).unwrap();
        assert_eq!(either, 1_700_438_400);
        // 29 February: 2024.
        let leap = Cron::parse("0 12 29 2 *").unwrap().next_after(at).unwrap();
        assert_eq!(leap, 1_709_208_000);
        assert!(check_cron("0 0 31 2 *").unwrap_err().contains("never fires"));
    }

    #[test]
    fn poll_configs_are_checked_and_read_their_items() {
        let c = json!({"url": "https://api.example.com/messages", "idPointer": "/sid", "itemsPointer": "/messages",
                       "headers": {"X-Api-Key": "k"}, "intervalSeconds": 30});
        let p = PollConfig::parse(c.as_object().unwrap()).unwrap();
        assert_eq!((p.interval_secs, p.headers[0].0.as_str()), (30, "x-api-key"));
        let answer = json!({"messages": [{"sid": "SM1"}, {"sid": 7}, {"nope": 1}]});
        let items = p.items(&answer).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(
            items.iter().map(|i| p.item_id(i)).collect::<Vec<_>>(),
            [Some("SM1".into()), Some("7".into()), None]
        );
        assert!(p.items(&json!({"other": []})).unwrap_err().contains("nothing at"));
        for (bad, why) in [
            (json!({"url": "ftp://x", "idPointer": "/id"}), "http or https"),
            (json!({"url": "https://x"}), "idPointer"),
            (json!({"url": "https://x", "idPointer": "/id", "intervalSeconds": 1}), "intervalSeconds"),
            (json!({"url": "https://x", "idPointer": "/id", "username": "u"}), "go together"),
        ] {
            assert!(PollConfig::parse(bad.as_object().unwrap()).unwrap_err().contains(why), "{bad}");
        }
    }
}
