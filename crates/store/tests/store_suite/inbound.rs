//! Inbound sources and their request log.

use hookd_core::id::{new_id, IdPrefix};
use hookd_core::timefmt::now_millis;
use hookd_store::*;
use serde_json::json;

use crate::fixture::{page, Fixture};

fn source(f: &Fixture, token: &str) -> (Source, Application) {
    let t = now_millis();
    let src = Source {
        org_id: f.org.clone(),
        id: new_id(IdPrefix::Source),
        uid: Some("stripe".into()),
        name: "Stripe".into(),
        kind: "stripe".into(),
        config: json!({"secret": "whsec_test"}),
        settings: json!({"rateLimit": 5}),
        metadata: Default::default(),
        app_id: new_id(IdPrefix::Application),
        token: token.into(),
        prev_token: None,
        prev_token_until: None,
        created_at: t,
        updated_at: t,
    };
    let app = Application {
        org_id: f.org.clone(),
        id: src.app_id.clone(),
        uid: None,
        name: "inbound: Stripe".into(),
        rate_limit: None,
        metadata: Default::default(),
        created_at: t,
        updated_at: t,
    };
    (src, app)
}

fn request(src: &Source) -> InboundRequest {
    InboundRequest {
        org_id: src.org_id.clone(),
        id: new_id(IdPrefix::InboundRequest),
        source_id: src.id.clone(),
        received_at: now_millis(),
        method: "POST".into(),
        query: String::new(),
        remote_addr: Some("127.0.0.1".into()),
        headers: vec![("stripe-signature".into(), "t=1,v1=00".into())],
        body: br#"{"id":"evt_1"}"#.to_vec(),
        outcome: InboundOutcome::Rejected,
        status_code: 200,
        error: None,
        event_type: Some("charge.succeeded".into()),
        event_id: Some("evt_1".into()),
        msg_id: None,
        replay_of: None,
        object: None,
    }
}

pub async fn sources_are_found_by_their_token_and_a_rotated_one_for_its_grace(f: Fixture) {
    let (src, app) = source(&f, "tok-1");
    f.store.create_source(src.clone(), app).await.unwrap();
    let found = f.store.source_by_token("tok-1").await.unwrap().expect("found by its token");
    assert_eq!((found.id.as_str(), found.config["secret"].as_str()), (src.id.as_str(), Some("whsec_test")));
    assert_eq!(found.settings, json!({"rateLimit": 5}));
    assert!(f.store.source_by_token("tok-x").await.unwrap().is_none());
    assert_eq!(f.store.get_source(&f.org, "stripe").await.unwrap().id, src.id);
    // A second source cannot take the uid.
    let (mut other, other_app) = source(&f, "tok-2");
    other.app_id = other_app.id.clone();
    assert!(matches!(f.store.create_source(other, other_app).await, Err(StoreError::Conflict { .. })));

    // Rotated: both tokens work during the grace period…
    let mut rotated = found.clone();
    rotated.token = "tok-3".into();
    rotated.prev_token = Some("tok-1".into());
    rotated.prev_token_until = Some(now_millis() + 60_000);
    f.store.update_source(rotated.clone()).await.unwrap();
    assert_eq!(f.store.source_by_token("tok-3").await.unwrap().map(|s| s.id), Some(src.id.clone()));
    assert_eq!(f.store.source_by_token("tok-1").await.unwrap().map(|s| s.id), Some(src.id.clone()));
    // …and the old one no longer once it has passed.
    let mut expired = rotated.clone();
    expired.prev_token = Some("tok-1".into());
    expired.prev_token_until = Some(now_millis() - 1);
    f.store.update_source(expired).await.unwrap();
    assert!(f.store.source_by_token("tok-1").await.unwrap().is_none());

    // Deleting the source removes its application and log.
    f.store.ingest(request(&src), None, None).await.unwrap();
    f.store.delete_source(&f.org, &src.id).await.unwrap();
    assert!(matches!(f.store.get_app(&f.org, &src.app_id).await, Err(StoreError::NotFound)));
    assert!(f.store.source_by_token("tok-3").await.unwrap().is_none());
    let log = f.store.list_inbound_requests(&f.org, &src.id, &InboundFilter::default(), &page(10)).await.unwrap();
    assert!(log.is_empty());
}

pub async fn concurrent_repeats_of_one_event_make_one_message(f: Fixture) {
    let (src, app) = source(&f, "tok-c");
    f.store.create_source(src.clone(), app.clone()).await.unwrap();
    let mut ep = f.endpoint_row(None, None);
    ep.app_id = app.id.clone();
    f.store.create_endpoint(ep, None).await.unwrap();
    let mut handles = Vec::new();
    for _ in 0..20 {
        let store = f.store.clone();
        let req = request(&src);
        let msg = Message { app_id: app.id.clone(), ..f.message("charge.succeeded", Some("evt_1"), None) };
        handles.push(tokio::spawn(async move { store.ingest(req, Some(msg), None).await.unwrap() }));
    }
    let mut firsts = Vec::new();
    for h in handles {
        firsts.push(h.await.unwrap().duplicate_of);
    }
    assert_eq!(firsts.iter().filter(|d| d.is_none()).count(), 1, "one request is the first");
    let all = f.store.list_inbound_requests(&f.org, &src.id, &InboundFilter::default(), &page(50)).await.unwrap();
    assert_eq!(all.len(), 20, "every request is in the log");
    let accepted: Vec<_> = all.iter().filter(|(r, _)| r.outcome == InboundOutcome::Accepted).collect();
    assert_eq!(accepted.len(), 1);
    let first_msg = accepted[0].0.msg_id.clone().unwrap();
    assert!(
        all.iter().all(|(r, _)| r.msg_id.as_deref() == Some(first_msg.as_str())),
        "duplicates name the first message"
    );
    assert_eq!(accepted[0].1.deliveries, 1);
    let msgs = f.store.list_messages(&f.org, &app.id, &MessageFilter::default(), &page(50)).await.unwrap();
    assert_eq!(msgs.len(), 1);
    // Filters.
    let filter = InboundFilter { outcome: Some(InboundOutcome::Duplicate), ..Default::default() };
    let dups = f.store.list_inbound_requests(&f.org, &src.id, &filter, &page(50)).await.unwrap();
    assert_eq!(dups.len(), 19);
    let (one, _) = f.store.get_inbound_request(&f.org, &src.id, &dups[0].0.id).await.unwrap();
    assert_eq!(one.headers, vec![("stripe-signature".to_string(), "t=1,v1=00".to_string())]);
    assert_eq!(one.body, br#"{"id":"evt_1"}"#.to_vec());
}

pub async fn an_object_moves_only_forward_under_concurrent_reports(f: Fixture) {
    let (src, app) = source(&f, "tok-t");
    f.store.create_source(src.clone(), app.clone()).await.unwrap();
    // 30 reports of one object at steps 0..=2, racing: each step is taken at
    // most once, and the object ends at step 2.
    let mut handles = Vec::new();
    for i in 0..30 {
        let store = f.store.clone();
        let rank = i % 3;
        let req = InboundRequest {
            event_id: None,
            object: Some(ObjectStatus { object_id: "SM1".into(), status: format!("s{rank}"), rank }),
            ..request(&src)
        };
        let msg = Message { app_id: app.id.clone(), ..f.message("sms.status", None, None) };
        handles.push(tokio::spawn(async move { store.ingest(req, Some(msg), None).await.unwrap() }));
    }
    let mut ignored = 0;
    for h in handles {
        ignored += usize::from(h.await.unwrap().ignored);
    }
    let object = f.store.get_tracked_object(&f.org, &src.id, "SM1").await.unwrap();
    assert_eq!(object.status, "s2");
    let filter = InboundFilter { object_id: Some("SM1".into()), ..Default::default() };
    let log = f.store.list_inbound_requests(&f.org, &src.id, &filter, &page(50)).await.unwrap();
    assert_eq!(log.len(), 30);
    let mut taken: Vec<String> = log
        .iter()
        .filter(|(r, _)| r.outcome == InboundOutcome::Accepted)
        .map(|(r, _)| r.object.as_ref().unwrap().status.clone())
        .collect();
    assert_eq!(taken.len(), 30 - ignored);
    taken.sort();
    let before = taken.len();
    taken.dedup();
    assert_eq!(taken.len(), before, "a step was taken twice: {taken:?}");
    assert!(taken.contains(&"s2".to_string()));
    let msgs = f.store.list_messages(&f.org, &app.id, &MessageFilter::default(), &page(50)).await.unwrap();
    assert_eq!(msgs.len(), taken.len(), "only the reports that moved the object made messages");
    assert!(matches!(f.store.get_tracked_object(&f.org, &src.id, "SM2").await, Err(StoreError::NotFound)));
}

pub async fn a_due_source_is_run_by_one_node_at_a_time(f: Fixture) {
    let (src, app) = source(&f, "tok-s");
    f.store.create_source(src.clone(), app).await.unwrap();
    let now = now_millis();
    f.store.set_source_schedule(&f.org, &src.id, Some(now)).await.unwrap();
    // Two nodes look at once: one takes it.
    let (a, b) = tokio::join!(f.store.claim_due_source(now, now + 60_000), f.store.claim_due_source(now, now + 60_000));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(usize::from(a.is_some()) + usize::from(b.is_some()), 1);
    let (taken, due) = a.or(b).unwrap();
    assert_eq!((taken.id.as_str(), due), (src.id.as_str(), now));
    // Held: not taken again until the lease lapses, then it is (its node died).
    assert!(f.store.claim_due_source(now + 1_000, now + 61_000).await.unwrap().is_none());
    let (again, due) = f.store.claim_due_source(now + 60_001, now + 120_000).await.unwrap().unwrap();
    assert_eq!((again.id.as_str(), due), (src.id.as_str(), now));
    // The first node, its lease lost, records nothing.
    f.store.finish_source_run(&src.id, now, now + 60_000, now + 1, now + 2, json!({"late": true})).await.unwrap();
    assert!(f.store.get_source_schedule(&f.org, &src.id).await.unwrap().unwrap().last_result.is_none());
    // Finished by the holder: due next time, with what the run did.
    f.store
        .finish_source_run(&src.id, now, now + 120_000, now + 300_000, now + 2, json!({"forwarded": 2}))
        .await
        .unwrap();
    let s = f.store.get_source_schedule(&f.org, &src.id).await.unwrap().unwrap();
    assert_eq!((s.due_at, s.last_run_at, s.last_result), (now + 300_000, Some(now + 2), Some(json!({"forwarded": 2}))));
    assert!(f.store.claim_due_source(now + 200_000, now + 260_000).await.unwrap().is_none());
    // A schedule changed during a run is kept.
    let (_, due) = f.store.claim_due_source(now + 300_000, now + 360_000).await.unwrap().unwrap();
    f.store.set_source_schedule(&f.org, &src.id, Some(now + 1)).await.unwrap();
    f.store.finish_source_run(&src.id, due, now + 360_000, now + 600_000, now + 300_001, json!({})).await.unwrap();
    assert_eq!(f.store.get_source_schedule(&f.org, &src.id).await.unwrap().unwrap().due_at, now + 1);
    // Deleted with its source.
    f.store.delete_source(&f.org, &src.id).await.unwrap();
    assert!(f.store.get_source_schedule(&f.org, &src.id).await.unwrap().is_none());
    assert!(f.store.claim_due_source(now + 900_000, now + 960_000).await.unwrap().is_none());
}
