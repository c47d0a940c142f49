//! Fan-out, claims, leases, queue ownership, outcomes, and waking workers.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookd_core::timefmt::now_millis;
use hookd_core::AttemptTrigger;
use hookd_store::*;

use crate::fixture::{lease, page, Fixture};

fn outcome(delivery_id: i64, attempt: Option<Attempt>, new_status: i64, attempts: u32, next: Option<i64>) -> Outcome {
    Outcome { delivery_id, attempt, new_status, attempts, next_attempt_at: next }
}

async fn destination_status(f: &Fixture, msg_id: &str, endpoint_id: &str) -> i64 {
    let rows = f.store.list_message_destinations(&f.org, &f.app, msg_id, &page(50)).await.unwrap();
    rows.iter().find(|(_, ep)| ep.id == endpoint_id).expect("a delivery to the endpoint").0.status
}

pub async fn a_message_fans_out_to_matching_endpoints_in_one_commit(f: Fixture) {
    let all = f.endpoint(None, None).await;
    let invoices = f.endpoint(Some(vec!["invoice.paid"]), None).await;
    let _users = f.endpoint(Some(vec!["user.created"]), None).await;
    let eu = f.endpoint(None, Some(vec!["eu"])).await;

    let jobs = f
        .store
        .create_message(f.message("invoice.paid", None, None), None, Some(lease("n1", 60_000)), None)
        .await
        .unwrap();
    let mut got: Vec<&str> = jobs.iter().map(|j| j.endpoint.id.as_str()).collect();
    got.sort();
    let mut want = vec![all.id.as_str(), invoices.id.as_str()];
    want.sort();
    assert_eq!(got, want, "no channel: the channel endpoint is skipped");

    let jobs = f
        .store
        .create_message(f.message("x", None, Some(vec!["eu"])), None, Some(lease("n1", 60_000)), None)
        .await
        .unwrap();
    let mut got: Vec<&str> = jobs.iter().map(|j| j.endpoint.id.as_str()).collect();
    got.sort();
    let mut want = vec![all.id.as_str(), eu.id.as_str()];
    want.sort();
    assert_eq!(got, want);
    assert!(jobs.iter().all(|j| j.payload.as_deref() == Some(&b"{\"a\":1}"[..])));
    assert!(jobs.iter().all(|j| j.attempts == 0 && j.trigger == AttemptTrigger::Scheduled));

    // A test send goes only where it is told, whatever the filters say.
    let only = f
        .store
        .create_message(f.message("x", None, None), Some(eu.id.clone()), Some(lease("n1", 60_000)), None)
        .await
        .unwrap();
    assert_eq!(only.iter().map(|j| j.endpoint.id.as_str()).collect::<Vec<_>>(), vec![eu.id.as_str()]);
}

pub async fn leased_deliveries_are_claimed_only_after_the_lease_expires(f: Fixture) {
    f.endpoint(None, None).await;
    // Unleased work is claimable at once, and claims are exclusive.
    f.store.create_message(f.message("a", None, None), None, None, None).await.unwrap();
    assert_eq!(f.store.claim_due(&lease("n1", 150), now_millis(), 10, &[]).await.unwrap().len(), 1);
    assert!(f.store.claim_due(&lease("n1", 150), now_millis(), 10, &[]).await.unwrap().is_empty());
    // n1 now owns the endpoint's queue: its fresh work is leased to it, and
    // another node can take nothing until the leases lapse.
    let fresh = f.store.create_message(f.message("a", None, None), None, Some(lease("n1", 150)), None).await.unwrap();
    assert_eq!(fresh.len(), 1);
    let for_n2 =
        f.store.create_message(f.message("a", None, None), None, Some(lease("n2", 60_000)), None).await.unwrap();
    assert!(for_n2.is_empty(), "n2 does not own the endpoint: the delivery is left for the owner");
    assert!(f.store.claim_due(&lease("n2", 60_000), now_millis(), 10, &[]).await.unwrap().is_empty());

    tokio::time::sleep(Duration::from_millis(200)).await;
    let taken_over = f.store.claim_due(&lease("n2", 60_000), now_millis(), 10, &[]).await.unwrap();
    assert_eq!(taken_over.len(), 3, "the dead owner's endpoint and deliveries are taken over");
}

pub async fn each_endpoint_queue_has_one_owner_at_a_time(f: Fixture) {
    let a = f.endpoint(Some(vec!["a"]), None).await;
    let b = f.endpoint(Some(vec!["b"]), None).await;
    for _ in 0..3 {
        f.send("a").await;
        f.send("b").await;
    }
    // n1 takes one endpoint's queue by claiming a little...
    let first = f.store.claim_due(&lease("n1", 60_000), now_millis(), 1, &[]).await.unwrap();
    let owned_by_n1 = first[0].endpoint.id.clone();
    // ...n2 then gets only the other endpoint's deliveries, n1 the rest of its own.
    let n2 = f.store.claim_due(&lease("n2", 60_000), now_millis(), 10, &[]).await.unwrap();
    assert_eq!(n2.len(), 3);
    assert!(n2.iter().all(|j| j.endpoint.id != owned_by_n1));
    let n1 = f.store.claim_due(&lease("n1", 60_000), now_millis(), 10, &[]).await.unwrap();
    assert_eq!(n1.len(), 2);
    assert!(n1.iter().all(|j| j.endpoint.id == owned_by_n1));
    assert!([&a.id, &b.id].contains(&&owned_by_n1));

    // Renewal keeps ownership; release hands it over.
    f.store.renew(&lease("n1", 60_000), &[], std::slice::from_ref(&owned_by_n1)).await.unwrap();
    f.send(if owned_by_n1 == a.id { "a" } else { "b" }).await;
    assert!(f.store.claim_due(&lease("n2", 60_000), now_millis(), 10, &[]).await.unwrap().is_empty());
    f.store.release_endpoints("n1").await.unwrap();
    assert_eq!(f.store.claim_due(&lease("n2", 60_000), now_millis(), 10, &[]).await.unwrap().len(), 1);
}

pub async fn outcomes_finish_or_reschedule_deliveries(f: Fixture) {
    let ep = f.endpoint(None, None).await;
    let jobs = f.store.create_message(f.message("a", None, None), None, Some(lease("n1", 60_000)), None).await.unwrap();
    let job = &jobs[0];
    let now = now_millis();
    // A failure with a retry due now: claimable again by anyone.
    let failed = f.attempt(&job.msg_id, &ep, 500);
    f.store
        .record_outcomes(Arc::from(vec![outcome(job.delivery_id, Some(failed), status::SENDING, 1, Some(now))]), None)
        .await
        .unwrap();
    let again = f.store.claim_due(&lease("n1", 60_000), now_millis() + 1, 10, &[]).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    // Success: nothing left to claim, stats and attempts say so.
    let ok = f.attempt(&job.msg_id, &ep, 200);
    f.store
        .record_outcomes(Arc::from(vec![outcome(job.delivery_id, Some(ok), status::SUCCESS, 2, None)]), None)
        .await
        .unwrap();
    assert!(f.store.claim_due(&lease("n1", 1), now_millis() + 100_000, 10, &[]).await.unwrap().is_empty());
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
    let jobs = f.store.create_message(f.message("a", None, None), None, Some(lease("n1", 60_000)), None).await.unwrap();
    let batch: Arc<[Outcome]> = Arc::from(vec![outcome(
        jobs[0].delivery_id,
        Some(f.attempt(&jobs[0].msg_id, &ep, 200)),
        status::SUCCESS,
        1,
        None,
    )]);
    f.store.record_outcomes(batch.clone(), None).await.unwrap();
    f.store.record_outcomes(batch, None).await.unwrap();
    let attempts = f.store.list_attempts(&f.org, &f.app, &AttemptFilter::default(), &page(10)).await.unwrap();
    assert_eq!(attempts.len(), 1);
}

pub async fn outcomes_of_deleted_deliveries_are_dropped(f: Fixture) {
    let a = f.endpoint(None, None).await;
    let b = f.endpoint(None, None).await;
    let msg = f.message("a", None, None);
    let jobs = f.store.create_message(msg.clone(), None, Some(lease("n1", 60_000)), None).await.unwrap();
    assert_eq!(jobs.len(), 2);
    // The endpoint goes away while its request is in flight.
    f.store.delete_endpoint(&f.org, &f.app, &a.id).await.unwrap();
    let outcomes: Vec<Outcome> = jobs
        .iter()
        .map(|j| outcome(j.delivery_id, Some(f.attempt(&msg.id, &j.endpoint, 200)), status::SUCCESS, 1, None))
        .collect();
    f.store.record_outcomes(Arc::from(outcomes), None).await.unwrap();
    let attempts = f.store.list_attempts(&f.org, &f.app, &AttemptFilter::default(), &page(10)).await.unwrap();
    assert_eq!(attempts.iter().map(|a| a.endpoint_id.clone()).collect::<Vec<_>>(), vec![b.id.clone()]);
    assert_eq!(destination_status(&f, &msg.id, &b.id).await, status::SUCCESS);
}

pub async fn renewed_leases_keep_other_nodes_away(f: Fixture) {
    let ep = f.endpoint(None, None).await;
    f.send("a").await;
    f.send("a").await;
    let held = f.store.claim_due(&lease("n1", 300), now_millis(), 1, &[]).await.unwrap();
    assert_eq!(held.len(), 1);
    // n1 renews the delivery it holds and its queue; the other delivery's lease
    // is not n1's to renew (it has none), so only the held one stays away.
    f.store.renew(&lease("n1", 60_000), &[held[0].delivery_id], std::slice::from_ref(&ep.id)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        f.store.claim_due(&lease("n2", 60_000), now_millis(), 10, &[]).await.unwrap().is_empty(),
        "n1 still owns it"
    );
    let rest = f.store.claim_due(&lease("n1", 60_000), now_millis(), 10, &[]).await.unwrap();
    assert_eq!(rest.len(), 1, "n1 gets the delivery it did not hold, not the one it does");
    assert_ne!(rest[0].delivery_id, held[0].delivery_id);
    // Renewing leases another node holds does nothing.
    f.store.renew(&lease("n2", 600_000), &[held[0].delivery_id], std::slice::from_ref(&ep.id)).await.unwrap();
    f.store.release_endpoints("n1").await.unwrap();
    assert!(
        f.store.claim_due(&lease("n2", 60_000), now_millis(), 10, &[]).await.unwrap().is_empty(),
        "leases still held"
    );
    assert_eq!(f.store.claim_due(&lease("n2", 60_000), now_millis() + 70_000, 10, &[]).await.unwrap().len(), 2);
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
                    let jobs = store.claim_due(&lease(&owner, 60_000), now_millis(), 3, &[]).await.unwrap();
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

pub async fn resend_makes_a_delivery_due_again(f: Fixture) {
    let ep = f.endpoint(None, None).await;
    let msg = f.message("a", None, None);
    let jobs = f.store.create_message(msg.clone(), None, Some(lease("n1", 60_000)), None).await.unwrap();
    let delivery_id = jobs[0].delivery_id;
    let failed = f.attempt(&msg.id, &ep, 500);
    f.store
        .record_outcomes(Arc::from(vec![outcome(delivery_id, Some(failed), status::FAIL, 1, None)]), None)
        .await
        .unwrap();

    // With a lease, the resent delivery comes back ready to send, as a manual attempt.
    let again = f.store.resend(&f.org, &f.app, &msg.id, &ep.id, Some(lease("n1", 60_000)), None).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].delivery_id, again[0].attempts, again[0].trigger), (delivery_id, 1, AttemptTrigger::Manual));
    assert_eq!(destination_status(&f, &msg.id, &ep.id).await, status::PENDING);

    // Without a lease it waits for a worker; a success stays a success.
    let ok = f.attempt(&msg.id, &ep, 200);
    f.store
        .record_outcomes(Arc::from(vec![outcome(delivery_id, Some(ok), status::SUCCESS, 2, None)]), None)
        .await
        .unwrap();
    assert!(f.store.resend(&f.org, &f.app, &msg.id, &ep.id, None, None).await.unwrap().is_empty());
    assert_eq!(destination_status(&f, &msg.id, &ep.id).await, status::SUCCESS);
    let claimed = f.store.claim_due(&lease("n1", 60_000), now_millis(), 10, &[]).await.unwrap();
    assert_eq!(claimed.iter().map(|j| j.delivery_id).collect::<Vec<_>>(), vec![delivery_id]);

    // To an endpoint the message never went to, the delivery is created.
    let late = f.endpoint(None, None).await;
    assert!(f.store.resend(&f.org, &f.app, &msg.id, &late.id, None, None).await.unwrap().is_empty());
    let claimed = f.store.claim_due(&lease("n1", 60_000), now_millis(), 10, &[]).await.unwrap();
    assert_eq!(claimed.iter().map(|j| j.endpoint.id.as_str()).collect::<Vec<_>>(), vec![late.id.as_str()]);

    let unknown = f.store.resend(&f.org, &f.app, "msg_unknown", &ep.id, None, None).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
    let unknown = f.store.resend(&f.org, &f.app, &msg.id, "ep_unknown", None, None).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
}

pub async fn recover_and_replay_make_work_due(f: Fixture) {
    let ep = f.endpoint(None, None).await;
    let mut sent = Vec::new();
    for event_type in ["a", "a", "b"] {
        let msg = f.message(event_type, None, None);
        let jobs = f.store.create_message(msg.clone(), None, Some(lease("n1", 60_000)), None).await.unwrap();
        sent.push((msg, jobs[0].delivery_id));
    }
    let failures: Vec<Outcome> =
        sent[..2].iter().map(|(m, d)| outcome(*d, Some(f.attempt(&m.id, &ep, 500)), status::FAIL, 1, None)).collect();
    let ok = outcome(sent[2].1, Some(f.attempt(&sent[2].0.id, &ep, 200)), status::SUCCESS, 1, None);
    f.store.record_outcomes(Arc::from([failures, vec![ok]].concat()), None).await.unwrap();
    assert!(f.store.claim_due(&lease("n1", 60_000), now_millis() + 100_000, 10, &[]).await.unwrap().is_empty());

    // Recovery makes the failed deliveries created in the window due again.
    assert_eq!(f.store.recover_failed(&f.org, &f.app, &ep.id, 0, 1, None).await.unwrap(), 0, "outside the window");
    assert_eq!(f.store.recover_failed(&f.org, &f.app, &ep.id, 0, i64::MAX, None).await.unwrap(), 2);
    let recovered = f.store.claim_due(&lease("n1", 60_000), now_millis(), 10, &[]).await.unwrap();
    assert_eq!(recovered.len(), 2);
    assert!(recovered.iter().all(|j| j.attempts == 1));
    assert_eq!(destination_status(&f, &sent[0].0.id, &ep.id).await, status::PENDING);

    // Replay sends an endpoint what it would have got had it existed.
    let late = f.endpoint(Some(vec!["a"]), None).await;
    assert_eq!(f.store.replay_missing(&f.org, &f.app, &late.id, 0, 1, None).await.unwrap(), 0, "outside the window");
    assert_eq!(f.store.replay_missing(&f.org, &f.app, &late.id, 0, i64::MAX, None).await.unwrap(), 2);
    assert_eq!(f.store.replay_missing(&f.org, &f.app, &late.id, 0, i64::MAX, None).await.unwrap(), 0, "only once");
    let replayed = f.store.claim_due(&lease("n1", 60_000), now_millis(), 10, &[]).await.unwrap();
    assert_eq!(replayed.len(), 2);
    assert!(replayed.iter().all(|j| j.endpoint.id == late.id && j.event_type == "a"));
    let unknown = f.store.replay_missing(&f.org, &f.app, "ep_unknown", 0, i64::MAX, None).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
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

pub async fn an_outcome_from_a_node_that_lost_the_lease_is_ignored(f: Fixture) {
    f.endpoint(None, None).await;
    let jobs = f.store.create_message(f.message("a", None, None), None, Some(lease("n1", 100)), None).await.unwrap();
    let id = jobs[0].delivery_id;
    // n1's lease runs out and n2 takes the delivery over.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let taken = f.store.claim_due(&lease("n2", 60_000), now_millis(), 10, &[]).await.unwrap();
    assert_eq!(taken.len(), 1);
    // n1's late outcome must not overwrite n2's lease or state.
    f.store.record_outcomes(Arc::from(vec![outcome(id, None, status::SUCCESS, 1, None)]), Some("n1")).await.unwrap();
    assert_eq!(f.store.pending_count().await.unwrap(), 1, "still n2's, unfinished");
    // n2's own outcome lands.
    f.store.record_outcomes(Arc::from(vec![outcome(id, None, status::SUCCESS, 1, None)]), Some("n2")).await.unwrap();
    assert_eq!(f.store.pending_count().await.unwrap(), 0);
}
