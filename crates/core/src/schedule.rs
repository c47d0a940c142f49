//! The retry schedule: the delays between attempts after the first, which is
//! immediate. Seven delays mean eight attempts in all.

use std::time::Duration;

/// The Svix default: 5s, 5m, 30m, 2h, 5h, 10h, 10h.
pub const DEFAULT_SCHEDULE: &str = "5s,5m,30m,2h,5h,10h,10h";
/// Each delay is spread by up to this fraction either way so that failures that
/// happened together do not retry together.
const JITTER: f64 = 0.2;
/// Most delays in a schedule, and the longest one.
pub const MAX_STEPS: usize = 50;
pub const MAX_DELAY_MS: u64 = 7 * 86_400_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid retry schedule `{0}`: expected comma-separated durations like 5s,5m,2h (at most 50, each at most 7d)")]
pub struct ScheduleError(String);

impl RetrySchedule {
    /// Parses `5s,5m,30m,2h`. Units: ms, s, m, h, d. An empty string means no retries.
    pub fn parse(s: &str) -> Result<Self, ScheduleError> {
        let err = || ScheduleError(s.to_string());
        let s = s.trim();
        if s.is_empty() {
            return Ok(RetrySchedule { delays: Vec::new() });
        }
        let delays =
            s.split(',').map(|part| parse_duration(part.trim()).ok_or_else(err)).collect::<Result<Vec<_>, _>>()?;
        if delays.len() > MAX_STEPS || delays.iter().any(|d| *d > Duration::from_millis(MAX_DELAY_MS)) {
            return Err(err());
        }
        Ok(RetrySchedule { delays })
    }

    /// A schedule of delays in milliseconds, with the same bounds as [`RetrySchedule::parse`].
    pub fn from_millis(delays: &[u64]) -> Result<Self, ScheduleError> {
        if delays.len() > MAX_STEPS || delays.iter().any(|d| *d > MAX_DELAY_MS) {
            let shown: Vec<String> = delays.iter().map(|d| format!("{d}ms")).collect();
            return Err(ScheduleError(shown.join(",")));
        }
        Ok(RetrySchedule { delays: delays.iter().map(|d| Duration::from_millis(*d)).collect() })
    }

    /// Total attempts, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.delays.len() as u32 + 1
    }

    /// The delay before the next attempt, given how many were made so far, with
    /// jitter; `None` when the schedule is exhausted.
    pub fn next_delay(&self, attempts_made: u32) -> Option<Duration> {
        let base = *self.delays.get(attempts_made.checked_sub(1)? as usize)?;
        let factor = 1.0 + JITTER * (2.0 * rand::random::<f64>() - 1.0);
        Some(base.mul_f64(factor))
    }

    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self::parse(DEFAULT_SCHEDULE).expect("default schedule parses")
    }
}

/// `250ms`, `5s`, `5m`, `2h`, `1d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "s" => n.checked_mul(1_000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_has_eight_attempts() {
        let s = RetrySchedule::default();
        assert_eq!(s.max_attempts(), 8);
        assert_eq!(s.delays()[0], Duration::from_secs(5));
        assert_eq!(s.delays()[6], Duration::from_secs(36_000));
    }

    #[test]
    fn next_delay_follows_the_schedule_with_bounded_jitter() {
        let s = RetrySchedule::parse("10s,100s").unwrap();
        assert_eq!(s.next_delay(0), None);
        for _ in 0..1000 {
            let d = s.next_delay(1).unwrap();
            assert!(d >= Duration::from_secs(8) && d <= Duration::from_secs(12), "{d:?}");
            let d = s.next_delay(2).unwrap();
            assert!(d >= Duration::from_secs(80) && d <= Duration::from_secs(120), "{d:?}");
        }
        assert_eq!(s.next_delay(3), None);
    }

    #[test]
    fn parses_and_rejects() {
        let table = [
            ("5s,5m", Some(vec![5_000, 300_000])),
            ("100ms, 1h ,1d", Some(vec![100, 3_600_000, 86_400_000])),
            ("", Some(vec![])),
            ("5", None),
            ("5x", None),
            ("s", None),
            ("5s,,5s", None),
            ("8d", None),
        ];
        for (input, want) in table {
            let got = RetrySchedule::parse(input)
                .ok()
                .map(|s| s.delays().iter().map(|d| d.as_millis() as u64).collect::<Vec<_>>());
            assert_eq!(got, want, "{input}");
        }
    }
}
