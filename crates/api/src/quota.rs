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
    /// Takes one message from `key`'s allowance of `rate` per second (a
    /// second's worth may come at once); `Err` says how long until the next.
    pub fn take(&self, key: &str, rate: u32) -> Result<(), Duration> {
        let rate = f64::from(rate.max(1));
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key) {
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < rate);
        }
        let b = buckets.entry(key.to_string()).or_insert(Bucket { tokens: rate, at: now });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(rate);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
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
}
