//! The store behaviour suite: what every backend must do, written against the
//! `Store` interface. It runs on SQLite here; other backends run the same cases.

use std::sync::Arc;

use hookd_core::id::{new_id, IdPrefix};
use hookd_core::timefmt::now_millis;
use hookd_core::Secret;
use hookd_store::sqlite::SqliteStore;
use hookd_store::*;

struct Fixture {
    store: Arc<dyn Store>,
    org: String,
    app: String,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_dir(dir.path()).unwrap());
    let org = store.default_org().await.unwrap();
    let t = now_millis();
    let app = store
        .create_app(
            Application {
                org_id: org.clone(),
                id: new_id(IdPrefix::Application),
                uid: Some("acme".into()),
                name: "Acme".into(),
                rate_limit: None,
                metadata: Default::default(),
                created_at: t,
                updated_at: t,
            },
            None,
        )
        .await
        .unwrap();
    Fixture { store, org, app: app.id, _dir: dir }
}

impl Fixture {
    async fn endpoint(&self, event_types: Option<Vec<&str>>, channels: Option<Vec<&str>>) -> Endpoint {
        let t = now_millis();
        self.store
            .create_endpoint(
                Endpoint {
                    org_id: self.org.clone(),
                    app_id: self.app.clone(),
                    id: new_id(IdPrefix::Endpoint),
                    uid: None,
                    url: "https://example.com/hook".into(),
                    description: String::new(),
                    version: 1,
                    disabled: false,
                    event_types: event_types.map(|v| v.into_iter().map(String::from).collect()),
                    channels: channels.map(|v| v.into_iter().map(String::from).collect()),
                    rate_limit: None,
                    metadata: Default::default(),
                    headers: Default::default(),
                    secret: Secret::generate(),
                    retired_secrets: Vec::new(),
                    created_at: t,
                    updated_at: t,
                },
                None,
            )
            .await
            .unwrap()
    }

    fn message(&self, event_type: &str, event_id: Option<&str>, channels: Option<Vec<&str>>) -> Message {
        Message {
            org_id: self.org.clone(),
            app_id: self.app.clone(),
            id: new_id(IdPrefix::Message),
            event_id: event_id.map(String::from),
            event_type: event_type.into(),
            channels: channels.map(|v| v.into_iter().map(String::from).collect()),
            tags: None,
            payload: Some(Arc::from(&b"{\"a\":1}"[..])),
            created_at: now_millis(),
        }
    }
}

fn lease(owner: &str, ms: i64) -> Lease {
    Lease { owner: owner.into(), until: now_millis() + ms }
}

#[tokio::test]
async fn a_message_fans_out_to_matching_endpoints_in_one_commit() {
    let f = fixture().await;
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
}

#[tokio::test]
async fn leased_deliveries_are_claimed_only_after_the_lease_expires() {
    let f = fixture().await;
    f.endpoint(None, None).await;
    // Unleased work is claimable at once, and claims are exclusive.
    f.store.create_message(f.message("a", None, None), None, None, None).await.unwrap();
    assert_eq!(f.store.claim_due(&lease("n1", 150), now_millis(), 10).await.unwrap().len(), 1);
    assert!(f.store.claim_due(&lease("n1", 150), now_millis(), 10).await.unwrap().is_empty());
    // n1 now owns the endpoint's queue: its fresh work is leased to it, and
    // another node can take nothing until the leases lapse.
    let fresh = f.store.create_message(f.message("a", None, None), None, Some(lease("n1", 150)), None).await.unwrap();
    assert_eq!(fresh.len(), 1);
    let for_n2 =
        f.store.create_message(f.message("a", None, None), None, Some(lease("n2", 60_000)), None).await.unwrap();
    assert!(for_n2.is_empty(), "n2 does not own the endpoint: the delivery is left for the owner");
    assert!(f.store.claim_due(&lease("n2", 60_000), now_millis(), 10).await.unwrap().is_empty());

    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let taken_over = f.store.claim_due(&lease("n2", 60_000), now_millis(), 10).await.unwrap();
    assert_eq!(taken_over.len(), 3, "the dead owner's endpoint and deliveries are taken over");
}

#[tokio::test]
async fn each_endpoint_queue_has_one_owner_at_a_time() {
    let f = fixture().await;
    let a = f.endpoint(Some(vec!["a"]), None).await;
    let b = f.endpoint(Some(vec!["b"]), None).await;
    for _ in 0..3 {
        f.store.create_message(f.message("a", None, None), None, None, None).await.unwrap();
        f.store.create_message(f.message("b", None, None), None, None, None).await.unwrap();
    }
    // n1 takes one endpoint's queue by claiming a little...
    let first = f.store.claim_due(&lease("n1", 60_000), now_millis(), 1).await.unwrap();
    let owned_by_n1 = first[0].endpoint.id.clone();
    // ...n2 then gets only the other endpoint's deliveries, n1 the rest of its own.
    let n2 = f.store.claim_due(&lease("n2", 60_000), now_millis(), 10).await.unwrap();
    assert_eq!(n2.len(), 3);
    assert!(n2.iter().all(|j| j.endpoint.id != owned_by_n1));
    let n1 = f.store.claim_due(&lease("n1", 60_000), now_millis(), 10).await.unwrap();
    assert_eq!(n1.len(), 2);
    assert!(n1.iter().all(|j| j.endpoint.id == owned_by_n1));
    assert!([&a.id, &b.id].contains(&&owned_by_n1));

    // Renewal keeps ownership; release hands it over.
    f.store.renew(&lease("n1", 60_000), &[], std::slice::from_ref(&owned_by_n1)).await.unwrap();
    f.store
        .create_message(f.message(if owned_by_n1 == a.id { "a" } else { "b" }, None, None), None, None, None)
        .await
        .unwrap();
    assert!(f.store.claim_due(&lease("n2", 60_000), now_millis(), 10).await.unwrap().is_empty());
    f.store.release_endpoints("n1").await.unwrap();
    assert_eq!(f.store.claim_due(&lease("n2", 60_000), now_millis(), 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn outcomes_finish_or_reschedule_deliveries() {
    let f = fixture().await;
    let ep = f.endpoint(None, None).await;
    let jobs = f.store.create_message(f.message("a", None, None), None, Some(lease("n1", 60_000)), None).await.unwrap();
    let job = &jobs[0];
    let now = now_millis();
    let attempt = |status| Attempt {
        id: new_id(IdPrefix::Attempt),
        org_id: f.org.clone(),
        app_id: f.app.clone(),
        msg_id: job.msg_id.clone(),
        endpoint_id: ep.id.clone(),
        url: ep.url.clone(),
        status,
        response_status_code: if status == status::SUCCESS { 200 } else { 500 },
        response: String::new(),
        response_duration_ms: 3,
        trigger: hookd_core::AttemptTrigger::Scheduled,
        created_at: now,
    };
    // A failure with a retry due now: claimable again by anyone.
    f.store
        .record_outcomes(Arc::from(vec![Outcome {
            delivery_id: job.delivery_id,
            attempt: Some(attempt(status::FAIL)),
            new_status: status::SENDING,
            attempts: 1,
            next_attempt_at: Some(now),
        }]))
        .await
        .unwrap();
    let again = f.store.claim_due(&lease("n1", 60_000), now_millis() + 1, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    // Success: nothing left to claim, stats and attempts say so.
    f.store
        .record_outcomes(Arc::from(vec![Outcome {
            delivery_id: job.delivery_id,
            attempt: Some(attempt(status::SUCCESS)),
            new_status: status::SUCCESS,
            attempts: 2,
            next_attempt_at: None,
        }]))
        .await
        .unwrap();
    assert!(f.store.claim_due(&lease("n1", 1), now_millis() + 100_000, 10).await.unwrap().is_empty());
    let stats = f.store.endpoint_stats(&f.org, &ep.id, 0, i64::MAX).await.unwrap();
    assert_eq!(stats, EndpointStats { success: 1, ..Default::default() });
    let page = Page { limit: 10, iterator: None, backwards: false, descending: true };
    let attempts = f
        .store
        .list_attempts(&f.org, &f.app, &AttemptFilter { msg_id: Some(job.msg_id.clone()), ..Default::default() }, &page)
        .await
        .unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(f.store.pending_count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_repeated_event_id_conflicts_and_names_the_first_message() {
    let f = fixture().await;
    f.endpoint(None, None).await;
    let first = f.message("a", Some("evt-1"), None);
    f.store.create_message(first.clone(), None, None, None).await.unwrap();
    match f.store.create_message(f.message("a", Some("evt-1"), None), None, None, None).await {
        Err(StoreError::Conflict { existing_id, .. }) => assert_eq!(existing_id, Some(first.id)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // The failed write left nothing behind: one delivery in all.
    assert_eq!(f.store.pending_count().await.unwrap(), 1);
}

#[tokio::test]
async fn a_failing_write_does_not_take_its_group_commit_down() {
    let f = fixture().await;
    f.endpoint(None, None).await;
    // Many concurrent writes, every other one failing: the others commit.
    let mut handles = Vec::new();
    for i in 0..100 {
        let store = f.store.clone();
        let msg = f.message("a", Some(if i % 2 == 0 { "dup" } else { "" }).filter(|s| !s.is_empty()), None);
        handles.push(tokio::spawn(async move { store.create_message(msg, None, None, None).await.is_ok() }));
    }
    let mut ok = 0;
    for h in handles {
        ok += h.await.unwrap() as usize;
    }
    assert_eq!(ok, 51, "50 without an event id and the first `dup`");
    assert_eq!(f.store.pending_count().await.unwrap(), 51);
}

#[tokio::test]
async fn an_idempotency_key_is_committed_with_what_it_created() {
    let f = fixture().await;
    f.endpoint(None, None).await;
    let key = IdempotencyKey { method: "POST".into(), path: "/api/v1/app/x/msg".into(), key: "k1".into() };
    let record = |id: &str| IdempotencyRecord {
        org_id: f.org.clone(),
        key: key.clone(),
        request_hash: "h".into(),
        status: 202,
        resource_id: Some(id.into()),
        expires_at: now_millis() + 60_000,
    };
    let first = f.message("a", None, None);
    f.store.create_message(first.clone(), None, None, Some(record(&first.id))).await.unwrap();
    let second = f.message("a", None, None);
    match f.store.create_message(second.clone(), None, None, Some(record(&second.id))).await {
        Err(StoreError::IdempotencyReplay(prev)) => {
            assert_eq!(prev.resource_id, Some(first.id.clone()))
        }
        other => panic!("expected a replay, got {other:?}"),
    }
    assert!(matches!(f.store.get_message(&f.org, &f.app, &second.id).await, Err(StoreError::NotFound)));
    let found = f.store.idempotency_lookup(&f.org, &key).await.unwrap().unwrap();
    assert_eq!(found.status, 202);
    // Expired keys are purged.
    assert_eq!(f.store.purge_expired(now_millis() + 120_000).await.unwrap(), 1);
    assert!(f.store.idempotency_lookup(&f.org, &key).await.unwrap().is_none());
}

#[tokio::test]
async fn lists_page_in_id_order_both_ways() {
    let f = fixture().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(f.endpoint(None, None).await.id);
    }
    let page = |iterator: Option<String>, backwards| Page { limit: 2, iterator, backwards, descending: false };
    let first = f.store.list_endpoints(&f.org, &f.app, &page(None, false)).await.unwrap();
    assert_eq!(first.len(), 3, "limit + 1 rows tell the caller there is more");
    assert_eq!(first[0].id, ids[0]);
    let next = f.store.list_endpoints(&f.org, &f.app, &page(Some(ids[1].clone()), false)).await.unwrap();
    assert_eq!(next.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), ids[2..5].to_vec());
    let back = f.store.list_endpoints(&f.org, &f.app, &page(Some(ids[3].clone()), true)).await.unwrap();
    assert_eq!(
        back.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]
    );
}
