//! Statistics rollups: written with the attempts, they match the attempt log
//! exactly, and folding minute rows into hours and days loses nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use hookd_core::timefmt::now_millis;
use hookd_store::*;

use crate::fixture::{lease, outcome, page, Fixture};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

fn query(f: &Fixture, period_ms: i64) -> StatsQuery {
    StatsQuery {
        org_id: f.org.clone(),
        app_id: f.app.clone(),
        endpoint_id: None,
        event_types: vec![],
        since: 0,
        until: i64::MAX,
        period_ms,
    }
}

/// The rows a statistics read should answer, replayed from attempts.
fn replay<'a>(
    attempts: impl IntoIterator<Item = (&'a Attempt, &'a AttemptFacts)>,
    period_ms: i64,
) -> BTreeMap<(i64, String), Rollup> {
    let mut out: BTreeMap<(i64, String), Rollup> = BTreeMap::new();
    for (a, facts) in attempts {
        let slot = a.created_at.div_euclid(period_ms) * period_ms;
        out.entry((slot, facts.event_type.clone())).or_default().add(facts, a.response_duration_ms);
    }
    out
}

fn as_map(rows: Vec<StatsRow>) -> BTreeMap<(i64, String), Rollup> {
    rows.into_iter().map(|r| ((r.slot_start, r.event_type), r.rollup)).collect()
}

pub async fn rollups_match_the_attempt_log_and_fold_exactly(f: Fixture) {
    let eps = [f.endpoint(None, None).await, f.endpoint(None, None).await];
    let now = now_millis();
    let classes = [
        (200, AttemptClass::Success),
        (404, AttemptClass::Http4xx),
        (503, AttemptClass::Http5xx),
        (0, AttemptClass::Timeout),
        (0, AttemptClass::Connection),
        (0, AttemptClass::Tls),
        (302, AttemptClass::Other),
    ];
    let mut outcomes = Vec::new();
    let mut facts_by_id: HashMap<String, AttemptFacts> = HashMap::new();
    for i in 0..60i64 {
        let event_type = ["order.paid", "user.made"][i as usize % 2];
        let jobs =
            f.store.enqueue(f.message(event_type, None, None), None, Some(lease("n1", 60_000)), None).await.unwrap();
        for (k, job) in jobs.iter().enumerate() {
            let ep = eps.iter().find(|e| e.id == job.endpoint.id).unwrap();
            let (code, class) = classes[(i as usize + k) % classes.len()];
            let mut attempt = f.attempt(&job.msg_id, ep, code);
            // Spread over the last three days, several to a minute.
            attempt.created_at = now - (i % 4) * 20 * HOUR - (i / 3) * 61_000;
            attempt.response_duration_ms = (i * 37 + k as i64 * 11) % 900;
            let facts = AttemptFacts {
                event_type: event_type.into(),
                class,
                bytes: 100 + i,
                delivered_after_ms: (class == AttemptClass::Success).then_some(i * 5),
            };
            attempt.facts = Some(facts.clone());
            facts_by_id.insert(attempt.id.clone(), facts);
            let next = if code == 200 { NextState::Succeeded } else { NextState::Failed };
            outcomes.push(outcome(job, Some(attempt), next, 1));
        }
    }
    // One outcome under a lease that is not the delivery's: neither stored nor counted.
    let mut stale = outcomes.pop().unwrap();
    stale.lease_token += 999;
    // One attempt with statistics off: stored, not counted.
    outcomes.last_mut().unwrap().attempt.as_mut().unwrap().facts = None;
    let uncounted = outcomes.last().unwrap().attempt.as_ref().unwrap().id.clone();
    let batches: Vec<Arc<[Outcome]>> = outcomes.chunks(16).map(Arc::from).collect();
    for b in &batches {
        f.store.record_outcomes(b.clone()).await.unwrap();
    }
    // A batch recorded again (a retry after a lost reply) counts once.
    f.store.record_outcomes(batches[0].clone()).await.unwrap();
    f.store.record_outcomes(Arc::from(vec![stale])).await.unwrap();

    // The attempt log, as stored, replayed.
    let stored = f.store.list_attempts(&f.org, &f.app, &AttemptFilter::default(), &page(1_000)).await.unwrap();
    assert_eq!(stored.len(), 119, "every attempt but the stale one");
    let counted: Vec<(&Attempt, &AttemptFacts)> =
        stored.iter().filter(|a| a.id != uncounted).map(|a| (a, &facts_by_id[&a.id])).collect();
    assert_eq!(counted.len(), 118);

    for period in [60_000, HOUR, DAY] {
        let got = as_map(f.store.stats(query(&f, period)).await.unwrap());
        assert_eq!(got, replay(counted.iter().copied(), period), "per {period} ms");
    }
    // One endpoint, one event type, a time range.
    let mut q = query(&f, DAY);
    q.endpoint_id = Some(eps[0].id.clone());
    q.event_types = vec!["user.made".into()];
    q.since = now - 2 * DAY;
    // Rows are chosen by their bucket's start.
    let want = replay(
        counted.iter().copied().filter(|(a, facts)| {
            a.endpoint_id == eps[0].id
                && facts.event_type == "user.made"
                && Granularity::Minute.bucket(a.created_at) >= q.since
        }),
        DAY,
    );
    assert!(!want.is_empty());
    assert_eq!(as_map(f.store.stats(q).await.unwrap()), want);

    // Minute rows older than the current hour fold into hours, and hours older
    // than today into days; per day nothing changes.
    let minute_slots = f.store.stats(query(&f, 60_000)).await.unwrap().len();
    let fold_all = RollupRetention { minutes_ms: 0, hours_ms: 0, days_ms: 0 };
    let folded = f.store.fold_rollups(10_000, fold_all).await.unwrap();
    assert!(folded > 0);
    assert_eq!(f.store.fold_rollups(10_000, fold_all).await.unwrap(), 0, "nothing left to fold");
    assert_eq!(as_map(f.store.stats(query(&f, DAY)).await.unwrap()), replay(counted.iter().copied(), DAY));
    let after = f.store.stats(query(&f, 60_000)).await.unwrap();
    assert!(after.len() < minute_slots, "{} slots after folding, {minute_slots} before", after.len());
    assert!(after.iter().filter(|r| r.slot_start < Granularity::Day.bucket(now)).all(|r| r.slot_start % DAY == 0));

    // Day rows past their retention go.
    let keep_a_day = RollupRetention { minutes_ms: 0, hours_ms: 0, days_ms: DAY };
    f.store.fold_rollups(10_000, keep_a_day).await.unwrap();
    let left = f.store.stats(query(&f, DAY)).await.unwrap();
    assert!(left.iter().all(|r| r.slot_start >= Granularity::Day.bucket(now) - DAY));

    // Queue depth now: nothing waits (every delivery finished).
    let waiting = f.store.queue_now(&f.org, &f.app, None).await.unwrap();
    assert_eq!(waiting.depth, 1, "the stale outcome's delivery is still leased");
    assert!(waiting.oldest_created_at.is_some());
    let none = f.store.queue_now(&f.org, &f.app, Some(&eps[0].id)).await.unwrap();
    let other = f.store.queue_now(&f.org, &f.app, Some(&eps[1].id)).await.unwrap();
    assert_eq!(none.depth + other.depth, 1);
}

pub async fn an_sla_changes_state_once_and_keeps_its_history(f: Fixture) {
    let spec = SlaSpec {
        name: "gold".into(),
        description: None,
        endpoint_id: None,
        event_types: vec![],
        target_success_ratio: 0.99,
        latency_percentile: Some(99.0),
        latency_target_ms: Some(1_000),
        window_seconds: 3_600,
        min_attempts: 1,
    };
    let t = now_millis();
    let sla = Sla {
        org_id: f.org.clone(),
        id: hookd_core::id::new_id(hookd_core::id::IdPrefix::Sla),
        app_id: f.app.clone(),
        spec: spec.clone(),
        state: SlaState::Unknown,
        state_since: None,
        figures: None,
        evaluated_at: None,
        created_at: t,
        updated_at: t,
    };
    f.store.create_sla(sla.clone()).await.unwrap();
    let judgement = |from, to, at| SlaJudgement {
        org_id: f.org.clone(),
        sla_id: sla.id.clone(),
        from,
        to,
        figures: SlaFigures { attempts: 3, success: 1, success_ratio: Some(1.0 / 3.0), ..Default::default() },
        at,
        event_id: hookd_core::id::new_id(hookd_core::id::IdPrefix::SlaEvent),
    };
    // Two nodes see the same change: one records it.
    let node_b = f.another_node().await;
    assert!(f.store.judge_sla(judgement(SlaState::Unknown, SlaState::Breached, t + 1)).await.unwrap());
    assert!(!node_b.judge_sla(judgement(SlaState::Unknown, SlaState::Breached, t + 2)).await.unwrap());
    // The same state again refreshes the figures only.
    assert!(!node_b.judge_sla(judgement(SlaState::Breached, SlaState::Breached, t + 3)).await.unwrap());
    let read = f.store.get_sla(&f.org, &sla.id).await.unwrap();
    assert_eq!((read.state, read.state_since, read.evaluated_at), (SlaState::Breached, Some(t + 1), Some(t + 3)));
    assert_eq!(read.figures.unwrap().attempts, 3);
    assert!(node_b.judge_sla(judgement(SlaState::Breached, SlaState::Met, t + 4)).await.unwrap());
    let history = f.store.list_sla_events(&f.org, &sla.id, &page(10)).await.unwrap();
    assert_eq!(history.iter().map(|e| e.state).collect::<Vec<_>>(), [SlaState::Breached, SlaState::Met]);
    assert_eq!(f.store.slas_after(None, 10).await.unwrap().iter().filter(|s| s.id == sla.id).count(), 1);

    // A new spec is judged afresh; a delete takes the history along.
    let mut looser = spec;
    looser.target_success_ratio = 0.5;
    let updated = f.store.update_sla(&f.org, &sla.id, looser).await.unwrap();
    assert_eq!((updated.state, updated.figures), (SlaState::Unknown, None));
    f.store.delete_sla(&f.org, &sla.id).await.unwrap();
    assert!(matches!(f.store.get_sla(&f.org, &sla.id).await, Err(StoreError::NotFound)));
    assert!(f.store.list_sla_events(&f.org, &sla.id, &page(10)).await.unwrap().is_empty());
}

pub async fn traffic_by_application_and_alerts_raised_once(f: Fixture) {
    let ep = f.endpoint(None, None).await;
    let now = now_millis();
    let minute = (now / 60_000) * 60_000;
    let mut outcomes = Vec::new();
    for (i, (code, ago)) in
        [(500, 0), (500, 0), (200, 0), (200, 30 * 60_000), (500, 30 * 60_000)].into_iter().enumerate()
    {
        let jobs = f.store.enqueue(f.message("a.b", None, None), None, Some(lease("n1", 60_000)), None).await.unwrap();
        let mut a = f.attempt(&jobs[0].msg_id, &ep, code);
        a.created_at = now - ago - i as i64;
        let next = if code == 200 { NextState::Succeeded } else { NextState::Failed };
        outcomes.push(outcome(&jobs[0], Some(a), next, 1));
    }
    f.store.record_outcomes(Arc::from(outcomes)).await.unwrap();
    let recent_since = minute - 4 * 60_000;
    let traffic = f.store.app_traffic(recent_since - 3_600_000, recent_since).await.unwrap();
    let mine: Vec<&AppTraffic> = traffic.iter().filter(|t| t.app_id == f.app).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(
        (mine[0].recent_attempts, mine[0].recent_failures, mine[0].base_attempts, mine[0].base_failures),
        (3, 2, 2, 1)
    );
    assert!(f.store.claim_alert(&f.org, &f.app, "x", now, 3_600_000).await.unwrap());
    assert!(!f.another_node().await.claim_alert(&f.org, &f.app, "x", now + 1, 3_600_000).await.unwrap());
    assert!(f.store.claim_alert(&f.org, &f.app, "y", now + 1, 3_600_000).await.unwrap(), "per kind");
    assert!(
        f.store.claim_alert(&f.org, &f.app, "x", now + 3_600_000, 3_600_000).await.unwrap(),
        "after the quiet hour"
    );
}
