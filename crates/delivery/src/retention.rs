//! The retention sweep: expires payloads and response bodies, removes old keys
//! and finished tasks, and gives freed space back, in small batches with pauses
//! between them so that delivery never waits behind it.

use std::time::Duration;

use hookd_store::{PruneReport, Queue, Result, Retention, RollupRetention};

#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// How often the sweep runs.
    pub interval: Duration,
    /// Messages per batch (one transaction each).
    pub batch: usize,
    /// Messages, their deliveries and attempts are deleted this long after
    /// they were created.
    pub message_retention: Duration,
    /// Finished background tasks are kept this long (Svix lists 90 days of them).
    pub task_retention: Duration,
    /// When statistics rows are folded into wider ones, and how long day rows stay.
    pub rollups: RollupRetention,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            interval: Duration::from_secs(60),
            batch: 100,
            message_retention: Duration::from_secs(180 * 86_400),
            task_retention: Duration::from_secs(90 * 86_400),
            rollups: RollupRetention::default(),
        }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Swept {
    pub pruned: PruneReport,
    /// Pages given back to the file system (SQLite).
    pub pages_freed: u64,
    /// Statistics rows folded into wider ones or past their retention.
    pub rollups_folded: u64,
}

/// Between batches the sweep pauses this many times as long as the batch took
/// (and at least `MIN_BREATHER`): it holds the store a fifth of the time at
/// most, so the writes of delivery never queue behind more than one small batch.
const PAUSE_FACTOR: u32 = 4;
const MIN_BREATHER: Duration = Duration::from_millis(5);
/// Pages freed per incremental vacuum step.
const PAGES_PER_STEP: u64 = 2000;

/// Sweeps until nothing expired is left.
pub async fn sweep(queue: &dyn Queue, config: &RetentionConfig) -> Result<Swept> {
    let mut swept = Swept::default();
    let limits = Retention {
        messages_ms: config.message_retention.as_millis() as i64,
        tasks_ms: config.task_retention.as_millis() as i64,
    };
    loop {
        let started = std::time::Instant::now();
        let r = queue.prune(config.batch, limits).await?;
        swept.pruned.add(r);
        let full = |n: u64| n as usize >= config.batch;
        if !full(r.messages) && !full(r.deleted) && !full(r.housekeeping) {
            break;
        }
        tokio::time::sleep((started.elapsed() * PAUSE_FACTOR).max(MIN_BREATHER)).await;
    }
    loop {
        let started = std::time::Instant::now();
        let n = queue.fold_rollups(config.batch * 10, config.rollups).await?;
        swept.rollups_folded += n;
        if (n as usize) < config.batch * 10 {
            break;
        }
        tokio::time::sleep((started.elapsed() * PAUSE_FACTOR).max(MIN_BREATHER)).await;
    }
    loop {
        let started = std::time::Instant::now();
        let n = queue.reclaim_space(PAGES_PER_STEP).await?;
        swept.pages_freed += n;
        if n < PAGES_PER_STEP {
            break;
        }
        tokio::time::sleep((started.elapsed() * PAUSE_FACTOR).max(MIN_BREATHER)).await;
    }
    Ok(swept)
}

pub async fn run(queue: std::sync::Arc<dyn Queue>, config: RetentionConfig) {
    loop {
        tokio::time::sleep(config.interval).await;
        match sweep(&*queue, &config).await {
            Ok(s) if s.pruned.is_empty() && s.pages_freed == 0 && s.rollups_folded == 0 => {}
            Ok(s) => tracing::info!(
                messages = s.pruned.messages,
                attempts = s.pruned.attempts,
                canceled = s.pruned.canceled,
                deleted = s.pruned.deleted,
                housekeeping = s.pruned.housekeeping,
                pages_freed = s.pages_freed,
                rollups_folded = s.rollups_folded,
                "retention sweep"
            ),
            Err(e) => tracing::warn!(error = %e, "the retention sweep failed; it runs again later"),
        }
    }
}
