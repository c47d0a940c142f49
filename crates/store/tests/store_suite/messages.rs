//! Messages, idempotency, and what lists of messages, deliveries and attempts show.

use std::sync::Arc;

use hookd_core::timefmt::now_millis;
use hookd_store::*;

use crate::fixture::{ids, lease, page, Fixture, KEEP};

pub async fn a_repeated_event_id_conflicts_and_names_the_first_message(f: Fixture) {
    f.endpoint(None, None).await;
    let first = f.message("a", Some("evt-1"), None);
    f.store.enqueue(first.clone(), None, None, None).await.unwrap();
    match f.store.enqueue(f.message("a", Some("evt-1"), None), None, None, None).await {
        Err(StoreError::Conflict { existing_id, .. }) => assert_eq!(existing_id, Some(first.id)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // The failed write left nothing behind: one delivery in all.
    assert_eq!(f.store.pending_count().await.unwrap(), 1);
}

pub async fn a_failing_write_does_not_take_its_group_commit_down(f: Fixture) {
    f.endpoint(None, None).await;
    // Many concurrent writes, every other one failing: the others commit.
    let mut handles = Vec::new();
    for i in 0..100 {
        let store = f.store.clone();
        let msg = f.message("a", Some(if i % 2 == 0 { "dup" } else { "" }).filter(|s| !s.is_empty()), None);
        handles.push(tokio::spawn(async move { store.enqueue(msg, None, None, None).await.is_ok() }));
    }
    let mut ok = 0;
    for h in handles {
        ok += h.await.unwrap() as usize;
    }
    assert_eq!(ok, 51, "50 without an event id and the first `dup`");
    assert_eq!(f.store.pending_count().await.unwrap(), 51);
}

fn idempotency_key() -> IdempotencyKey {
    IdempotencyKey { method: "POST".into(), path: "/api/v1/app/x/msg".into(), key: "k1".into() }
}

fn record(f: &Fixture, resource_id: &str) -> IdempotencyRecord {
    IdempotencyRecord {
        org_id: f.org.clone(),
        key: idempotency_key(),
        request_hash: "h".into(),
        status: 202,
        resource_id: Some(resource_id.into()),
        expires_at: now_millis() + 60_000,
    }
}

pub async fn an_idempotency_key_is_committed_with_what_it_created(f: Fixture) {
    f.endpoint(None, None).await;
    let first = f.message("a", None, None);
    f.store.enqueue(first.clone(), None, None, Some(record(&f, &first.id))).await.unwrap();
    let second = f.message("a", None, None);
    match f.store.enqueue(second.clone(), None, None, Some(record(&f, &second.id))).await {
        Err(StoreError::IdempotencyReplay(prev)) => {
            assert_eq!(prev.resource_id, Some(first.id.clone()))
        }
        other => panic!("expected a replay, got {other:?}"),
    }
    assert!(matches!(f.store.get_message(&f.org, &f.app, &second.id).await, Err(StoreError::NotFound)));
    let found = f.store.idempotency_lookup(&f.org, &idempotency_key()).await.unwrap().unwrap();
    assert_eq!((found.status, found.request_hash.as_str()), (202, "h"));
    // A key that expired may be used again.
    let k2 = IdempotencyKey { key: "k2".into(), ..idempotency_key() };
    let third = f.message("a", None, None);
    let mut expired = IdempotencyRecord { key: k2.clone(), ..record(&f, &third.id) };
    expired.expires_at = now_millis() - 1;
    f.store.enqueue(third.clone(), None, None, Some(expired)).await.unwrap();
    assert!(f.store.idempotency_lookup(&f.org, &k2).await.unwrap().is_none(), "an expired key is not found");
    let fourth = f.message("a", None, None);
    f.store
        .enqueue(fourth.clone(), None, None, Some(IdempotencyRecord { key: k2.clone(), ..record(&f, &fourth.id) }))
        .await
        .unwrap();
    let found = f.store.idempotency_lookup(&f.org, &k2).await.unwrap().unwrap();
    assert_eq!(found.resource_id, Some(fourth.id));
    // Expired keys are removed by the retention sweep.
    let k3 = IdempotencyKey { key: "k3".into(), ..idempotency_key() };
    let mut old = IdempotencyRecord { key: k3.clone(), ..record(&f, "x") };
    old.expires_at = now_millis() - 1;
    f.store.enqueue(f.message("a", None, None), None, None, Some(old)).await.unwrap();
    assert!(f.store.prune(100, KEEP).await.unwrap().housekeeping >= 1);
    assert!(f.store.idempotency_lookup(&f.org, &idempotency_key()).await.unwrap().is_some(), "live keys stay");
}

pub async fn concurrent_requests_with_one_idempotency_key_create_once(f: Fixture) {
    f.endpoint(None, None).await;
    let mut handles = Vec::new();
    for _ in 0..10 {
        let (store, msg) = (f.store.clone(), f.message("a", None, None));
        let rec = record(&f, &msg.id);
        handles.push(tokio::spawn(async move { (msg.id.clone(), store.enqueue(msg, None, None, Some(rec)).await) }));
    }
    let mut created = Vec::new();
    let mut replays = Vec::new();
    for h in handles {
        match h.await.unwrap() {
            (id, Ok(_)) => created.push(id),
            (_, Err(StoreError::IdempotencyReplay(prev))) => replays.push(prev.resource_id),
            (_, Err(e)) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(created.len(), 1, "one request creates");
    assert_eq!(replays.len(), 9);
    assert!(replays.iter().all(|r| r.as_deref() == Some(created[0].as_str())), "the others see what it created");
    assert_eq!(f.store.pending_count().await.unwrap(), 1);
}

/// Three messages at known times: `invoice.paid` in channel eu tagged t1,
/// `invoice.paid` in us, `user.created` tagged t1 and t2.
async fn three_messages(f: &Fixture) -> (i64, [Message; 3]) {
    let base = now_millis() - 10_000;
    let mut m1 = f.message("invoice.paid", None, Some(vec!["eu"]));
    m1.tags = Some(vec!["t1".into()]);
    m1.created_at = base;
    let mut m2 = f.message("invoice.paid", None, Some(vec!["us"]));
    m2.created_at = base + 10;
    let mut m3 = f.message("user.created", None, None);
    m3.tags = Some(vec!["t1".into(), "t2".into()]);
    m3.created_at = base + 20;
    for m in [&m1, &m2, &m3] {
        f.store.enqueue(m.clone(), None, Some(lease("n1", 60_000)), None).await.unwrap();
    }
    (base, [m1, m2, m3])
}

pub async fn messages_list_by_filter(f: Fixture) {
    let (base, [m1, m2, m3]) = three_messages(&f).await;
    let list = |filter: MessageFilter| {
        let store = f.store.clone();
        let (org, app) = (f.org.clone(), f.app.clone());
        async move { store.list_messages(&org, &app, &filter, &page(10)).await.unwrap() }
    };
    let msg_ids = |rows: &[Message]| ids(rows, |m| &m.id);

    assert_eq!(msg_ids(&list(MessageFilter::default()).await), vec![m1.id.clone(), m2.id.clone(), m3.id.clone()]);
    let paid = MessageFilter { event_types: vec!["invoice.paid".into()], ..Default::default() };
    assert_eq!(msg_ids(&list(paid).await), vec![m1.id.clone(), m2.id.clone()]);
    let both = MessageFilter { event_types: vec!["invoice.paid".into(), "user.created".into()], ..Default::default() };
    assert_eq!(list(both).await.len(), 3);
    let eu = MessageFilter { channel: Some("eu".into()), ..Default::default() };
    assert_eq!(msg_ids(&list(eu).await), vec![m1.id.clone()]);
    let t1 = MessageFilter { tag: Some("t1".into()), ..Default::default() };
    assert_eq!(msg_ids(&list(t1).await), vec![m1.id.clone(), m3.id.clone()]);
    let t2_in_eu = MessageFilter { tag: Some("t2".into()), channel: Some("eu".into()), ..Default::default() };
    assert!(list(t2_in_eu).await.is_empty());
    let before = MessageFilter { before: Some(base + 15), ..Default::default() };
    assert_eq!(msg_ids(&list(before).await), vec![m1.id.clone(), m2.id.clone()]);
    let after = MessageFilter { after: Some(base + 5), ..Default::default() };
    assert_eq!(msg_ids(&list(after).await), vec![m2.id.clone(), m3.id.clone()]);

    // Payloads only on request; channels and tags round-trip.
    let bare = list(MessageFilter::default()).await;
    assert!(bare.iter().all(|m| m.payload.is_none()));
    let full = list(MessageFilter { with_content: true, ..Default::default() }).await;
    assert!(full.iter().all(|m| m.payload.as_deref() == Some(&b"{\"a\":1}"[..])));
    assert_eq!(full[0].channels, Some(vec!["eu".to_string()]));
    assert_eq!(full[2].tags, Some(vec!["t1".to_string(), "t2".to_string()]));
    assert_eq!((full[1].tags.clone(), full[2].channels.clone()), (None, None));
    assert_eq!((full[0].event_type.as_str(), full[0].created_at), ("invoice.paid", base));
}

pub async fn messages_are_found_by_event_id_and_expunged(f: Fixture) {
    let msg = f.message("a", Some("evt-7"), None);
    f.store.enqueue(msg.clone(), None, None, None).await.unwrap();
    let by_id = f.store.get_message(&f.org, &f.app, &msg.id).await.unwrap();
    let by_event_id = f.store.get_message(&f.org, &f.app, "evt-7").await.unwrap();
    assert_eq!((by_id.id.as_str(), by_event_id.id.as_str()), (msg.id.as_str(), msg.id.as_str()));
    assert_eq!(by_id.event_id.as_deref(), Some("evt-7"));
    assert_eq!(by_id.payload.as_deref(), Some(&b"{\"a\":1}"[..]));

    f.store.expunge_message_content(&f.org, &f.app, &msg.id).await.unwrap();
    assert!(f.store.get_message(&f.org, &f.app, &msg.id).await.unwrap().payload.is_none());
    let gone = f.store.expunge_message_content(&f.org, &f.app, "msg_unknown").await;
    assert!(matches!(gone, Err(StoreError::NotFound)), "{gone:?}");
    let other_org = f.store.get_message("org_other", &f.app, &msg.id).await;
    assert!(matches!(other_org, Err(StoreError::NotFound)), "{other_org:?}");
}

pub async fn attempts_list_by_filter(f: Fixture) {
    let a = f.endpoint(None, None).await;
    let b = f.endpoint(None, None).await;
    let (base, [m1, m2, _]) = three_messages(&f).await;
    // m1 -> a: 200, m1 -> b: 500, m2 -> a: no response, m2 -> b: 404.
    let plan = [(&m1, &a, 200), (&m1, &b, 500), (&m2, &a, 0), (&m2, &b, 404)];
    let destinations = |m: &Message| {
        let (store, org, app, id) = (f.store.clone(), f.org.clone(), f.app.clone(), m.id.clone());
        async move { store.list_message_destinations(&org, &app, &id, &page(10)).await.unwrap() }
    };
    let mut outcomes = Vec::new();
    let mut made = Vec::new();
    for (i, (m, ep, code)) in plan.iter().enumerate() {
        let delivery = destinations(m).await.into_iter().find(|(_, e)| e.id == ep.id).unwrap().0;
        let mut attempt = f.attempt(&m.id, ep, *code);
        attempt.created_at = base + 10 * i as i64;
        if i == 1 {
            let sent = Some(r#"{"webhook-id":"msg_1","authorization":null}"#.to_string());
            attempt.headers = Some(AttemptHeaders { sent, received: Some(r#"[["x-r","1"]]"#.into()) });
        }
        made.push(attempt.clone());
        let next = if *code == 200 { NextState::Succeeded } else { NextState::Failed };
        outcomes.push(Outcome { delivery_id: delivery.id, lease_token: 1, attempt: Some(attempt), next, attempts: 1 });
    }
    f.store.record_outcomes(Arc::from(outcomes)).await.unwrap();

    let codes = |filter: AttemptFilter| {
        let (store, org, app) = (f.store.clone(), f.org.clone(), f.app.clone());
        async move {
            let mut codes: Vec<i32> = store
                .list_attempts(&org, &app, &filter, &page(10))
                .await
                .unwrap()
                .iter()
                .map(|a| a.response_status_code)
                .collect();
            codes.sort();
            codes
        }
    };
    assert_eq!(codes(AttemptFilter::default()).await, vec![0, 200, 404, 500]);
    assert_eq!(codes(AttemptFilter { msg_id: Some(m1.id.clone()), ..Default::default() }).await, vec![200, 500]);
    assert_eq!(codes(AttemptFilter { endpoint_id: Some(a.id.clone()), ..Default::default() }).await, vec![0, 200]);
    assert_eq!(codes(AttemptFilter { status: Some(MessageStatus::Success), ..Default::default() }).await, vec![200]);
    assert_eq!(
        codes(AttemptFilter { status: Some(MessageStatus::Fail), ..Default::default() }).await,
        vec![0, 404, 500]
    );
    for (class, want) in [(0, vec![0]), (200, vec![200]), (400, vec![404]), (500, vec![500]), (300, vec![])] {
        assert_eq!(
            codes(AttemptFilter { status_code_class: Some(class), ..Default::default() }).await,
            want,
            "{class}"
        );
    }
    assert_eq!(codes(AttemptFilter { before: Some(base + 15), ..Default::default() }).await, vec![200, 500]);
    assert_eq!(codes(AttemptFilter { after: Some(base + 15), ..Default::default() }).await, vec![0, 404]);
    let on_message = |message: MessageFilter| AttemptFilter { message, ..Default::default() };
    let user =
        MessageFilter { event_types: vec!["invoice.paid".into()], channel: Some("us".into()), ..Default::default() };
    assert_eq!(codes(on_message(user)).await, vec![0, 404]);
    assert_eq!(codes(on_message(MessageFilter { tag: Some("t1".into()), ..Default::default() })).await, vec![200, 500]);
    let combined = AttemptFilter {
        endpoint_id: Some(b.id.clone()),
        message: MessageFilter { channel: Some("eu".into()), ..Default::default() },
        ..Default::default()
    };
    assert_eq!(codes(combined).await, vec![500]);

    let got = f.store.get_attempt(&f.org, &f.app, Some(&m1.id), &made[1].id).await.unwrap();
    assert_eq!(
        (got.endpoint_id.as_str(), got.status, got.response_status_code),
        (b.id.as_str(), MessageStatus::Fail, 500)
    );
    assert_eq!((got.url.as_str(), got.response_duration_ms, got.created_at), (b.url.as_str(), 3, base + 10));
    let wrong_message = f.store.get_attempt(&f.org, &f.app, Some(&m2.id), &made[1].id).await;
    assert!(matches!(wrong_message, Err(StoreError::NotFound)), "{wrong_message:?}");
    // Found by its id alone within the application, and not outside it.
    let by_id = f.store.get_attempt(&f.org, &f.app, None, &made[1].id).await.unwrap();
    assert_eq!((by_id.msg_id.as_str(), by_id.endpoint_id.as_str()), (m1.id.as_str(), b.id.as_str()));
    let other_app = f.store.get_attempt(&f.org, "app_other", None, &made[1].id).await;
    assert!(matches!(other_app, Err(StoreError::NotFound)), "{other_app:?}");

    // Headers are written with the attempt and read on their own.
    assert!(got.headers.is_none(), "reads of attempts leave the headers out");
    let headers = f.store.get_attempt_headers(&f.org, &f.app, &m1.id, &made[1].id).await.unwrap();
    assert_eq!(Some(headers), made[1].headers);
    let none = f.store.get_attempt_headers(&f.org, &f.app, &m1.id, &made[0].id).await.unwrap();
    assert_eq!(none, AttemptHeaders::default());
    let elsewhere = f.store.get_attempt_headers("org_other", &f.app, &m1.id, &made[1].id).await;
    assert!(matches!(elsewhere, Err(StoreError::NotFound)), "{elsewhere:?}");
}

pub async fn deliveries_list_by_message_and_by_endpoint(f: Fixture) {
    let mut eps = [f.endpoint(None, None).await, f.endpoint(None, None).await];
    eps.sort_by(|x, y| x.id.cmp(&y.id));
    let (a, b) = (&eps[0], &eps[1]);
    let (_, [m1, m2, m3]) = three_messages(&f).await;
    let to_a = f.store.list_message_destinations(&f.org, &f.app, &m1.id, &page(10)).await.unwrap();
    assert_eq!(ids(&to_a, |(_, e)| &e.id), vec![a.id.clone(), b.id.clone()], "by endpoint id");
    assert!(to_a.iter().all(|(d, _)| d.status() == MessageStatus::Sending && d.attempts == 0 && d.msg_id == m1.id));
    // m1's delivery to `a` succeeds; every other lease (token 1: fresh) is given back.
    let mut outcomes = Vec::new();
    for m in [&m1, &m2, &m3] {
        for (d, e) in f.store.list_message_destinations(&f.org, &f.app, &m.id, &page(10)).await.unwrap() {
            let done = m.id == m1.id && e.id == a.id;
            outcomes.push(Outcome {
                delivery_id: d.id,
                lease_token: 1,
                attempt: done.then(|| f.attempt(&m1.id, a, 200)),
                next: if done { NextState::Succeeded } else { NextState::Retry { after_ms: 0 } },
                attempts: u32::from(done),
            });
        }
    }
    f.store.record_outcomes(Arc::from(outcomes)).await.unwrap();

    let to_endpoint = |status: Option<MessageStatus>, filter: MessageFilter| {
        let (store, org, app, ep) = (f.store.clone(), f.org.clone(), f.app.clone(), a.id.clone());
        async move { store.list_endpoint_messages(&org, &app, &ep, status, &filter, &page(10)).await.unwrap() }
    };
    let all = to_endpoint(None, MessageFilter::default()).await;
    assert_eq!(ids(&all, |(_, m)| &m.id), vec![m1.id.clone(), m2.id.clone(), m3.id.clone()]);
    assert!(all.iter().all(|(_, m)| m.payload.is_none()));
    assert_eq!((all[0].0.status(), all[0].0.attempts, all[0].0.next_attempt_at()), (MessageStatus::Success, 1, None));
    let done = to_endpoint(Some(MessageStatus::Success), MessageFilter::default()).await;
    assert_eq!(ids(&done, |(_, m)| &m.id), vec![m1.id.clone()]);
    let pending =
        to_endpoint(Some(MessageStatus::Pending), MessageFilter { with_content: true, ..Default::default() }).await;
    assert_eq!(ids(&pending, |(_, m)| &m.id), vec![m2.id.clone(), m3.id.clone()]);
    assert!(pending.iter().all(|(_, m)| m.payload.is_some()));
    let users =
        to_endpoint(None, MessageFilter { event_types: vec!["user.created".into()], ..Default::default() }).await;
    assert_eq!(ids(&users, |(_, m)| &m.id), vec![m3.id.clone()]);
    let paged = f
        .store
        .list_endpoint_messages(
            &f.org,
            &f.app,
            &a.id,
            None,
            &MessageFilter::default(),
            &Page { limit: 1, iterator: Some(m1.id.clone()), backwards: false, descending: false },
        )
        .await
        .unwrap();
    assert_eq!(ids(&paged, |(_, m)| &m.id), vec![m2.id.clone(), m3.id.clone()]);
}

pub async fn endpoint_stats_count_deliveries_by_state(f: Fixture) {
    let ep = f.endpoint(None, None).await;
    let mut jobs = Vec::new();
    for _ in 0..6 {
        jobs.extend(f.store.enqueue(f.message("a", None, None), None, Some(lease("n1", 60_000)), None).await.unwrap());
    }
    let outcome = |i: usize, code: Option<i32>, next| Outcome {
        delivery_id: jobs[i].delivery_id,
        lease_token: jobs[i].lease_token,
        attempt: code.map(|c| f.attempt(&jobs[i].msg_id, &ep, c)),
        next,
        attempts: u32::from(code.is_some()),
    };
    let outcomes = vec![
        outcome(0, Some(200), NextState::Succeeded),
        outcome(1, Some(500), NextState::Failed),
        outcome(2, Some(500), NextState::Retry { after_ms: 60_000 }),
        outcome(3, None, NextState::Canceled),
        outcome(4, None, NextState::Retry { after_ms: 60_000 }),
    ];
    f.store.record_outcomes(Arc::from(outcomes)).await.unwrap();
    // 0 succeeded, 1 failed, 2 retrying (sending), 3 canceled, 4 waiting (pending), 5 leased (sending).
    let stats = f.store.endpoint_stats(&f.org, &ep.id, 0, i64::MAX).await.unwrap();
    assert_eq!(stats, EndpointStats { success: 1, pending: 1, sending: 2, fail: 1, canceled: 1 });
    assert_eq!(f.store.endpoint_stats(&f.org, &ep.id, 0, 1).await.unwrap(), EndpointStats::default());
    assert_eq!(f.store.endpoint_stats("org_other", &ep.id, 0, i64::MAX).await.unwrap(), EndpointStats::default());
    assert_eq!(f.store.pending_count().await.unwrap(), 3, "the two scheduled and the leased one");
}

/// Many enqueues at once (which PostgreSQL commits in groups) fan out exactly as
/// they would one at a time: leased where a lease was given, scheduled where
/// not, test sends to their endpoint only, each idempotency key stored.
pub async fn concurrent_enqueues_fan_out_as_one_at_a_time(f: Fixture) {
    let a = f.endpoint(Some(vec!["a"]), None).await;
    let b = f.endpoint(None, None).await;
    let mut handles = Vec::new();
    for i in 0..60 {
        let store = f.store.clone();
        let msg = f.message(if i % 2 == 0 { "a" } else { "z" }, None, None);
        let lease = (i % 3 != 0).then(|| lease("n1", 60_000));
        let only = (i % 10 == 9).then(|| a.id.clone());
        let idem = (i % 4 == 0).then(|| IdempotencyRecord {
            key: IdempotencyKey { key: format!("k{i}"), ..idempotency_key() },
            ..record(&f, &msg.id)
        });
        handles.push(tokio::spawn(async move {
            let jobs = store.enqueue(msg.clone(), only.clone(), lease.clone(), idem).await.unwrap();
            (i, msg, only, lease.is_some(), jobs)
        }));
    }
    let mut leased = 0;
    for h in handles {
        let (i, msg, only, with_lease, jobs) = h.await.unwrap();
        let mut want: Vec<&str> = match &only {
            Some(only) => vec![only.as_str()],
            None if msg.event_type == "a" => vec![a.id.as_str(), b.id.as_str()],
            None => vec![b.id.as_str()],
        };
        want.sort();
        let dests = f.store.list_message_destinations(&f.org, &f.app, &msg.id, &page(10)).await.unwrap();
        let mut got: Vec<&str> = dests.iter().map(|(_, e)| e.id.as_str()).collect();
        got.sort();
        assert_eq!(got, want, "message {i}");
        if with_lease {
            let mut job_eps: Vec<&str> = jobs.iter().map(|j| j.endpoint.id.as_str()).collect();
            job_eps.sort();
            assert_eq!(job_eps, want, "message {i}: every delivery leased to its caller");
            assert!(jobs.iter().all(|j| j.msg_id == msg.id && j.lease_token == 1 && j.payload.is_some()));
            leased += jobs.len();
        } else {
            assert!(jobs.is_empty(), "message {i}");
            assert!(dests.iter().all(|(d, _)| d.state == DeliveryState::Scheduled));
        }
        if i % 4 == 0 {
            let key = IdempotencyKey { key: format!("k{i}"), ..idempotency_key() };
            let stored = f.store.idempotency_lookup(&f.org, &key).await.unwrap().unwrap();
            assert_eq!(stored.resource_id, Some(msg.id.clone()), "message {i}");
        }
    }
    let scheduled = f.store.claim_due(&lease("n1", 60_000), 500, &[]).await.unwrap().len();
    assert_eq!(leased + scheduled, f.store.pending_count().await.unwrap() as usize);
}
