//! Fan-out, claims, leases, queue ownership, outcomes, and waking workers.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookd_core::AttemptTrigger;
use hookd_store::*;

use crate::fixture::{lease, outcome, page, Fixture};

const RETRY_NOW: NextState = NextState::Retry { after_ms: 0 };

pub async fn a_message_fans_out_to_matching_endpoints_in_one_commit(f: Fixture) {
    let all = f.endpoint(None, None).await;
    let invoices = f.endpoint(Some(vec!["invoice.paid"]), None).await;
    let _users = f.endpoint(Some(vec!["user.created"]), None).await;
    let eu = f.endpoint(None, Some(vec!["eu"])).await;

    let jobs =
        f.store.enqueue(f.message("invoice.paid", None, None), None, Some(lease("n1", 60_000)), None).await.unwrap();
    let mut got: Vec<&str> = jobs.iter().map(|j| j.endpoint.id.as_str()).collect();
    got.sort();
    let mut want = vec![all.id.as_str(), invoices.id.as_str()];
    want.sort();
    assert_eq!(got, want, "no channel: the channel endpoint is skipped");

    let jobs =
        f.store.enqueue(f.message("x", None, Some(vec!["eu"])), None, Some(lease("n1", 60_000)), None).await.unwrap();
    let mut got: Vec<&str> = jobs.iter().map(|j| j.endpoint.id.as_str()).collect();
    got.sort();
    let mut want = vec![all.id.as_str(), eu.id.as_str()];
    want.sort();
    assert_eq!(got, want);
    assert!(jobs.iter().all(|j| j.payload.as_deref() == Some(&b"{\"a\":1}"[..])));
    assert!(jobs.iter().all(|j| j.attempts == 0 && j.trigger == AttemptTrigger::Scheduled && j.lease_token > 0));
    let d = f.delivery(&jobs[0].msg_id, &jobs[0].endpoint.id).await;
    assert_eq!((d.state, d.status()), (DeliveryState::Leased, MessageStatus::Sending));

    // A test send goes only where it is told, whatever the filters say.
    let only = f
        .store
        .enqueue(f.message("x", None, None), Some(eu.id.clone()), Some(lease("n1", 60_000)), None)
        .await
        .unwrap();
    assert_eq!(only.iter().map(|j| j.endpoint.id.as_str()).collect::<Vec<_>>(), vec![eu.id.as_str()]);
}

pub async fn leased_deliveries_are_claimed_only_after_the_lease_expires(f: Fixture) {
    f.endpoint(None, None).await;
    // Scheduled work is claimable at once, and claims are exclusive.
    f.store.enqueue(f.message("a", None, None), None, None, None).await.unwrap();
    assert_eq!(f.store.claim_due(&lease("n1", 150), 10, &[]).await.unwrap().len(), 1);
    assert!(f.store.claim_due(&lease("n1", 150), 10, &[]).await.unwrap().is_empty());
    // n1 now owns the endpoint's queue: its fresh work is leased to it, and
    // another node can take nothing until the leases lapse.
    let fresh = f.store.enqueue(f.message("a", None, None), None, Some(lease("n1", 150)), None).await.unwrap();
    assert_eq!(fresh.len(), 1);
    let for_n2 = f.store.enqueue(f.message("a", None, None), None, Some(lease("n2", 60_000)), None).await.unwrap();
    assert!(for_n2.is_empty(), "n2 does not own the endpoint: the delivery is left for the owner");
    assert!(f.store.claim_due(&lease("n2", 60_000), 10, &[]).await.unwrap().is_empty());

    tokio::time::sleep(Duration::from_millis(250)).await;
    // The dead owner's leases are rescued (due now), then its queue is taken over.
    assert_eq!(f.store.rescue_expired(100).await.unwrap(), 2);
    let taken_over = f.store.claim_due(&lease("n2", 60_000), 10, &[]).await.unwrap();
    assert_eq!(taken_over.len(), 3, "the dead owner's endpoint and deliveries are taken over");
    assert_eq!(f.store.rescue_expired(100).await.unwrap(), 0, "n2's leases are live");
}

pub async fn each_endpoint_queue_has_one_owner_at_a_time(f: Fixture) {
    let a = f.endpoint(Some(vec!["a"]), None).await;
    let b = f.endpoint(Some(vec!["b"]), None).await;
    for _ in 0..3 {
        f.send("a").await;
        f.send("b").await;
    }
    // n1 takes one endpoint's queue by claiming a little...
    let first = f.store.claim_due(&lease("n1", 60_000), 1, &[]).await.unwrap();
    let owned_by_n1 = first[0].endpoint.id.clone();
    // ...n2 then gets only the other endpoint's deliveries, n1 the rest of its own.
    let n2 = f.store.claim_due(&lease("n2", 60_000), 10, &[]).await.unwrap();
    assert_eq!(n2.len(), 3);
    assert!(n2.iter().all(|j| j.endpoint.id != owned_by_n1));
    let n1 = f.store.claim_due(&lease("n1", 60_000), 10, &[]).await.unwrap();
    assert_eq!(n1.len(), 2);
    assert!(n1.iter().all(|j| j.endpoint.id == owned_by_n1));
    assert!([&a.id, &b.id].contains(&&owned_by_n1));

    // Renewal keeps ownership; release hands it over.
    f.store.renew(&lease("n1", 60_000), &[], std::slice::from_ref(&owned_by_n1)).await.unwrap();
    f.send(if owned_by_n1 == a.id { "a" } else { "b" }).await;
    assert!(f.store.claim_due(&lease("n2", 60_000), 10, &[]).await.unwrap().is_empty());
    f.store.release_endpoints("n1").await.unwrap();
    assert_eq!(f.store.claim_due(&lease("n2", 60_000), 10, &[]).await.unwrap().len(), 1);
}

pub async fn outcomes_finish_or_reschedule_deliveries(f: Fixture) {
    let ep = f.endpoint(None, None).await;
    let jobs = f.store.enqueue(f.message("a", None, None), None, Some(lease("n1", 60_000)), None).await.unwrap();
    let job = &jobs[0];
    // A failure with a retry due later: scheduled, not claimable yet, shown as sending.
    let failed = f.attempt(&job.msg_id, &ep, 500);
    let later = NextState::Retry { after_ms: 200 };
    f.store.record_outcomes(Arc::from(vec![outcome(job, Some(failed), later, 1)])).await.unwrap();
    let d = f.delivery(&job.msg_id, &ep.id).await;
    assert_eq!((d.state, d.attempts, d.status()), (DeliveryState::Scheduled, 1, MessageStatus::Sending));
    assert!(d.next_attempt_at().is_some());
    assert!(f.store.claim_due(&lease("n1", 60_000), 10, &[]).await.unwrap().is_empty(), "not due yet");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = f.store.claim_due(&lease("n1", 60_000), 10, &[]).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    assert!(again[0].lease_token > job.lease_token, "every lease has a new token");
    // Success: nothing left to claim, stats and attempts say so.
    let ok = f.attempt(&job.msg_id, &ep, 200);
    f.store.record_outcomes(Arc::from(vec![outcome(&again[0], Some(ok), NextState::Succeeded, 2)])).await.unwrap();
    assert!(f.store.claim_due(&lease("n1", 1), 10, &[]).await.unwrap().is_empty());
    let d = f.delivery(&job.msg_id, &ep.id).await;
    assert_eq!((d.state, d.next_attempt_at()), (DeliveryState::Succeeded, None));
    let stats = f.store.endpoint_stats(&f.org, &ep.id, 0, i64::MAX).await.unwrap();
    assert_eq!(stats, EndpointStats { success: 1, ..Default::default() });
    let newest_first = Page { limit: 10, iterator: None, backwards: false, descending: true };
    let filter = AttemptFilter { msg_id: Some(job.msg_id.clone()), ..Default::default() };
    let attempts = f.store.list_attempts(&f.org, &f.app, &filter, &newest_first).await.unwrap();
    assert_eq!(attempts.iter().map(|a| a.response_status_code).collect::<Vec<_>>(), vec![200, 500]);
    assert_eq!(f.store.pending_count().await.unwrap(), 0);
}

/// A batch is retried when the store was unavailable, even if its commit had
/// landed: the retry must neither fail nor store attempts twice.
pub async fn recording_the_same_outcomes_twice_is_harmless(f: Fixture) {
    let ep = f.endpoint(None, None).await;
    let jobs = f.store.enqueue(f.message("a", None, None), None, Some(lease("n1", 60_000)), None).await.unwrap();
    let batch: Arc<[Outcome]> =
        Arc::from(vec![outcome(&jobs[0], Some(f.attempt(&jobs[0].msg_id, &ep, 200)), NextState::Succeeded, 1)]);
    f.store.record_outcomes(batch.clone()).await.unwrap();
    f.store.record_outcomes(batch).await.unwrap();
    let attempts = f.store.list_attempts(&f.org, &f.app, &AttemptFilter::default(), &page(10)).await.unwrap();
    assert_eq!(attempts.len(), 1);
}

pub async fn outcomes_of_deleted_deliveries_are_dropped(f: Fixture) {
    let a = f.endpoint(None, None).await;
    let b = f.endpoint(None, None).await;
    let msg = f.message("a", None, None);
    let jobs = f.store.enqueue(msg.clone(), None, Some(lease("n1", 60_000)), None).await.unwrap();
    assert_eq!(jobs.len(), 2);
    // The endpoint goes away while its request is in flight.
    f.store.delete_endpoint(&f.org, &f.app, &a.id).await.unwrap();
    let outcomes: Vec<Outcome> =
        jobs.iter().map(|j| outcome(j, Some(f.attempt(&msg.id, &j.endpoint, 200)), NextState::Succeeded, 1)).collect();
    f.store.record_outcomes(Arc::from(outcomes)).await.unwrap();
    let attempts = f.store.list_attempts(&f.org, &f.app, &AttemptFilter::default(), &page(10)).await.unwrap();
    assert_eq!(attempts.iter().map(|a| a.endpoint_id.clone()).collect::<Vec<_>>(), vec![b.id.clone()]);
    assert_eq!(f.delivery(&msg.id, &b.id).await.state, DeliveryState::Succeeded);
}

pub async fn renewed_leases_keep_other_nodes_away(f: Fixture) {
    let ep = f.endpoint(None, None).await;
    f.send("a").await;
    f.send("a").await;
    let held = f.store.claim_due(&lease("n1", 300), 1, &[]).await.unwrap();
    assert_eq!(held.len(), 1);
    // n1 renews the delivery it holds and its queue; the other delivery was
    // never leased, so n1 (which owns the queue) claims it next.
    f.store.renew(&lease("n1", 60_000), &[held[0].delivery_id], std::slice::from_ref(&ep.id)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(f.store.rescue_expired(100).await.unwrap(), 0, "the renewed lease did not expire");
    assert!(f.store.claim_due(&lease("n2", 60_000), 10, &[]).await.unwrap().is_empty(), "n1 still owns the queue");
    let rest = f.store.claim_due(&lease("n1", 60_000), 10, &[]).await.unwrap();
    assert_eq!(rest.len(), 1, "n1 gets the delivery it did not hold, not the one it does");
    assert_ne!(rest[0].delivery_id, held[0].delivery_id);
    // Renewing leases another node holds does nothing.
    f.store.renew(&lease("n2", 600_000), &[held[0].delivery_id], std::slice::from_ref(&ep.id)).await.unwrap();
    f.store.release_endpoints("n1").await.unwrap();
    assert!(f.store.claim_due(&lease("n2", 60_000), 10, &[]).await.unwrap().is_empty(), "leases still held");
}

/// Two nodes on one database, two claim loops each, claiming as fast as they
/// can: no delivery is handed out twice, and each endpoint's deliveries go to
/// one node.
pub async fn claims_are_exclusive_under_concurrency(f: Fixture) {
    const ENDPOINTS: usize = 4;
    const MESSAGES: usize = 40;
    for i in 0..ENDPOINTS {
        f.endpoint(Some(vec![&format!("e{i}")]), None).await;
    }
    for m in 0..MESSAGES {
        f.send(&format!("e{}", m % ENDPOINTS)).await;
    }
    let total = MESSAGES;
    let nodes = [("n1", f.store.clone()), ("n2", f.another_node().await)];
    let claimed: Arc<Mutex<Vec<(String, i64, String)>>> = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut loops = Vec::new();
    for (owner, store) in &nodes {
        for _ in 0..2 {
            let (owner, store, claimed) = (owner.to_string(), store.clone(), claimed.clone());
            loops.push(tokio::spawn(async move {
                while Instant::now() < deadline && claimed.lock().unwrap().len() < total {
                    let jobs = store.claim_due(&lease(&owner, 60_000), 3, &[]).await.unwrap();
                    if jobs.is_empty() {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    let mut claimed = claimed.lock().unwrap();
                    claimed.extend(jobs.iter().map(|j| (owner.clone(), j.delivery_id, j.endpoint.id.clone())));
                }
            }));
        }
    }
    for l in loops {
        l.await.unwrap();
    }
    let claimed = claimed.lock().unwrap();
    let unique: HashSet<i64> = claimed.iter().map(|(_, id, _)| *id).collect();
    assert_eq!(unique.len(), claimed.len(), "a delivery was claimed twice");
    assert_eq!(claimed.len(), total, "every delivery is claimed");
    let mut owners: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (owner, _, ep) in claimed.iter() {
        owners.entry(ep.as_str()).or_default().insert(owner.as_str());
    }
    assert!(owners.values().all(|o| o.len() == 1), "an endpoint's queue had two owners: {owners:?}");
}

pub async fn an_outcome_under_an_old_lease_token_is_ignored(f: Fixture) {
    let ep = f.endpoint(None, None).await;
    let jobs = f.store.enqueue(f.message("a", None, None), None, Some(lease("n1", 100)), None).await.unwrap();
    let old = &jobs[0];
    // n1's lease runs out, the delivery is rescued and n2 takes it over.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(f.store.rescue_expired(10).await.unwrap(), 1);
    let taken = f.store.claim_due(&lease("n2", 60_000), 10, &[]).await.unwrap();
    assert_eq!(taken.len(), 1);
    // n1's late outcome (and its attempt) must not land over n2's lease.
    let late = f.attempt(&old.msg_id, &ep, 200);
    f.store.record_outcomes(Arc::from(vec![outcome(old, Some(late), NextState::Succeeded, 1)])).await.unwrap();
    assert_eq!(f.delivery(&old.msg_id, &ep.id).await.state, DeliveryState::Leased, "still n2's, unfinished");
    assert!(f.store.list_attempts(&f.org, &f.app, &AttemptFilter::default(), &page(10)).await.unwrap().is_empty());
    // n2's own outcome lands.
    let ok = f.attempt(&old.msg_id, &ep, 200);
    f.store.record_outcomes(Arc::from(vec![outcome(&taken[0], Some(ok), NextState::Succeeded, 1)])).await.unwrap();
    assert_eq!(f.delivery(&old.msg_id, &ep.id).await.state, DeliveryState::Succeeded);
    assert_eq!(f.store.pending_count().await.unwrap(), 0);
}

pub async fn a_released_delivery_is_due_again_at_once(f: Fixture) {
    let ep = f.endpoint(None, None).await;
    let jobs = f.store.enqueue(f.message("a", None, None), None, Some(lease("n1", 60_000)), None).await.unwrap();
    f.store.record_outcomes(Arc::from(vec![outcome(&jobs[0], None, RETRY_NOW, 0)])).await.unwrap();
    let d = f.delivery(&jobs[0].msg_id, &ep.id).await;
    assert_eq!((d.state, d.attempts, d.status()), (DeliveryState::Scheduled, 0, MessageStatus::Pending));
    assert_eq!(f.store.claim_due(&lease("n1", 60_000), 10, &[]).await.unwrap().len(), 1);
}

/// Measures how long `wait_for_work` takes when `commit` runs while it waits.
async fn wait_while(waiter: Arc<dyn Store>, commit: impl std::future::Future<Output = ()>) -> Duration {
    // Let any wake-up already pending (a listener saying it is connected) pass.
    waiter.wait_for_work(Duration::from_millis(300)).await;
    let waiting = tokio::spawn(async move {
        let start = Instant::now();
        waiter.wait_for_work(Duration::from_secs(30)).await;
        start.elapsed()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    commit.await;
    waiting.await.unwrap()
}

pub async fn workers_wake_when_unleased_work_is_committed(f: Fixture) {
    f.endpoint(None, None).await;
    let waited = wait_while(f.store.clone(), async {
        f.send("a").await;
    })
    .await;
    assert!(waited < Duration::from_secs(10), "woken after {waited:?}");
}

pub async fn other_nodes_are_woken_by_a_notification(f: Fixture) {
    assert!(f.is_postgres());
    f.endpoint(None, None).await;
    let other = f.another_node().await;
    let waited = wait_while(other, async {
        f.send("a").await;
    })
    .await;
    assert!(waited < Duration::from_secs(10), "woken after {waited:?}");
}
