//! Verification failures that spike: a source whose requests fail
//! verification `threshold` times within a minute fires the operational event
//! `ingest.source.verification_failing` (a hookd extension), at most once per
//! source every ten minutes. A leaked URL being probed, a provider's rotated
//! secret, a proxy that rewrites bodies: someone should look.
//!
//! Counted per node: behind a load balancer each node sees its share.

use std::collections::HashMap;
use std::sync::Mutex;

/// Failures per minute that fire the event, unless the source sets its own.
pub const DEFAULT_THRESHOLD: u32 = 10;
const WINDOW_MS: i64 = 60_000;
/// After firing, a source is quiet this long.
const QUIET_MS: i64 = 600_000;
const MAX_SOURCES: usize = 10_000;

#[derive(Default)]
pub struct FailureSpikes {
    /// source id → (window start, failures in it, last fired at).
    windows: Mutex<HashMap<String, (i64, u32, i64)>>,
}

impl FailureSpikes {
    /// Counts a failure at `now`; the failures in the window when this one
    /// reaches the threshold and the source is not quiet (fire), else `None`.
    pub fn failed(&self, source_id: &str, threshold: u32, now: i64) -> Option<u32> {
        if threshold == 0 {
            return None;
        }
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_SOURCES && !windows.contains_key(source_id) {
            windows.retain(|_, (start, _, fired)| now - *start < WINDOW_MS || now - *fired < QUIET_MS);
            if windows.len() >= MAX_SOURCES {
                return None;
            }
        }
        let (start, count, fired) = windows.entry(source_id.to_string()).or_insert((now, 0, i64::MIN / 2));
        if now - *start >= WINDOW_MS {
            (*start, *count) = (now, 0);
        }
        *count += 1;
        if *count >= threshold && now - *fired >= QUIET_MS {
            *fired = now;
            return Some(*count);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spike_fires_once_then_the_source_is_quiet() {
        let s = FailureSpikes::default();
        let fired: Vec<Option<u32>> = (0..12).map(|i| s.failed("src", 10, 1_000 + i)).collect();
        assert_eq!(fired.iter().flatten().collect::<Vec<_>>(), [&10]);
        // Failures spread out never add up to a spike.
        let fired: Vec<Option<u32>> = (0..30).map(|i| s.failed("slow", 10, i * 7_000)).collect();
        assert!(fired.iter().all(Option::is_none));
        // Quiet for ten minutes, then it may fire again.
        assert!((0..20).all(|i| s.failed("src", 10, 200_000 + i).is_none()));
        assert_eq!((0..10).filter_map(|i| s.failed("src", 10, 700_000 + i)).count(), 1);
        assert!(s.failed("off", 0, 0).is_none());
    }
}
