//! The delivery lifecycle's transitions and the races between them: resend,
//! disable and enable, expunge, endpoint edits, background tasks, retention.

use std::sync::Arc;
use std::time::Duration;

use hookd_core::timefmt::now_millis;
use hookd_core::{AttemptTrigger, Secret};
use hookd_store::*;

use crate::fixture::{lease, outcome, page, Fixture, KEEP};

fn disable(disabled: bool) -> EndpointChange {
    EndpointChange::Settings(EndpointSettings { disabled: Some(disabled), ..Default::default() })
}

/// Records a failed attempt of `job` and where it goes next.
async fn fail(f: &Fixture, job: &DeliveryJob, next: NextState) {
    let a = f.attempt(&job.msg_id, &job.endpoint, 500);
    f.store.record_outcomes(Arc::from(vec![outcome(job, Some(a), next, job.attempts + 1)])).await.unwrap();
}

pub async fn resend_makes_a_delivery_due_again(f: Fixture) {
    let ep = f.endpoint(None, None).await;
    let msg = f.message("a", None, None);
    let jobs = f.store.enqueue(msg.clone(), None, Some(lease("n1", 60_000)), None).await.unwrap();
    let delivery_id = jobs[0].delivery_id;
    fail(&f, &jobs[0], NextState::Failed).await;
    assert_eq!(f.delivery(&msg.id, &ep.id).await.status(), MessageStatus::Fail);

    // With a lease, the resent delivery comes back ready to send, as a manual attempt.
    let again = f.store.resend(&f.org, &f.app, &msg.id, &ep.id, Some(lease("n1", 60_000)), None).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].delivery_id, again[0].attempts, again[0].trigger), (delivery_id, 1, AttemptTrigger::Manual));
    assert_eq!(f.delivery(&msg.id, &ep.id).await.state, DeliveryState::Leased);

    // Without a lease it waits for a worker, still as a manual attempt.
    let ok = f.attempt(&msg.id, &ep, 200);
    f.store.record_outcomes(Arc::from(vec![outcome(&again[0], Some(ok), NextState::Succeeded, 2)])).await.unwrap();
    assert!(f.store.resend(&f.org, &f.app, &msg.id, &ep.id, None, None).await.unwrap().is_empty());
    assert_eq!(f.delivery(&msg.id, &ep.id).await.state, DeliveryState::Scheduled);
    let claimed = f.store.claim_due(&lease("n1", 60_000), 10, &[]).await.unwrap();
    assert_eq!(
        claimed.iter().map(|j| (j.delivery_id, j.trigger)).collect::<Vec<_>>(),
        [(delivery_id, AttemptTrigger::Manual)]
    );
    // The attempt after a manual one is scheduled again.
    fail(&f, &claimed[0], NextState::Retry { after_ms: 0 }).await;
    let next = f.store.claim_due(&lease("n1", 60_000), 10, &[]).await.unwrap();
    assert_eq!(next[0].trigger, AttemptTrigger::Scheduled);

    // To an endpoint the message never went to, the delivery is created.
    let late = f.endpoint(None, None).await;
    assert!(f.store.resend(&f.org, &f.app, &msg.id, &late.id, None, None).await.unwrap().is_empty());
    let claimed = f.store.claim_due(&lease("n1", 60_000), 10, &[]).await.unwrap();
    assert_eq!(claimed.iter().map(|j| j.endpoint.id.as_str()).collect::<Vec<_>>(), vec![late.id.as_str()]);

    let unknown = f.store.resend(&f.org, &f.app, "msg_unknown", &ep.id, None, None).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
    let unknown = f.store.resend(&f.org, &f.app, &msg.id, "ep_unknown", None, None).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
}

/// A resend that arrives while an attempt is in flight (here on n1, asked of
/// n2) neither discards that attempt nor is lost: the attempt is recorded, then
/// the delivery is due again as a manual attempt.
pub async fn a_resend_during_an_attempt_in_flight_follows_it(f: Fixture) {
    let ep = f.endpoint(None, None).await;
    let msg = f.message("a", None, None);
    let jobs = f.store.enqueue(msg.clone(), None, Some(lease("n1", 60_000)), None).await.unwrap();
    let other = f.another_node().await;
    assert!(other.resend(&f.org, &f.app, &msg.id, &ep.id, Some(lease("n2", 60_000)), None).await.unwrap().is_empty());
    assert_eq!(f.delivery(&msg.id, &ep.id).await.state, DeliveryState::Leased, "the lease is not overwritten");
    let ok = f.attempt(&msg.id, &ep, 200);
    f.store.record_outcomes(Arc::from(vec![outcome(&jobs[0], Some(ok), NextState::Succeeded, 1)])).await.unwrap();
    let attempts = f.store.list_attempts(&f.org, &f.app, &AttemptFilter::default(), &page(10)).await.unwrap();
    assert_eq!(attempts.len(), 1, "the attempt in flight is recorded");
    let d = f.delivery(&msg.id, &ep.id).await;
    assert_eq!(d.state, DeliveryState::Scheduled, "and the resend follows it");
    let claimed = f.store.claim_due(&lease("n1", 60_000), 10, &[]).await.unwrap();
    assert_eq!(claimed.iter().map(|j| j.trigger).collect::<Vec<_>>(), [AttemptTrigger::Manual]);
}

/// Disabling an endpoint pauses what waits for it (no attempt spent, never
/// shown as failed or canceled); enabling makes it due again.
pub async fn disabling_pauses_and_enabling_resumes(f: Fixture) {
    let ep = f.endpoint(None, None).await;
    let jobs = f.store.enqueue(f.message("a", None, None), None, Some(lease("n1", 60_000)), None).await.unwrap();
    fail(&f, &jobs[0], NextState::Retry { after_ms: 60_000 }).await;
    let waiting = f.send("a").await;
    let in_flight = f.store.enqueue(f.message("a", None, None), None, Some(lease("n1", 60_000)), None).await.unwrap();

    let updated = f.store.update_endpoint(&f.org, &f.app, &ep.id, disable(true), None).await.unwrap();
    assert_eq!((updated.paused, updated.resumed, updated.endpoint.disabled), (2, 0, true));
    let d = f.delivery(&waiting.id, &ep.id).await;
    assert_eq!((d.state, d.status()), (DeliveryState::Paused, MessageStatus::Pending));
    let d = f.delivery(&jobs[0].msg_id, &ep.id).await;
    assert_eq!((d.state, d.status(), d.attempts), (DeliveryState::Paused, MessageStatus::Sending, 1));
    let stats = f.store.endpoint_stats(&f.org, &ep.id, 0, i64::MAX).await.unwrap();
    assert_eq!((stats.fail, stats.canceled), (0, 0));
    assert!(f.store.claim_due(&lease("n1", 60_000), 10, &[]).await.unwrap().is_empty());
    // The one in flight finishes its lease, sees the endpoint disabled, and pauses.
    f.store.record_outcomes(Arc::from(vec![outcome(&in_flight[0], None, NextState::Paused, 0)])).await.unwrap();
    assert_eq!(f.delivery(&in_flight[0].msg_id, &ep.id).await.state, DeliveryState::Paused);
    // No new message fans out to a disabled endpoint.
    assert!(f
        .store
        .enqueue(f.message("a", None, None), None, Some(lease("n1", 60_000)), None)
        .await
        .unwrap()
        .is_empty());

    let updated = f.store.update_endpoint(&f.org, &f.app, &ep.id, disable(false), None).await.unwrap();
    assert_eq!((updated.paused, updated.resumed), (0, 3));
    let resumed = f.store.claim_due(&lease("n1", 60_000), 10, &[]).await.unwrap();
    assert_eq!(resumed.len(), 3, "everything that waited is due now");
    assert!(resumed.iter().any(|j| j.attempts == 1), "a retry keeps its count");
}

/// A pause recorded by a node that saw the endpoint disabled, after the
/// endpoint was enabled again, does not strand the delivery.
pub async fn a_pause_recorded_after_an_enable_is_due_now(f: Fixture) {
    let ep = f.endpoint(None, None).await;
    let jobs = f.store.enqueue(f.message("a", None, None), None, Some(lease("n1", 60_000)), None).await.unwrap();
    f.store.update_endpoint(&f.org, &f.app, &ep.id, disable(true), None).await.unwrap();
    f.store.update_endpoint(&f.org, &f.app, &ep.id, disable(false), None).await.unwrap();
    f.store.record_outcomes(Arc::from(vec![outcome(&jobs[0], None, NextState::Paused, 0)])).await.unwrap();
    assert_eq!(f.delivery(&jobs[0].msg_id, &ep.id).await.state, DeliveryState::Scheduled);
    assert_eq!(f.store.claim_due(&lease("n1", 60_000), 10, &[]).await.unwrap().len(), 1);
}

pub async fn expunging_cancels_what_waits(f: Fixture) {
    let ep = f.endpoint(None, None).await;
    let msg = f.send("a").await;
    f.store.expunge_message_content(&f.org, &f.app, &msg.id).await.unwrap();
    let d = f.delivery(&msg.id, &ep.id).await;
    assert_eq!((d.state, d.status()), (DeliveryState::Canceled, MessageStatus::Canceled));
    assert!(f.store.claim_due(&lease("n1", 60_000), 10, &[]).await.unwrap().is_empty());
}

/// Every endpoint change applies to the row as stored and writes its own
/// columns: settings, headers and secret rotations racing each other all
/// take effect, and the caller of a rotation gets the secret that signs.
pub async fn endpoint_changes_do_not_overwrite_each_other(f: Fixture) {
    let ep = f.endpoint(None, None).await;
    let other = f.another_node().await;
    for i in 0..20 {
        let secret = Secret::generate();
        let rotate = EndpointChange::RotateSecret { secret: secret.clone(), grace_ms: 0 };
        let settings =
            EndpointChange::Settings(EndpointSettings { description: Some(format!("edit {i}")), ..Default::default() });
        let headers = EndpointChange::Headers {
            set: [(format!("x-h{i}"), "v".to_string())].into(),
            remove: Vec::new(),
            replace: false,
        };
        let (a, b, c) = tokio::join!(
            f.store.update_endpoint(&f.org, &f.app, &ep.id, rotate, None),
            other.update_endpoint(&f.org, &f.app, &ep.id, settings, None),
            f.store.update_endpoint(&f.org, &f.app, &ep.id, headers, None),
        );
        assert_eq!(a.unwrap().endpoint.secret.expose(), secret.expose());
        b.unwrap();
        c.unwrap();
        let now = f.store.get_endpoint(&f.org, &f.app, &ep.id).await.unwrap();
        assert_eq!(now.secret.expose(), secret.expose(), "round {i}: the rotated secret is kept");
        assert_eq!(now.description, format!("edit {i}"), "round {i}: the edit is kept");
        assert_eq!(now.headers.len(), i + 1, "round {i}: every header patch is kept");
    }
    let now = f.store.get_endpoint(&f.org, &f.app, &ep.id).await.unwrap();
    assert_eq!(now.revision, 60, "each change is one revision");
    // A node holding an older revision learns of the change.
    let changed = f.store.changed_endpoints(&[(ep.id.clone(), 3)]).await.unwrap();
    assert_eq!(changed.iter().map(|e| e.revision).collect::<Vec<_>>(), vec![60]);
    assert!(f.store.changed_endpoints(&[(ep.id.clone(), 60)]).await.unwrap().is_empty());
    // A change that would leave the row invalid is refused whole.
    let too_many = EndpointChange::Headers {
        set: (0..100).map(|i| (format!("x-many-{i}"), "v".to_string())).collect(),
        remove: Vec::new(),
        replace: false,
    };
    let refused = f.store.update_endpoint(&f.org, &f.app, &ep.id, too_many, None).await;
    assert!(matches!(refused, Err(StoreError::Invalid { field: "headers", .. })), "{refused:?}");
    let missing = f.store.update_endpoint(&f.org, &f.app, "ep_unknown", disable(true), None).await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
}

pub fn task(f: &Fixture, ep: &Endpoint, kind: TaskKind, since: i64, until: i64) -> BackgroundTask {
    BackgroundTask {
        id: hookd_core::new_id(hookd_core::IdPrefix::Task),
        org_id: f.org.clone(),
        app_id: f.app.clone(),
        endpoint_id: ep.id.clone(),
        kind,
        status: TaskStatus::Running,
        since,
        until,
        cursor: None,
        messages_sent: 0,
        error: None,
        created_at: now_millis(),
        updated_at: now_millis(),
        filter: None,
        result: None,
    }
}

/// Creates the task, then runs it to the end on node `owner` in batches of `batch`.
pub async fn run_task(f: &Fixture, t: BackgroundTask, batch: usize) -> BackgroundTask {
    let id = t.id.clone();
    f.store.create_task(t, None).await.unwrap();
    let held = f.store.claim_task(&lease("n1", 60_000)).await.unwrap().expect("a task to run");
    assert_eq!(held.task.id, id);
    for _ in 0..1000 {
        if f.store.run_task_step(&held, 60_000, batch).await.unwrap().done {
            break;
        }
    }
    f.store.get_task(&f.org, &id).await.unwrap()
}

/// Recover sends again every message whose delivery failed in the range and has
/// not succeeded since: exhausted ones and ones waiting for their next retry.
pub async fn recover_resends_every_failure_in_the_range(f: Fixture) {
    let ep = f.endpoint(None, None).await;
    let since = now_millis() - 1000;
    let mut jobs = Vec::new();
    for _ in 0..4 {
        jobs.extend(f.store.enqueue(f.message("a", None, None), None, Some(lease("n1", 60_000)), None).await.unwrap());
    }
    fail(&f, &jobs[0], NextState::Failed).await; // exhausted
    fail(&f, &jobs[1], NextState::Retry { after_ms: 3_600_000 }).await; // waits an hour
    fail(&f, &jobs[2], NextState::Retry { after_ms: 0 }).await; // then succeeds
    let retry = f.store.claim_due(&lease("n1", 60_000), 10, &[]).await.unwrap();
    let ok = f.attempt(&retry[0].msg_id, &ep, 200);
    f.store.record_outcomes(Arc::from(vec![outcome(&retry[0], Some(ok), NextState::Succeeded, 2)])).await.unwrap();
    // jobs[3] is still in flight: left alone.

    let before = run_task(&f, task(&f, &ep, TaskKind::EndpointRecover, since - 60_000, since), 10).await;
    assert_eq!((before.status, before.messages_sent), (TaskStatus::Finished, 0), "nothing failed before `since`");

    let done = run_task(&f, task(&f, &ep, TaskKind::EndpointRecover, since, now_millis() + 1), 1).await;
    assert_eq!((done.status, done.messages_sent), (TaskStatus::Finished, 2));
    let due = f.store.claim_due(&lease("n1", 60_000), 10, &[]).await.unwrap();
    let mut got: Vec<(i64, u32, AttemptTrigger)> = due.iter().map(|j| (j.delivery_id, j.attempts, j.trigger)).collect();
    got.sort();
    let mut want =
        vec![(jobs[0].delivery_id, 1, AttemptTrigger::Manual), (jobs[1].delivery_id, 1, AttemptTrigger::Manual)];
    want.sort();
    assert_eq!(got, want, "sent now, each keeping its place in the schedule");
    assert_eq!(f.delivery(&jobs[2].msg_id, &ep.id).await.state, DeliveryState::Succeeded);
    assert_eq!(f.delivery(&jobs[3].msg_id, &ep.id).await.state, DeliveryState::Leased);
}

pub async fn replay_creates_what_the_endpoint_never_got(f: Fixture) {
    let first = f.endpoint(None, None).await;
    let since = now_millis() - 1000;
    for event_type in ["a", "a", "b"] {
        f.send(event_type).await;
    }
    let late = f.endpoint(Some(vec!["a"]), None).await;
    let t = run_task(&f, task(&f, &late, TaskKind::EndpointReplay, since - 60_000, since), 10).await;
    assert_eq!(t.messages_sent, 0, "outside the window");
    let t = run_task(&f, task(&f, &late, TaskKind::EndpointReplay, since, now_millis() + 1), 2).await;
    assert_eq!((t.status, t.messages_sent), (TaskStatus::Finished, 2));
    let t = run_task(&f, task(&f, &late, TaskKind::EndpointReplay, since, now_millis() + 1), 2).await;
    assert_eq!(t.messages_sent, 0, "only once");
    let replayed = f.store.claim_due(&lease("n1", 60_000), 10, &[]).await.unwrap();
    assert_eq!(replayed.iter().filter(|j| j.endpoint.id == late.id).count(), 2);
    assert!(replayed.iter().all(|j| j.endpoint.id == first.id || j.event_type == "a"));
}

/// A task's node dies mid-way: once its lease lapses another node resumes it
/// from the cursor, the dead node's token is refused, and nothing is counted twice.
pub async fn a_task_resumes_from_its_cursor_after_its_node_dies(f: Fixture) {
    let ep = f.endpoint(None, None).await;
    let since = now_millis() - 1000;
    for _ in 0..7 {
        let jobs = f.store.enqueue(f.message("a", None, None), None, Some(lease("n1", 60_000)), None).await.unwrap();
        fail(&f, &jobs[0], NextState::Failed).await;
    }
    let t = task(&f, &ep, TaskKind::EndpointRecover, since, now_millis() + 1);
    let id = t.id.clone();
    f.store.create_task(t, None).await.unwrap();
    let n1 = f.store.claim_task(&lease("n1", 150)).await.unwrap().unwrap();
    assert!(f.store.claim_task(&lease("n2", 60_000)).await.unwrap().is_none(), "held by n1");
    let step = f.store.run_task_step(&n1, 150, 3).await.unwrap();
    assert_eq!(step, TaskStep { sent: 3, done: false });
    tokio::time::sleep(Duration::from_millis(250)).await;
    let other = f.another_node().await;
    let n2 = other.claim_task(&lease("n2", 60_000)).await.unwrap().expect("the lapsed task");
    assert_eq!((n2.task.id.as_str(), n2.task.messages_sent), (id.as_str(), 3));
    let stale = f.store.run_task_step(&n1, 150, 3).await;
    assert!(matches!(stale, Err(StoreError::NotFound)), "{stale:?}");
    while !other.run_task_step(&n2, 60_000, 3).await.unwrap().done {}
    let t = f.store.get_task(&f.org, &id).await.unwrap();
    assert_eq!((t.status, t.messages_sent), (TaskStatus::Finished, 7));
    let listed = f.store.list_tasks(&f.org, &TaskFilter::default(), &page(10)).await.unwrap();
    assert_eq!(listed.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), vec![id.as_str()]);
    let running = TaskFilter { status: Some(TaskStatus::Running), ..Default::default() };
    assert!(f.store.list_tasks(&f.org, &running, &page(10)).await.unwrap().is_empty());
    let replays = TaskFilter { kind: Some(TaskKind::EndpointReplay), ..Default::default() };
    assert!(f.store.list_tasks(&f.org, &replays, &page(10)).await.unwrap().is_empty());
    let elsewhere = TaskFilter { app_id: Some("app_other".into()), ..Default::default() };
    assert!(f.store.list_tasks(&f.org, &elsewhere, &page(10)).await.unwrap().is_empty());
    assert!(matches!(f.store.get_task("org_other", &id).await, Err(StoreError::NotFound)));
}

/// The retention sweep expunges payloads past their expiry in batches, clears
/// their attempts' response bodies and headers, cancels what still waited for them, and
/// leaves everything younger alone.
pub async fn retention_expunges_expired_payloads_in_batches(f: Fixture) {
    let ep = f.endpoint(None, None).await;
    let mut expired = Vec::new();
    for i in 0..5 {
        let mut msg = f.message("a", None, None);
        msg.expires_at = now_millis() - 1;
        let jobs = f.store.enqueue(msg.clone(), None, Some(lease("n1", 60_000)), None).await.unwrap();
        let mut a = f.attempt(&msg.id, &ep, 500);
        a.response = "a large response body".into();
        let received = Some(r#"[["x-r","1"]]"#.to_string());
        a.headers = Some(AttemptHeaders { sent: Some(r#"{"webhook-id":"m"}"#.into()), received });
        let next = if i == 0 { NextState::Retry { after_ms: 3_600_000 } } else { NextState::Failed };
        f.store.record_outcomes(Arc::from(vec![outcome(&jobs[0], Some(a), next, 1)])).await.unwrap();
        expired.push(msg);
    }
    let young = f.send("a").await;

    let first = f.store.prune(3, KEEP).await.unwrap();
    assert_eq!((first.messages, first.attempts), (3, 3));
    let second = f.store.prune(3, KEEP).await.unwrap();
    assert_eq!((second.messages, second.attempts), (2, 2));
    assert_eq!(first.canceled + second.canceled, 1, "the retry that still waited");
    assert!(f.store.prune(3, KEEP).await.unwrap().messages == 0);
    for m in &expired {
        assert!(f.store.get_message(&f.org, &f.app, &m.id).await.unwrap().payload.is_none());
    }
    assert!(f.store.get_message(&f.org, &f.app, &young.id).await.unwrap().payload.is_some());
    let attempts = f.store.list_attempts(&f.org, &f.app, &AttemptFilter::default(), &page(10)).await.unwrap();
    assert!(attempts.iter().all(|a| a.response.is_empty()), "response bodies expire with the payload");
    for a in &attempts {
        let headers = f.store.get_attempt_headers(&f.org, &f.app, &a.msg_id, &a.id).await.unwrap();
        assert_eq!(headers, AttemptHeaders::default(), "and so do the attempt's headers");
    }
    assert_eq!(f.delivery(&expired[0].id, &ep.id).await.state, DeliveryState::Canceled);
    assert_eq!(f.delivery(&young.id, &ep.id).await.state, DeliveryState::Scheduled);
    f.store.reclaim_space(1000).await.unwrap();

    // Past the message retention, messages go whole, oldest first, with their
    // deliveries and attempts.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let all = Retention { messages_ms: 10, ..KEEP };
    assert_eq!(f.store.prune(4, all).await.unwrap().deleted, 4);
    assert_eq!(f.store.prune(4, all).await.unwrap().deleted, 2);
    for m in expired.iter().chain([&young]) {
        assert!(matches!(f.store.get_message(&f.org, &f.app, &m.id).await, Err(StoreError::NotFound)));
    }
    assert!(f.store.list_attempts(&f.org, &f.app, &AttemptFilter::default(), &page(10)).await.unwrap().is_empty());
    assert_eq!(f.store.pending_count().await.unwrap(), 0, "their deliveries went with them");
}

/// A pause recorded while the endpoint is being enabled (on another node, at
/// the same moment) never strands the delivery paused under an enabled
/// endpoint: the pause is decided against the endpoint as committed.
pub async fn a_pause_racing_an_enable_never_strands_a_delivery(f: Fixture) {
    let ep = f.endpoint(None, None).await;
    let other = f.another_node().await;
    for round in 0..40 {
        let jobs = f.store.enqueue(f.message("a", None, None), None, Some(lease("n1", 60_000)), None).await.unwrap();
        f.store.update_endpoint(&f.org, &f.app, &ep.id, disable(true), None).await.unwrap();
        let paused = Arc::from(vec![outcome(&jobs[0], None, NextState::Paused, 0)]);
        let (enabled, recorded) = tokio::join!(
            other.update_endpoint(&f.org, &f.app, &ep.id, disable(false), None),
            f.store.record_outcomes(paused),
        );
        enabled.unwrap();
        recorded.unwrap();
        let d = f.delivery(&jobs[0].msg_id, &ep.id).await;
        assert_eq!(d.state, DeliveryState::Scheduled, "round {round}: the endpoint is enabled, so it is due");
        // Send it, so the next round starts clean.
        let claimed = f.store.claim_due(&lease("n1", 60_000), 10, &[]).await.unwrap();
        let done: Vec<Outcome> = claimed.iter().map(|j| outcome(j, None, NextState::Succeeded, 1)).collect();
        f.store.record_outcomes(Arc::from(done)).await.unwrap();
    }
}
