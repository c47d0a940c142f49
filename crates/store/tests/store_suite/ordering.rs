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
