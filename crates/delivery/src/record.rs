//! Turns send results into the deliveries' next states, and writes them to the
//! store in batches (many outcomes per transaction).
//!
//! The recorder never drops an outcome: when the store is unavailable it keeps the
//! batch and retries. If the process dies first, the deliveries are still leased in
//! the store and are sent again when the lease expires (at least once, same id).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hookd_core::{new_id, AttemptTrigger, IdPrefix, RetrySchedule};
use hookd_store::{status, Attempt, DeliveryJob, Outcome, Store, StoreError};
use tokio::sync::mpsc;

use crate::metrics::{AttemptOutcome, Metrics};
use crate::sender::SendResult;

/// Most outcomes written in one transaction.
const MAX_BATCH: usize = 1024;

/// The outcome of one attempt of `job`, given the retry schedule.
pub fn attempt_outcome(job: &DeliveryJob, result: &SendResult, schedule: &RetrySchedule, now: i64) -> Outcome {
    let attempts = job.attempts + 1;
    let success = result.is_success();
    let (new_status, next_attempt_at) = if success {
        (status::SUCCESS, None)
    } else {
        match schedule.next_delay(attempts) {
            Some(delay) => (status::SENDING, Some(now + delay.as_millis() as i64)),
            None => (status::FAIL, None),
        }
    };
    Outcome {
        delivery_id: job.delivery_id,
        attempt: Some(Attempt {
            id: new_id(IdPrefix::Attempt),
            org_id: job.org_id.clone(),
            app_id: job.app_id.clone(),
            msg_id: job.msg_id.clone(),
            endpoint_id: job.endpoint.id.clone(),
            url: job.endpoint.url.clone(),
            status: if success { status::SUCCESS } else { status::FAIL },
            response_status_code: result.status.map(i32::from).unwrap_or(0),
            response: result.body.clone(),
            response_duration_ms: result.duration.as_millis() as i64,
            trigger: job.trigger,
            created_at: now,
        }),
        new_status,
        attempts,
        next_attempt_at,
    }
}

/// The delivery will not be attempted (its payload was expunged or its
/// endpoint disabled).
pub fn canceled(job: &DeliveryJob) -> Outcome {
    Outcome {
        delivery_id: job.delivery_id,
        attempt: None,
        new_status: status::CANCELED,
        attempts: job.attempts,
        next_attempt_at: None,
    }
}

/// Gives an unsent delivery back to the store, due now, so any node can take it.
pub fn released(job: &DeliveryJob, now: i64) -> Outcome {
    Outcome {
        delivery_id: job.delivery_id,
        attempt: None,
        new_status: if job.attempts == 0 { status::PENDING } else { status::SENDING },
        attempts: job.attempts,
        next_attempt_at: Some(now),
    }
}

pub fn count_attempt(metrics: &Metrics, job: &DeliveryJob, result: &SendResult, now: i64) {
    metrics.attempt_duration.observe(result.duration.as_secs_f64());
    if result.is_success() {
        metrics.attempt(AttemptOutcome::Success);
        if job.trigger == AttemptTrigger::Scheduled {
            metrics.delivery_latency.observe((now - job.msg_created_at).max(0) as f64 / 1000.0);
        }
    } else if result.status.is_some() {
        metrics.attempt(AttemptOutcome::HttpError);
    } else {
        metrics.attempt(AttemptOutcome::NetworkError);
    }
}

/// Writes outcomes from `rx` in batches until every sender is gone.
/// `on_written` is told about each batch once it is committed.
pub async fn run_recorder(
    store: Arc<dyn Store>,
    owner: String,
    mut rx: mpsc::UnboundedReceiver<Outcome>,
    unrecorded: Arc<AtomicUsize>,
    on_written: impl Fn(&[Outcome]) + Send + 'static,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let outcomes: Arc<[Outcome]> = batch.drain(..).collect();
        write_batch(&*store, &owner, outcomes.clone()).await;
        on_written(&outcomes);
        unrecorded.fetch_sub(outcomes.len(), Ordering::SeqCst);
    }
}

/// Writes a batch, retrying while the store is unavailable. A batch the store
/// refuses for another reason is written one outcome at a time, so one bad
/// outcome cannot hold up the rest; an outcome that still fails is dropped with
/// an error, and its delivery is retried when its lease expires.
async fn write_batch(store: &dyn Store, owner: &str, outcomes: Arc<[Outcome]>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match store.record_outcomes(outcomes.clone(), Some(owner)).await {
            Ok(()) => return,
            Err(StoreError::Unavailable(e)) => {
                tracing::warn!(error = %e, outcomes = outcomes.len(), "recording outcomes failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) if outcomes.len() > 1 => {
                tracing::warn!(error = %e, "recording a batch of outcomes failed; recording them one by one");
                for o in outcomes.iter() {
                    Box::pin(write_batch(store, owner, Arc::from(vec![o.clone()]))).await;
                }
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, delivery = outcomes[0].delivery_id, "dropping an outcome the store refuses");
                return;
            }
        }
    }
}
