//! Turns send results into the deliveries' next states, and writes them to the
//! store in batches (many outcomes per transaction).
//!
//! The recorder never drops an outcome: while the store is unavailable it keeps
//! the batch and retries. An outcome the store refuses for another reason (a
//! value it cannot hold) is recorded instead as a failed attempt that says why,
//! so the delivery follows its retry schedule with a record, rather than being
//! sent again and again with none. If the process dies first, the deliveries are
//! still leased in the store and are sent again when the lease expires (at least
//! once, same id).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hookd_core::text::storable;
use hookd_core::{new_id, AttemptTrigger, IdPrefix, MessageStatus, RetrySchedule};
use hookd_store::{Attempt, AttemptFacts, DeliveryJob, NextState, Outcome, Queue, StoreError};
use tokio::sync::mpsc;

use crate::metrics::{AttemptOutcome, Metrics};
use crate::sender::SendResult;

/// Most outcomes written in one transaction.
const MAX_BATCH: usize = 1024;

/// Where a delivery goes after its `attempts`-th attempt failed.
fn after_failure(schedule: &RetrySchedule, attempts: u32) -> NextState {
    match schedule.next_delay(attempts) {
        Some(delay) => NextState::Retry { after_ms: delay.as_millis() as i64 },
        None => NextState::Failed,
    }
}

/// The outcome of one attempt of `job`, going `next`; counted in the
/// statistics when `stats` is on.
pub fn attempt_outcome(job: &DeliveryJob, result: SendResult, next: NextState, now: i64, stats: bool) -> Outcome {
    let attempts = job.attempts + 1;
    let success = result.is_success();
    let facts = stats.then(|| AttemptFacts {
        event_type: job.event_type.clone(),
        class: result.class(),
        bytes: result.sent_bytes.min(i64::MAX as u64) as i64,
        delivered_after_ms: (success && job.trigger == AttemptTrigger::Scheduled)
            .then_some((now - job.msg_created_at).max(0)),
    });
    Outcome {
        delivery_id: job.delivery_id,
        lease_token: job.lease_token,
        attempt: Some(Attempt {
            id: new_id(IdPrefix::Attempt),
            org_id: job.org_id.clone(),
            app_id: job.app_id.clone(),
            msg_id: job.msg_id.clone(),
            endpoint_id: job.endpoint.id.clone(),
            url: job.endpoint.url.clone(),
            status: if success { MessageStatus::Success } else { MessageStatus::Fail },
            response_status_code: result.status.map(i32::from).unwrap_or(0),
            response: result.body,
            response_duration_ms: result.duration.as_millis() as i64,
            trigger: job.trigger,
            created_at: now,
            headers: Some(result.headers),
            facts,
        }),
        next,
        attempts,
    }
}

fn unattempted(job: &DeliveryJob, next: NextState) -> Outcome {
    Outcome { delivery_id: job.delivery_id, lease_token: job.lease_token, attempt: None, next, attempts: job.attempts }
}

/// The delivery will not be attempted: its payload was expunged.
pub fn canceled(job: &DeliveryJob) -> Outcome {
    unattempted(job, NextState::Canceled)
}

/// Its endpoint is disabled: it waits, spending no attempt, until it is enabled.
pub fn paused(job: &DeliveryJob) -> Outcome {
    unattempted(job, NextState::Paused)
}

/// Gives an unsent delivery back to the store, due now, so any node can take it.
pub fn released(job: &DeliveryJob) -> Outcome {
    unattempted(job, NextState::Retry { after_ms: 0 })
}

/// Gives an unsent delivery back to the store, due in `after_ms` (its endpoint
/// is held back until then), spending no attempt.
pub fn deferred(job: &DeliveryJob, after_ms: i64) -> Outcome {
    unattempted(job, NextState::Retry { after_ms })
}

/// What is recorded instead of an outcome the store refused: the attempt, with
/// nothing of the response but the reason, counted as failed.
fn refused(o: &Outcome, reason: &str, schedule: &RetrySchedule) -> Option<Outcome> {
    let a = o.attempt.as_ref()?;
    let response = storable(format!("hookd could not store this attempt's response: {reason}").as_bytes());
    Some(Outcome {
        delivery_id: o.delivery_id,
        lease_token: o.lease_token,
        attempt: Some(Attempt {
            id: a.id.clone(),
            org_id: a.org_id.clone(),
            app_id: a.app_id.clone(),
            msg_id: a.msg_id.clone(),
            endpoint_id: a.endpoint_id.clone(),
            url: storable(a.url.as_bytes()),
            status: MessageStatus::Fail,
            response_status_code: a.response_status_code,
            response,
            response_duration_ms: a.response_duration_ms,
            trigger: a.trigger,
            created_at: a.created_at,
            headers: None,
            // Counted as what it is now: a failure hookd could not record.
            facts: a.facts.clone().map(|f| AttemptFacts {
                class: hookd_store::AttemptClass::Other,
                delivered_after_ms: None,
                ..f
            }),
        }),
        next: after_failure(schedule, o.attempts),
        attempts: o.attempts,
    })
}

pub fn count_attempt(metrics: &Metrics, job: &DeliveryJob, result: &SendResult, now: i64) {
    // One line per attempt at debug level (`--log hookd_delivery=debug`), in the
    // delivery's span (its ids).
    tracing::debug!(
        status = result.status.unwrap_or(0),
        class = ?result.class(),
        duration_ms = result.duration.as_millis() as u64,
        bytes = result.sent_bytes,
        "attempt"
    );
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
    metrics.attempt_failed(result.class());
}

/// Writes outcomes from `rx` in batches until every sender is gone.
/// `on_written` is told about each batch once it is committed.
pub async fn run_recorder(
    queue: Arc<dyn Queue>,
    schedule: RetrySchedule,
    mut rx: mpsc::UnboundedReceiver<Outcome>,
    unrecorded: Arc<AtomicUsize>,
    on_written: impl Fn(&[Outcome]) + Send + 'static,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let outcomes: Arc<[Outcome]> = batch.drain(..).collect();
        write_batch(&*queue, &schedule, outcomes.clone()).await;
        on_written(&outcomes);
        unrecorded.fetch_sub(outcomes.len(), Ordering::SeqCst);
    }
}

/// Writes a batch, retrying while the store is unavailable. A batch the store
/// refuses for another reason is written one outcome at a time, so one bad
/// outcome cannot hold up the rest; an outcome still refused is recorded as a
/// failed attempt saying why (see [`refused`]).
async fn write_batch(queue: &dyn Queue, schedule: &RetrySchedule, outcomes: Arc<[Outcome]>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match queue.record_outcomes(outcomes.clone()).await {
            Ok(()) => return,
            Err(StoreError::Unavailable(e)) => {
                tracing::warn!(error = %e, outcomes = outcomes.len(), "recording outcomes failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) if outcomes.len() > 1 => {
                tracing::warn!(error = %e, "recording a batch of outcomes failed; recording them one by one");
                for o in outcomes.iter() {
                    Box::pin(write_batch(queue, schedule, Arc::from(vec![o.clone()]))).await;
                }
                return;
            }
            Err(e) => {
                let o = &outcomes[0];
                tracing::error!(error = %e, delivery = o.delivery_id, "the store refused an outcome; recording it as failed");
                let Some(instead) = refused(o, &e.to_string(), schedule) else { return };
                if let Err(e) = queue.record_outcomes(Arc::from(vec![instead])).await {
                    // Left leased: it is sent again once the lease expires.
                    tracing::error!(error = %e, delivery = o.delivery_id, "dropping an outcome the store refuses");
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_outcome_becomes_a_failed_attempt_on_the_schedule() {
        let schedule = RetrySchedule::parse("1s").unwrap();
        let attempt = Attempt {
            id: "atmpt_1".into(),
            org_id: "org".into(),
            app_id: "app".into(),
            msg_id: "msg".into(),
            endpoint_id: "ep".into(),
            url: "https://example.com".into(),
            status: MessageStatus::Success,
            response_status_code: 200,
            response: "body".into(),
            response_duration_ms: 5,
            trigger: AttemptTrigger::Scheduled,
            created_at: 1,
            headers: None,
            facts: None,
        };
        let o =
            Outcome { delivery_id: 7, lease_token: 3, attempt: Some(attempt), next: NextState::Succeeded, attempts: 1 };
        let instead = refused(&o, "bad\0value", &schedule).unwrap();
        let a = instead.attempt.clone().unwrap();
        assert_eq!((a.status, a.response_status_code, instead.lease_token), (MessageStatus::Fail, 200, 3));
        assert!(a.response.contains("could not store") && !a.response.contains('\0'), "{}", a.response);
        assert!(matches!(instead.next, NextState::Retry { .. }));
        let last = Outcome { attempts: 2, ..instead.clone() };
        assert_eq!(refused(&last, "x", &schedule).unwrap().next, NextState::Failed);
        let none = Outcome { attempt: None, ..o };
        assert!(refused(&none, "x", &schedule).is_none());
    }
}
