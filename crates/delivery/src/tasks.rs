//! The background task runner: leases a running task (recover, replay) from the
//! store and advances it one batch per transaction until it is done. Any
//! delivering node runs one; a task whose node dies is resumed from its cursor by
//! another once the lease lapses.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hookd_store::{Lease, Queue, StoreError, TaskLease};
use tokio::sync::Notify;

use crate::operational::Operational;

/// Messages (replay) or attempts (recover) handled per transaction: small enough
/// that other writes never wait long behind one, large enough to move quickly.
pub const TASK_BATCH: usize = 500;

pub struct TaskRunner {
    pub queue: Arc<dyn Queue>,
    pub lease: Lease,
    pub poll_interval: Duration,
    /// Woken when this node creates a task.
    pub wake: Arc<Notify>,
    pub closing: Arc<AtomicBool>,
    pub ops: Operational,
}

impl TaskRunner {
    pub async fn run(self) {
        while !self.closing.load(Ordering::Relaxed) {
            match self.queue.claim_task(&self.lease).await {
                Ok(Some(task)) => self.run_one(task).await,
                Ok(None) => {
                    let _ = tokio::time::timeout(self.poll_interval, self.wake.notified()).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming a background task failed");
                    tokio::time::sleep(self.poll_interval).await;
                }
            }
        }
    }

    async fn run_one(&self, task: TaskLease) {
        let id = task.task.id.clone();
        let mut backoff = Duration::from_millis(100);
        loop {
            if self.closing.load(Ordering::Relaxed) {
                // Left leased: another node (or this one, restarted) resumes it.
                return;
            }
            match self.queue.run_task_step(&task, self.lease.duration_ms, TASK_BATCH).await {
                Ok(step) if step.done => {
                    tracing::info!(task = %id, kind = task.task.kind.as_str(), "background task finished");
                    self.ops.task_finished(&task.task.org_id, &id).await;
                    return;
                }
                Ok(_) => backoff = Duration::from_millis(100),
                Err(StoreError::Unavailable(e)) => {
                    tracing::warn!(task = %id, error = %e, "a background task step failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(StoreError::NotFound) => {
                    tracing::warn!(task = %id, "lost the lease on a background task; another node resumes it");
                    return;
                }
                Err(e) => {
                    tracing::error!(task = %id, error = %e, "a background task failed");
                    match self.queue.fail_task(&task, &e.to_string()).await {
                        Ok(()) => self.ops.task_finished(&task.task.org_id, &id).await,
                        Err(e) => tracing::warn!(task = %id, error = %e, "marking a background task failed failed"),
                    }
                    return;
                }
            }
        }
    }
}
