//! The retention sweep: expires payloads and response bodies, removes old keys
//! and finished tasks, and gives freed space back, in small batches with pauses
//! between them so that delivery never waits behind it.

use std::time::Duration;

use hookd_store::{PruneReport, Queue, Result};

#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// How often the sweep runs.
    pub interval: Duration,
    /// Messages per batch (one transaction each).
    pub batch: usize,
    /// Finished background tasks are kept this long (Svix lists 90 days of them).
    pub task_retention: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            interval: Duration::from_secs(60),
            batch: 500,
            task_retention: Duration::from_secs(90 * 86_400),
        }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Swept {
    pub pruned: PruneReport,
    /// Pages given back to the file system (SQLite).
    pub pages_freed: u64,
}

/// Pause between batches: the sweep yields the store to delivery.
const BREATHER: Duration = Duration::from_millis(5);
/// Pages freed per incremental vacuum step.
const PAGES_PER_STEP: u64 = 2000;

/// Sweeps until nothing expired is left.
pub async fn sweep(queue: &dyn Queue, config: &RetentionConfig) -> Result<Swept> {
    let mut swept = Swept::default();
    let task_ms = config.task_retention.as_millis() as i64;
    loop {
        let r = queue.prune(config.batch, task_ms).await?;
        swept.pruned.add(r);
        if (r.messages as usize) < config.batch && (r.housekeeping as usize) < config.batch {
            break;
        }
        tokio::time::sleep(BREATHER).await;
    }
    loop {
        let n = queue.reclaim_space(PAGES_PER_STEP).await?;
        swept.pages_freed += n;
        if n < PAGES_PER_STEP {
            break;
        }
        tokio::time::sleep(BREATHER).await;
    }
    Ok(swept)
}

pub async fn run(queue: std::sync::Arc<dyn Queue>, config: RetentionConfig) {
    loop {
        tokio::time::sleep(config.interval).await;
        match sweep(&*queue, &config).await {
            Ok(s) if s.pruned.is_empty() && s.pages_freed == 0 => {}
            Ok(s) => tracing::info!(
                messages = s.pruned.messages,
                attempts = s.pruned.attempts,
                canceled = s.pruned.canceled,
                housekeeping = s.pruned.housekeeping,
                pages_freed = s.pages_freed,
                "retention sweep"
            ),
            Err(e) => tracing::warn!(error = %e, "the retention sweep failed; it runs again later"),
        }
    }
}
