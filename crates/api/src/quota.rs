//! Ingest quotas: messages per second an application or an organisation may
//! send (`throttleRate` on the application, `--app-ingest-rate`,
//! `--org-ingest-rate`). Beyond it a message is refused with 429 and a
//! `Retry-After`, before anything is stored, so one tenant's flood cannot fill
//! the queue the others share. Counted per node: with N API nodes behind a
//! balancer a tenant gets up to N times its quota.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept at most; past it, full (idle) ones are dropped.
const MAX_BUCKETS: usize = 100_000;

#[derive(Default)]
pub struct Quotas {
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Quotas {
    /// Takes one message from each `(key, rate per second)` allowance (a
    /// second's worth may come at once), all or none: `Err((i, wait))` names the
    /// first that is used up and how long until it has room.
    pub fn take_all(&self, quotas: &[(&str, u32)]) -> Result<(), (usize, Duration)> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS {
            // Drop the full (idle) ones; a quota's rate is not kept, so one second
            // untouched is taken as full.
            buckets.retain(|_, b| now.duration_since(b.at) < Duration::from_secs(1));
        }
        for (i, (key, rate)) in quotas.iter().enumerate() {
            let rate = f64::from((*rate).max(1));
            let b = buckets.entry(key.to_string()).or_insert(Bucket { tokens: rate, at: now });
            b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(rate);
            b.at = now;
            if b.tokens < 1.0 {
                return Err((i, Duration::from_secs_f64((1.0 - b.tokens) / rate)));
            }
        }
        for (key, _) in quotas {
            if let Some(b) = buckets.get_mut(*key) {
                b.tokens -= 1.0;
            }
        }
        Ok(())
    }

    /// One allowance: [`Quotas::take_all`] with one quota.
    pub fn take(&self, key: &str, rate: u32) -> Result<(), Duration> {
        self.take_all(&[(key, rate)]).map_err(|(_, wait)| wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_of_burst_then_the_rate() {
        let q = Quotas::default();
        for _ in 0..5 {
            assert!(q.take("app:a", 5).is_ok());
        }
        let wait = q.take("app:a", 5).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(200), "{wait:?}");
        // Another key has its own allowance.
        assert!(q.take("app:b", 5).is_ok());
        std::thread::sleep(Duration::from_millis(220));
        assert!(q.take("app:a", 5).is_ok());
    }

    #[test]
    fn all_or_none() {
        let q = Quotas::default();
        assert!(q.take("org", 1).is_ok());
        // The organisation's allowance is used up: the application's is not spent.
        assert_eq!(q.take_all(&[("app", 1), ("org", 1)]).map_err(|(i, _)| i), Err(1));
        assert!(q.take("app", 1).is_ok());
    }
}
