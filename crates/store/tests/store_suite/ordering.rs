//! Ordered endpoints: within an ordering key, one delivery at a time, in
//! creation order; keys do not wait for each other.

use std::sync::Arc;
use std::time::Duration;

use hookd_core::ordering::{OnFailure, Ordering};
use hookd_store::*;

use crate::fixture::{lease, outcome, Fixture};

/// An endpoint ordered by the payload's `/customer`.
async fn ordered(f: &Fixture) -> Endpoint {
    let mut ep = f.endpoint_row(None, None);
    ep.control.ordering = Some(Ordering { key: Some("/customer".into()), on_failure: OnFailure::Block });
    f.store.create_endpoint(ep, None).await.unwrap()
}

fn for_customer(f: &Fixture, customer: &str) -> Message {
    let mut msg = f.message("a", None, None);
    msg.payload = Some(Arc::from(format!(r#"{{"customer": "{customer}"}}"#).into_bytes()));
    msg
}

/// Message ids of the jobs.
fn msgs(jobs: &[DeliveryJob]) -> Vec<String> {
    let mut ids: Vec<String> = jobs.iter().map(|j| j.msg_id.clone()).collect();
    ids.sort();
    ids
}

pub async fn an_ordered_endpoint_sends_one_delivery_per_key_at_a_time(f: Fixture) {
    ordered(&f).await;
    let n1 = lease("n1", 60_000);
    let (a1, a2, b1) = (for_customer(&f, "a"), for_customer(&f, "a"), for_customer(&f, "b"));
    let fresh = f.store.enqueue(a1.clone(), None, Some(n1.clone()), None).await.unwrap();
    assert_eq!(msgs(&fresh), vec![a1.id.clone()], "the first of its key goes at once");
    let behind = f.store.enqueue(a2.clone(), None, Some(n1.clone()), None).await.unwrap();
    assert!(behind.is_empty(), "a2 waits behind a1");
    let other = f.store.enqueue(b1.clone(), None, Some(n1.clone()), None).await.unwrap();
    assert_eq!(msgs(&other), vec![b1.id.clone()], "another key does not wait");
    assert!(f.store.claim_due(&n1, 10, &[]).await.unwrap().is_empty());

    // a1 fails with retries left: still first, a2 still waits.
    let retry = outcome(&fresh[0], None, NextState::Retry { after_ms: 100 }, 1);
    f.store.record_outcomes(Arc::from(vec![retry])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let again = f.store.claim_due(&n1, 10, &[]).await.unwrap();
    assert_eq!(msgs(&again), vec![a1.id.clone()], "the retry of a1, not a2");
    // Exhausted: a2's turn (block gives up only when retries do).
    f.store.record_outcomes(Arc::from(vec![outcome(&again[0], None, NextState::Failed, 2)])).await.unwrap();
    let next = f.store.claim_due(&n1, 10, &[]).await.unwrap();
    assert_eq!(msgs(&next), vec![a2.id.clone()]);
    // A node restarting reads the same order from the store: nothing else is due.
    f.store
        .record_outcomes(Arc::from(vec![outcome(&next[0], None, NextState::Retry { after_ms: 0 }, 0)]))
        .await
        .unwrap();
    let after_release = f.store.claim_due(&lease("n1", 60_000), 10, &[]).await.unwrap();
    assert_eq!(msgs(&after_release), vec![a2.id.clone()]);
}

pub async fn ordering_holds_through_cancel_resend_and_changes(f: Fixture) {
    let ep = ordered(&f).await;
    let n1 = lease("n1", 60_000);
    let m: Vec<Message> = (0..4).map(|_| for_customer(&f, "a")).collect();
    for msg in &m {
        f.store.enqueue(msg.clone(), None, None, None).await.unwrap();
    }
    let head = f.store.claim_due(&n1, 10, &[]).await.unwrap();
    assert_eq!(msgs(&head), vec![m[0].id.clone()]);
    // The second is canceled while it waits: the third follows the first.
    f.store.cancel_message(&f.org, &f.app, &m[1].id).await.unwrap();
    f.store.record_outcomes(Arc::from(vec![outcome(&head[0], None, NextState::Succeeded, 1)])).await.unwrap();
    let third = f.store.claim_due(&n1, 10, &[]).await.unwrap();
    assert_eq!(msgs(&third), vec![m[2].id.clone()]);
    // A resend of the first (done) goes behind nothing it was created after:
    // it is the earliest waiting, so it goes once the third is done, before the fourth.
    f.store.resend(&f.org, &f.app, &m[0].id, &ep.id, Some(n1.clone()), None).await.unwrap();
    assert!(f.store.claim_due(&n1, 10, &[]).await.unwrap().is_empty(), "the third is in flight");
    f.store.record_outcomes(Arc::from(vec![outcome(&third[0], None, NextState::Succeeded, 1)])).await.unwrap();
    let resent = f.store.claim_due(&n1, 10, &[]).await.unwrap();
    assert_eq!(msgs(&resent), vec![m[0].id.clone()]);
    f.store.record_outcomes(Arc::from(vec![outcome(&resent[0], None, NextState::Succeeded, 2)])).await.unwrap();
    let fourth = f.store.claim_due(&n1, 10, &[]).await.unwrap();
    assert_eq!(msgs(&fourth), vec![m[3].id.clone()]);

    // Two more wait behind the fourth; ordering turned off lets them all go.
    let more: Vec<Message> = (0..2).map(|_| for_customer(&f, "a")).collect();
    for msg in &more {
        f.store.enqueue(msg.clone(), None, None, None).await.unwrap();
    }
    assert!(f.store.claim_due(&n1, 10, &[]).await.unwrap().is_empty());
    let off = EndpointChange::Settings(EndpointSettings { ordering: Some(None), ..Default::default() });
    f.store.update_endpoint(&f.org, &f.app, &ep.id, off, None).await.unwrap();
    let freed = f.store.claim_due(&n1, 10, &[]).await.unwrap();
    let mut expected: Vec<String> = more.iter().map(|m| m.id.clone()).collect();
    expected.sort();
    assert_eq!(msgs(&freed), expected);
}

/// Two nodes enqueue to two ordered endpoints at once (each message goes to
/// both, so two keys are locked together) while both claim and record: never
/// two deliveries of a key in flight, each key sent in creation (id) order,
/// and none left parked.
pub async fn concurrent_enqueues_keep_one_delivery_per_key_in_flight(f: Fixture) {
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Seen {
        key_of: HashMap<String, String>,
        in_flight: HashMap<String, i64>,
        sent: HashMap<String, Vec<i64>>,
        done: usize,
        overlaps: Vec<String>,
    }

    /// Sends the jobs (marks them in flight), then records them: every fourth
    /// first attempt is retried at once, the rest succeed.
    async fn send(store: &dyn Store, seen: &Mutex<Seen>, jobs: Vec<DeliveryJob>) {
        let keys: Vec<String> = {
            let mut s = seen.lock().unwrap();
            let keys: Vec<String> = jobs.iter().map(|j| format!("{}/{}", j.endpoint.id, s.key_of[&j.msg_id])).collect();
            for (j, key) in jobs.iter().zip(&keys) {
                if let Some(other) = s.in_flight.insert(key.clone(), j.delivery_id) {
                    s.overlaps.push(format!("{key}: {} with {other}", j.delivery_id));
                }
                s.sent.entry(key.clone()).or_default().push(j.delivery_id);
            }
            keys
        };
        tokio::task::yield_now().await;
        let mut outcomes = Vec::new();
        {
            // Out of flight before the outcome lands: the next may be claimed as soon as it does.
            let mut s = seen.lock().unwrap();
            for (j, key) in jobs.iter().zip(&keys) {
                s.in_flight.remove(key);
                let retry = j.attempts == 0 && j.delivery_id % 4 == 0;
                if !retry {
                    s.done += 1;
                }
                let next = if retry { NextState::Retry { after_ms: 0 } } else { NextState::Succeeded };
                outcomes.push(outcome(j, None, next, j.attempts + 1));
            }
        }
        if !outcomes.is_empty() {
            store.record_outcomes(Arc::from(outcomes)).await.unwrap();
        }
    }

    ordered(&f).await;
    let mut by_channel = f.endpoint_row(None, None);
    by_channel.control.ordering = Some(Ordering { key: Some("channel".into()), on_failure: OnFailure::Block });
    f.store.create_endpoint(by_channel, None).await.unwrap();
    let nodes: [Arc<dyn Store>; 2] = [f.store.clone(), f.another_node().await];
    const PRODUCERS: usize = 32;
    const PER_PRODUCER: usize = 12;
    let total = PRODUCERS * PER_PRODUCER * 2;
    let seen = Arc::new(Mutex::new(Seen::default()));

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (store, seen, stop) = (nodes[w % 2].clone(), seen.clone(), stop.clone());
        let lease = lease(&format!("n{}", w % 2), 60_000);
        workers.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let jobs = store.claim_due(&lease, 10, &[]).await.unwrap();
                if jobs.is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                send(&*store, &seen, jobs).await;
            }
        }));
    }
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let (store, seen) = (nodes[p % 2].clone(), seen.clone());
        let msgs: Vec<Message> = (0..PER_PRODUCER)
            .map(|_| {
                let mut msg = for_customer(&f, "a");
                msg.channels = Some(vec!["a".to_string()]);
                msg
            })
            .collect();
        producers.push(tokio::spawn(async move {
            for (i, msg) in msgs.into_iter().enumerate() {
                seen.lock().unwrap().key_of.insert(msg.id.clone(), "a".to_string());
                // Half leased at once to the enqueuing node, when first of its key.
                let lease = (i % 2 == 0).then(|| lease(&format!("n{}", p % 2), 60_000));
                let jobs = store.enqueue(msg, None, lease, None).await.unwrap();
                send(&*store, &seen, jobs).await;
            }
        }));
    }
    for p in producers {
        p.await.unwrap();
    }
    let started = std::time::Instant::now();
    while seen.lock().unwrap().done < total && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let s = seen.lock().unwrap();
    assert!(s.overlaps.is_empty(), "two of a key in flight: {:?}", s.overlaps);
    assert_eq!(s.done, total, "every delivery sent (none left parked)");
    for (key, ids) in &s.sent {
        assert!(ids.windows(2).all(|w| w[0] <= w[1]), "{key} sent out of order: {ids:?}");
    }
}

/// Disabling and enabling an ordered endpoint keeps its queue in order, and
/// what waits behind the first of a key stays parked (not due, so claims never
/// step over it).
pub async fn disabling_and_enabling_keep_an_ordered_queue_parked(f: Fixture) {
    let ep = ordered(&f).await;
    let n1 = lease("n1", 60_000);
    let m: Vec<Message> = (0..4).map(|_| for_customer(&f, "a")).collect();
    for msg in &m {
        f.store.enqueue(msg.clone(), None, None, None).await.unwrap();
    }
    let head = f.store.claim_due(&n1, 10, &[]).await.unwrap();
    assert_eq!(msgs(&head), vec![m[0].id.clone()]);
    let disable = |d: bool| EndpointChange::Settings(EndpointSettings { disabled: Some(d), ..Default::default() });
    f.store.update_endpoint(&f.org, &f.app, &ep.id, disable(true), None).await.unwrap();
    // The one in flight comes back paused (its node found the endpoint disabled).
    f.store.record_outcomes(Arc::from(vec![outcome(&head[0], None, NextState::Paused, 0)])).await.unwrap();
    f.store.update_endpoint(&f.org, &f.app, &ep.id, disable(false), None).await.unwrap();
    for later in &m[1..] {
        let d = f.delivery(&later.id, &ep.id).await;
        assert_eq!((d.state, d.next_attempt_at()), (DeliveryState::Scheduled, None), "{} stays parked", later.id);
    }
    let again = f.store.claim_due(&n1, 10, &[]).await.unwrap();
    assert_eq!(msgs(&again), vec![m[0].id.clone()], "the first goes again, alone");
    f.store.record_outcomes(Arc::from(vec![outcome(&again[0], None, NextState::Succeeded, 1)])).await.unwrap();
    assert_eq!(msgs(&f.store.claim_due(&n1, 10, &[]).await.unwrap()), vec![m[1].id.clone()]);
}

/// A recovered failure of an ordered endpoint goes back to its place: after
/// the one in flight, before everything created after it; the rest stay parked.
pub async fn a_recovered_failure_goes_back_to_its_place(f: Fixture) {
    use crate::lifecycle::{run_task, task};
    let ep = ordered(&f).await;
    let n1 = lease("n1", 60_000);
    let since = hookd_core::timefmt::now_millis() - 1000;
    let m: Vec<Message> = (0..4).map(|_| for_customer(&f, "a")).collect();
    for msg in &m {
        f.store.enqueue(msg.clone(), None, None, None).await.unwrap();
    }
    let first = f.store.claim_due(&n1, 10, &[]).await.unwrap();
    let failed = f.attempt(&m[0].id, &ep, 500);
    f.store.record_outcomes(Arc::from(vec![outcome(&first[0], Some(failed), NextState::Failed, 1)])).await.unwrap();
    let second = f.store.claim_due(&n1, 10, &[]).await.unwrap();
    assert_eq!(msgs(&second), vec![m[1].id.clone()]);

    let until = hookd_core::timefmt::now_millis() + 1;
    let done = run_task(&f, task(&f, &ep, TaskKind::EndpointRecover, since, until), 10).await;
    assert_eq!(done.messages_sent, 1);
    assert!(f.store.claim_due(&n1, 10, &[]).await.unwrap().is_empty(), "the second is in flight");
    for later in &m[2..] {
        assert_eq!(f.delivery(&later.id, &ep.id).await.next_attempt_at(), None, "still parked");
    }
    f.store.record_outcomes(Arc::from(vec![outcome(&second[0], None, NextState::Succeeded, 1)])).await.unwrap();
    let recovered = f.store.claim_due(&n1, 10, &[]).await.unwrap();
    assert_eq!(msgs(&recovered), vec![m[0].id.clone()], "the recovered one, before the third");
    f.store.record_outcomes(Arc::from(vec![outcome(&recovered[0], None, NextState::Succeeded, 2)])).await.unwrap();
    assert_eq!(msgs(&f.store.claim_due(&n1, 10, &[]).await.unwrap()), vec![m[2].id.clone()]);
}
