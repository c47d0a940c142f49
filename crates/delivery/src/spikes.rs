//! Spike detection: every `interval`, a delivering node reads each
//! application's attempts of the last 5 minutes and of the hour before from the
//! statistics rollups, and raises an operational webhook for
//!
//! - a **failure spike** (`application.failure_spike`, a mass outage): at least
//!   20 failed attempts and half of all attempts failing in the window, at four
//!   times the failure rate of the hour before;
//! - an **ingest spike** (`application.ingest_spike`, a runaway producer):
//!   at least 100 attempts in the window, at five times the rate of the hour
//!   before (which must have had traffic).
//!
//! Each is raised once per application per hour: a conditional write in the
//! store lets exactly one node send it.

use std::sync::Arc;
use std::time::Duration;

use hookd_core::timefmt::now_millis;
use hookd_store::{AppTraffic, Queue, Resources};
use serde_json::json;

use crate::operational::Operational;

const WINDOW_MS: i64 = 5 * 60_000;
const BASELINE_MS: i64 = 60 * 60_000;
const QUIET_MS: i64 = 60 * 60_000;

/// What a window's traffic amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spike {
    Failure,
    Ingest,
}

impl Spike {
    pub fn event_type(self) -> &'static str {
        match self {
            Spike::Failure => "application.failure_spike",
            Spike::Ingest => "application.ingest_spike",
        }
    }
}

/// The spikes in `t` (window of 5 minutes, baseline of the 60 before).
pub fn spikes(t: &AppTraffic) -> Vec<Spike> {
    let per_min = |n: u64, ms: i64| n as f64 / (ms as f64 / 60_000.0);
    let mut out = Vec::new();
    let failing = t.recent_failures >= 20 && t.recent_failures * 2 >= t.recent_attempts;
    if failing && per_min(t.recent_failures, WINDOW_MS) >= 4.0 * per_min(t.base_failures, BASELINE_MS) {
        out.push(Spike::Failure);
    }
    if t.recent_attempts >= 100
        && t.base_attempts > 0
        && per_min(t.recent_attempts, WINDOW_MS) >= 5.0 * per_min(t.base_attempts, BASELINE_MS)
    {
        out.push(Spike::Ingest);
    }
    out
}

pub struct SpikeWatch {
    pub queue: Arc<dyn Queue>,
    pub resources: Arc<dyn Resources>,
    pub ops: Operational,
    pub interval: Duration,
}

impl SpikeWatch {
    pub async fn run(self) {
        loop {
            tokio::time::sleep(self.interval).await;
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "looking for traffic spikes failed; trying again later");
            }
        }
    }

    async fn round(&self) -> hookd_store::Result<()> {
        let now = now_millis();
        // Whole minutes: the current one is in the window.
        let recent_since = (now / 60_000) * 60_000 - WINDOW_MS + 60_000;
        for t in self.queue.app_traffic(recent_since - BASELINE_MS, recent_since).await? {
            for spike in spikes(&t) {
                if !self.queue.claim_alert(&t.org_id, &t.app_id, spike.event_type(), now, QUIET_MS).await? {
                    continue;
                }
                tracing::warn!(app = %t.app_id, kind = spike.event_type(), "traffic spike");
                let uid = self.resources.get_app(&t.org_id, &t.app_id).await.ok().and_then(|a| a.uid);
                let data = json!({
                    "appId": t.app_id,
                    "appUid": uid,
                    "windowSeconds": WINDOW_MS / 1000,
                    "attempts": t.recent_attempts,
                    "failures": t.recent_failures,
                    "baselineSeconds": BASELINE_MS / 1000,
                    "baselineAttempts": t.base_attempts,
                    "baselineFailures": t.base_failures,
                });
                self.ops.emit(&t.org_id, spike.event_type(), data).await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(recent_attempts: u64, recent_failures: u64, base_attempts: u64, base_failures: u64) -> AppTraffic {
        AppTraffic { recent_attempts, recent_failures, base_attempts, base_failures, ..Default::default() }
    }

    #[test]
    fn spikes_need_numbers_a_share_and_a_rise() {
        // A mass outage after a quiet hour.
        assert_eq!(spikes(&t(40, 30, 480, 5)), [Spike::Failure]);
        // Too few failures, or too small a share.
        assert!(spikes(&t(40, 19, 480, 0)).is_empty());
        assert!(spikes(&t(100, 40, 1_200, 0)).is_empty());
        // Failing as much as the hour before: not a spike.
        assert!(spikes(&t(40, 30, 480, 360)).is_empty());
        // A runaway producer: 1,000 in 5 minutes after 600 an hour.
        assert_eq!(spikes(&t(1_000, 0, 600, 0)), [Spike::Ingest]);
        // Steady heavy traffic, or a first hour without a baseline.
        assert!(spikes(&t(1_000, 0, 12_000, 0)).is_empty());
        assert!(spikes(&t(1_000, 0, 0, 0)).is_empty());
    }
}
