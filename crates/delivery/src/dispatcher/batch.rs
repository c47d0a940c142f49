//! Batched endpoints: several deliveries in one request (see
//! `hookd_core::batching` for the body and its id). Each delivery keeps its
//! own attempt (the request's, recorded once per message), state and retry
//! schedule; the request counts once towards the endpoint's concurrency,
//! throttle and breaker.

use std::sync::Arc;

use hookd_core::batching::{batch_body, batch_id, Member};
use hookd_core::timefmt::now_millis;
use hookd_store::{DeliveryJob, NextState, Outcome};

use super::{open_payload, seal_attempt_response, Dispatcher};
use crate::record::{self, attempt_outcome};
use crate::sender::{Outgoing, SendResult};

impl Dispatcher {
    /// Sends `jobs` (all to one endpoint) as one request and hands each its outcome.
    pub(super) async fn deliver_batch(self, jobs: Vec<DeliveryJob>) {
        let permit = self.inner.permits.acquire().await;
        let mut done: Vec<(DeliveryJob, Outcome, Option<i64>)> = Vec::with_capacity(jobs.len());
        let mut members: Vec<(DeliveryJob, Arc<[u8]>)> = Vec::with_capacity(jobs.len());
        for job in jobs {
            let outcome =
                if self.is_closing() || permit.is_err() || self.lease_may_be_lost(job.delivery_id, now_millis()) {
                    record::released(&job)
                } else if job.endpoint.disabled {
                    record::paused(&job)
                } else {
                    match job.payload.as_ref().map(|p| open_payload(&job, p)) {
                        None => record::canceled(&job),
                        Some(Ok(body)) => {
                            members.push((job, batch_member(body)));
                            continue;
                        }
                        Some(Err(why)) => {
                            // Alone: an attempt that says why, on its own schedule.
                            let now = now_millis();
                            let result = SendResult { body: format!("not sent: {why}"), ..Default::default() };
                            let (next, _) = self.after_attempt(&job, &result, now).await;
                            attempt_outcome(&job, result, next, now, self.inner.config.stats)
                        }
                    }
                };
            done.push((job, outcome, None));
        }
        if !members.is_empty() {
            done.extend(self.send_batch(members).await);
        }
        drop(permit);
        if let Some((first, _, _)) = done.first() {
            let mut queues = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(q) = queues.by_endpoint.get_mut(&first.endpoint.id) {
                q.batches -= 1;
            }
        }
        for (job, outcome, plain_success) in done {
            self.finished(&job, outcome, plain_success);
        }
    }

    /// The request itself: one body, one signature, one answer for all.
    async fn send_batch(&self, members: Vec<(DeliveryJob, Arc<[u8]>)>) -> Vec<(DeliveryJob, Outcome, Option<i64>)> {
        let ids: Vec<&str> = members.iter().map(|(j, _)| j.msg_id.as_str()).collect();
        let mut request = members[0].0.clone();
        request.msg_id = batch_id(&ids);
        let body: Arc<[u8]> = Arc::from(batch_body(
            &members
                .iter()
                .map(|(j, body)| Member {
                    msg_id: &j.msg_id,
                    event_type: &j.event_type,
                    created_at: j.msg_created_at,
                    payload: body,
                })
                .collect::<Vec<_>>(),
        ));
        let org = self.inner.orgs.get(&request.org_id).await;
        let result = match &org {
            Ok(org) => {
                let policy = (!org.policy.is_empty()).then_some(&org.policy);
                self.inner.sender.send(&request, &Outgoing::json(body.clone()), now_millis(), policy).await
            }
            Err(why) => SendResult { body: format!("not sent: {why}"), ..Default::default() },
        };
        let seal = org.as_ref().is_ok_and(|o| o.encrypt_payloads);
        let now = now_millis();
        let plain = result.is_success() && result.signal.is_none() && !result.timed_out;
        // The endpoint's control state learns of the request once.
        let (next, note) =
            if plain { (NextState::Succeeded, None) } else { self.after_attempt(&members[0].0, &result, now).await };
        let (count, id) = (members.len(), request.msg_id.clone());
        let mut out = Vec::with_capacity(count);
        for (i, (job, _)) in members.into_iter().enumerate() {
            record::count_attempt(&self.inner.metrics, &job, &result, now);
            // The others follow their own schedules: one whose attempts are
            // spent fails, the rest come back when the first does (or later).
            // A failure hookd decided for all (abort-message, skip) stays.
            let next = match next {
                NextState::Retry { .. } | NextState::Failed
                    if i > 0 && (note.is_none() || next != NextState::Failed) =>
                {
                    let after = match next {
                        NextState::Retry { after_ms } => after_ms,
                        _ => 0,
                    };
                    match self.schedule_for(&job, now).await.next_delay(job.attempts + 1) {
                        Some(d) => NextState::Retry { after_ms: after.max(d.as_millis() as i64) },
                        None => NextState::Failed,
                    }
                }
                other => other,
            };
            // Each member counts its share of the request's bytes.
            let share = SendResult { sent_bytes: result.sent_bytes / count as u64, ..result.clone() };
            let mut outcome = attempt_outcome(&job, share, next, now, self.inner.config.stats);
            if let Some(a) = outcome.attempt.as_mut() {
                a.response.push_str(&format!(" [hookd: sent as {id}, a batch of {count}]"));
                if let Some(note) = note {
                    a.response.push_str(note);
                }
            }
            if seal {
                seal_attempt_response(&mut outcome);
            }
            self.attempt_events(&job, &outcome);
            // The request is one success for the endpoint's control state.
            out.push((job, outcome, plain.then_some(now).filter(|_| i == 0)));
        }
        out
    }
}

/// A member's payload in a batch body: JSON as it is; a raw payload as a JSON
/// string of its text.
fn batch_member(body: Arc<[u8]>) -> Arc<[u8]> {
    match hookd_core::payload::Payload::read(&body) {
        hookd_core::payload::Payload::Json(_) => body,
        raw => Arc::from(serde_json::to_vec(&String::from_utf8_lossy(raw.body())).unwrap_or_default()),
    }
}
