//! Delivery control's side of the store: an endpoint's own settings, the health
//! its delivering node reports, a disable by the receiver, event types' retry
//! schedules.

use std::sync::Arc;

use hookd_core::timefmt::now_millis;
use hookd_store::*;

use crate::fixture::{lease, outcome, Fixture};

pub async fn endpoint_control_and_health_round_trip(f: Fixture) {
    let mut row = f.endpoint_row(None, None);
    row.control = DeliveryControl {
        retry_schedule_ms: Some(vec![1_000, 60_000]),
        max_concurrency: Some(3),
        encryption_key: Some(serde_json::json!({"kty": "EC"})),
        timeout_ms: Some(2_500),
        gzip: true,
        ordering: Some(hookd_core::ordering::Ordering { key: Some("channel".into()), ..Default::default() }),
        batch: Some(hookd_core::batching::Batching { max_messages: 10, max_wait_ms: 100 }),
        filter: Some(hookd_core::filter::Filter::parse("/amount gt 10").unwrap()),
        ..Default::default()
    };
    row.auth = EndpointAuth { bearer: Some("bt-1".into()), ..Default::default() };
    let ep = f.store.create_endpoint(row, None).await.unwrap();
    let read = f.store.get_endpoint(&f.org, &f.app, &ep.id).await.unwrap();
    assert_eq!(read.control, ep.control);
    assert_eq!(read.auth.bearer.as_deref(), Some("bt-1"));
    assert_eq!(read.health, None);

    // Credentials change on their own, each kind replacing the other.
    let basic = BasicAuth { username: "u".into(), password: "p".into() };
    let change = EndpointChange::Auth(AuthChange::Basic(Some(basic.clone())));
    let updated = f.store.update_endpoint(&f.org, &f.app, &ep.id, change, None).await.unwrap();
    assert_eq!((updated.endpoint.auth.basic.as_ref(), updated.endpoint.auth.bearer.as_ref()), (Some(&basic), None));
    assert!(updated.endpoint.revision > ep.revision, "nodes delivering to it reload it");
    let read = f.store.get_endpoint(&f.org, &f.app, &ep.id).await.unwrap();
    assert_eq!((read.auth.basic, read.control.clone()), (Some(basic), ep.control.clone()));

    // A PATCH of other settings keeps them; one naming them changes them.
    let rename = EndpointSettings { description: Some("renamed".into()), ..Default::default() };
    let updated =
        f.store.update_endpoint(&f.org, &f.app, &ep.id, EndpointChange::Settings(rename), None).await.unwrap();
    assert_eq!(updated.endpoint.control, ep.control);
    let clear = EndpointSettings { retry_schedule_ms: Some(None), ..Default::default() };
    let updated = f.store.update_endpoint(&f.org, &f.app, &ep.id, EndpointChange::Settings(clear), None).await.unwrap();
    assert_eq!(
        updated.endpoint.control,
        DeliveryControl {
            retry_schedule_ms: None,
            max_concurrency: Some(3),
            encryption_key: Some(serde_json::json!({"kty": "EC"})),
            timeout_ms: Some(2_500),
            gzip: true,
            ordering: Some(hookd_core::ordering::Ordering { key: Some("channel".into()), ..Default::default() }),
            batch: Some(hookd_core::batching::Batching { max_messages: 10, max_wait_ms: 100 }),
            filter: Some(hookd_core::filter::Filter::parse("/amount gt 10").unwrap()),
            ..Default::default()
        }
    );

    // Health is written without moving the revision (nodes holding it need not reload).
    let revision = updated.endpoint.revision;
    let health = EndpointHealth {
        breaker: BreakerState::Open,
        failures: 20,
        requests: 20,
        opened_at: Some(1_000),
        next_probe_at: Some(31_000),
        open_for_ms: 30_000,
        throttled_since: None,
        throttled_until: None,
        failing_since: Some(900),
        updated_at: 1_000,
    };
    f.store.set_endpoint_health(&ep.id, &health).await.unwrap();
    let read = f.store.get_endpoint(&f.org, &f.app, &ep.id).await.unwrap();
    assert_eq!(read.health, Some(health));
    assert_eq!(read.revision, revision);
}

pub async fn a_disable_by_the_receiver_pauses_the_queue(f: Fixture) {
    let ep = f.endpoint(None, None).await;
    let a = f.message("a", None, None);
    let b = f.message("b", None, None);
    let jobs = f.store.enqueue(a.clone(), None, Some(lease("n1", 60_000)), None).await.unwrap();
    f.store.enqueue(b.clone(), None, None, None).await.unwrap();

    let updated = f.store.disable_endpoint(&f.org, &f.app, &ep.id).await.unwrap();
    assert!(updated.endpoint.disabled);
    assert_eq!(updated.paused, 1, "the scheduled delivery waits");
    // The attempt that got the 410 is recorded paused: it waits for an enable too.
    let gone = f.attempt(&a.id, &ep, 410);
    f.store.record_outcomes(Arc::from(vec![outcome(&jobs[0], Some(gone), NextState::Paused, 1)])).await.unwrap();
    assert_eq!(f.delivery(&a.id, &ep.id).await.state, DeliveryState::Paused);
    assert_eq!(f.delivery(&b.id, &ep.id).await.state, DeliveryState::Paused);

    let failing = EndpointHealth { failing_since: Some(1), ..Default::default() };
    f.store.set_endpoint_health(&ep.id, &failing).await.unwrap();
    let enable = EndpointChange::Settings(EndpointSettings { disabled: Some(false), ..Default::default() });
    let updated = f.store.update_endpoint(&f.org, &f.app, &ep.id, enable, None).await.unwrap();
    assert_eq!(updated.resumed, 2);
    assert!(updated.was_disabled);
    // Enabled afresh: no failing-since left to disable it again at once.
    assert_eq!(updated.endpoint.health, None);
    assert_eq!(f.store.get_endpoint(&f.org, &f.app, &ep.id).await.unwrap().health, None);
    let due = f.store.claim_due(&lease("n1", 60_000), 10, &[]).await.unwrap();
    assert_eq!(due.len(), 2);
}

pub async fn event_types_keep_their_own_retry_schedule(f: Fixture) {
    let t = now_millis();
    let et = EventType {
        org_id: f.org.clone(),
        name: "invoice.paid".into(),
        description: String::new(),
        archived: false,
        deprecated: false,
        schemas: None,
        feature_flags: None,
        group_name: None,
        created_at: t,
        updated_at: t,
        retry_schedule_ms: None,
        validate_payloads: false,
    };
    f.store.create_event_type(et.clone(), None).await.unwrap();
    assert_eq!(f.store.event_type_retry_schedule(&f.org, "invoice.paid").await.unwrap(), None);
    f.store.set_event_type_retry_schedule(&f.org, "invoice.paid", Some(vec![500, 2_000])).await.unwrap();
    assert_eq!(f.store.event_type_retry_schedule(&f.org, "invoice.paid").await.unwrap(), Some(vec![500, 2_000]));
    // Editing the event type leaves it alone.
    f.store.update_event_type(EventType { description: "paid".into(), validate_payloads: true, ..et }).await.unwrap();
    let stored = f.store.get_event_type(&f.org, "invoice.paid").await.unwrap();
    assert_eq!(stored.retry_schedule_ms, Some(vec![500, 2_000]));
    assert!(stored.validate_payloads, "the edit is kept");
    f.store.set_event_type_retry_schedule(&f.org, "invoice.paid", None).await.unwrap();
    assert_eq!(f.store.event_type_retry_schedule(&f.org, "invoice.paid").await.unwrap(), None);
    // Unknown event types have none; setting one is NotFound.
    assert_eq!(f.store.event_type_retry_schedule(&f.org, "nope").await.unwrap(), None);
    assert!(matches!(
        f.store.set_event_type_retry_schedule(&f.org, "nope", Some(vec![1])).await,
        Err(StoreError::NotFound)
    ));
}

/// Bulk replay walks the endpoint's deliveries in the range in batches and
/// makes due, as manual attempts, exactly those its filter picks: here the dead
/// letters of one event type (not the expunged one, not other types, not
/// successes).
pub async fn bulk_replay_resends_what_its_filter_picks(f: Fixture) {
    let ep = f.endpoint(None, None).await;
    let since = now_millis() - 1000;
    let mut sent = Vec::new();
    for (event_type, channels) in [("a", None), ("a", Some(vec!["x"])), ("b", None), ("a", None), ("a", None)] {
        let msg = f.message(event_type, None, channels);
        let jobs = f.store.enqueue(msg.clone(), None, Some(lease("n1", 60_000)), None).await.unwrap();
        sent.push((msg, jobs[0].clone()));
    }
    for (i, (msg, job)) in sent.iter().enumerate() {
        let (code, next) = if i == 4 { (200, NextState::Succeeded) } else { (500, NextState::Failed) };
        let a = f.attempt(&msg.id, &ep, code);
        f.store.record_outcomes(Arc::from(vec![outcome(job, Some(a), next, 1)])).await.unwrap();
    }
    f.store.expunge_message_content(&f.org, &f.app, &sent[3].0.id).await.unwrap();
    // Not replayed either: a message scheduled ahead, and a canceled one.
    let mut later = f.message("a", None, None);
    later.deliver_at = Some(now_millis() + 3_600_000);
    f.store.enqueue(later.clone(), None, Some(lease("n1", 60_000)), None).await.unwrap();
    let canceled = f.message("a", None, None);
    f.store.enqueue(canceled.clone(), None, None, None).await.unwrap();
    assert_eq!(f.store.cancel_message(&f.org, &f.app, &canceled.id).await.unwrap(), 1);

    let mut t = crate::lifecycle::task(&f, &ep, TaskKind::EndpointBulkReplay, since, now_millis() + 1000);
    t.filter = Some(ReplayFilter {
        event_types: Some(vec!["a".into()]),
        status: Some(MessageStatus::Fail as i64),
        status_code_class: Some(500),
        ..Default::default()
    });
    let done = crate::lifecycle::run_task(&f, t, 2).await;
    assert_eq!((done.status, done.messages_sent), (TaskStatus::Finished, 2), "{done:?}");
    for (i, (msg, _)) in sent.iter().enumerate() {
        let d = f.delivery(&msg.id, &ep.id).await;
        let want = match i {
            0 | 1 => DeliveryState::Scheduled,
            4 => DeliveryState::Succeeded,
            _ => DeliveryState::Failed,
        };
        assert_eq!(d.state, want, "message {i}");
    }
    // Without filters: still neither the scheduled nor the canceled one.
    let unfiltered = crate::lifecycle::task(&f, &ep, TaskKind::EndpointBulkReplay, since, now_millis() + 1000);
    crate::lifecycle::run_task(&f, unfiltered, 3).await;
    assert_eq!(f.delivery(&later.id, &ep.id).await.due_at, later.deliver_at);
    assert_eq!(f.delivery(&canceled.id, &ep.id).await.state, DeliveryState::Canceled);
    let due = f.store.claim_due(&lease("n1", 60_000), 10, &[]).await.unwrap();
    // The two dead letters, and (from the unfiltered run) the succeeded one and
    // the other failures, all manual.
    assert!(due.len() >= 2, "{}", due.len());
    assert!(due.iter().all(|j| j.trigger == hookd_core::AttemptTrigger::Manual));
    assert!(due.iter().all(|j| j.msg_id != later.id && j.msg_id != canceled.id));
}
