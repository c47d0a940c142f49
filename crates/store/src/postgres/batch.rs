//! Group commit of enqueues on PostgreSQL.
//!
//! One message per transaction costs five round trips and a commit each, and
//! PostgreSQL spends most of its time per message on them. Enqueues that
//! arrive together are instead committed together, SQLite's group commit
//! brought over: a few workers each take every request waiting, store them
//! with one statement per table (idempotency keys, messages, deliveries) and
//! one commit, then answer each caller. A caller is answered only after the
//! commit, as before; alone, a request makes a group of one and waits for
//! nothing.
//!
//! The group runs optimistically. If anything in it is not plain — a key or an
//! eventId already taken, a statement refused — it is rolled back and every
//! request runs again on its own (`messages::create`), which gives each its own
//! answer (a replay, a conflict, an error). A request to an ordered endpoint
//! takes its place in its key's order alone, under the key's lock: the group
//! is rolled back and runs again without such requests, which then run alone.
//! When the database is out of reach, or a commit fails (it may have landed),
//! every caller is answered unavailable at once instead. Rows are locked in key order within a group, so concurrent
//! groups wait for each other but do not deadlock.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use hookd_core::AttemptTrigger;
use sqlx::{Connection, PgPool, Row};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::messages;
use super::owners::{self, standing, Holder, Standing};
use super::rows::{self, ENDPOINT_COLUMNS, ENDPOINT_COLUMN_COUNT};
use crate::model::*;
use crate::recipients::Recipients;
use crate::{Result, StoreError};

/// Most enqueues committed together.
const MAX_GROUP: usize = 128;
/// Groups in flight at once: while one commits, the next gathers.
const WORKERS: usize = 3;

/// An endpoint and who holds its queue.
type Held = (Arc<Endpoint>, Option<Holder>);

/// One enqueue: the deliveries leased to the caller, and how many were left scheduled.
pub type Enqueued = (Vec<DeliveryJob>, usize);

pub struct Request {
    pub msg: Message,
    pub only_endpoint: Option<String>,
    pub lease: Option<Lease>,
    pub idem: Option<IdempotencyRecord>,
    pub reply: oneshot::Sender<Result<Enqueued>>,
}

/// Starts the workers; enqueue by sending a [`Request`].
pub fn start(pool: PgPool) -> mpsc::Sender<Request> {
    let (tx, rx) = mpsc::channel::<Request>(4096);
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..WORKERS {
        let (pool, rx) = (pool.clone(), rx.clone());
        tokio::spawn(async move {
            loop {
                let mut group = Vec::with_capacity(MAX_GROUP);
                {
                    let mut rx = rx.lock().await;
                    if rx.recv_many(&mut group, MAX_GROUP).await == 0 {
                        return;
                    }
                }
                run_group(&pool, group).await;
            }
        });
    }
    tx
}

/// What became of a group committed together.
enum Together {
    /// Committed: each request's result, in the group's order.
    Committed(Vec<Enqueued>),
    /// Rolled back: a request needs its own answer.
    NotPlain,
    /// Rolled back: the requests (flagged `true`, at least one) that go to an
    /// ordered endpoint must run alone; the others can be committed together.
    Ordered(Vec<bool>),
}

async fn run_group(pool: &PgPool, mut group: Vec<Request>) {
    // Requests to ordered endpoints, set aside to run alone after the rest.
    let mut ordered = Vec::new();
    while group.len() > 1 {
        match commit_together(pool, &group).await {
            Ok(Together::Committed(results)) => {
                for (req, result) in group.drain(..).zip(results) {
                    let _ = req.reply.send(Ok(result));
                }
            }
            // The database is out of reach, or the commit's outcome is unknown
            // (it may have landed): every caller gets that answer (a 503 that
            // says to retry with the same idempotency key), at once.
            Err(StoreError::Unavailable(e)) => {
                for req in group.drain(..) {
                    let _ = req.reply.send(Err(StoreError::Unavailable(e.clone())));
                }
            }
            // The rest together again (what the group stored was rolled back),
            // without those: the group shrinks each time round.
            Ok(Together::Ordered(flags)) => {
                let (set_aside, rest): (Vec<_>, Vec<_>) = group.into_iter().zip(flags).partition(|(_, o)| *o);
                ordered.extend(set_aside.into_iter().map(|(req, _)| req));
                group = rest.into_iter().map(|(req, _)| req).collect();
            }
            // Not plain: each on its own below.
            Ok(Together::NotPlain) => break,
            Err(e) => {
                tracing::debug!(error = %e, requests = group.len(), "a group enqueue failed; one by one");
                break;
            }
        }
    }
    for req in group.into_iter().chain(ordered) {
        let result = alone(pool, &req).await;
        let _ = req.reply.send(result);
    }
}

async fn alone(pool: &PgPool, r: &Request) -> Result<Enqueued> {
    let mut tx = pool.begin().await?;
    let out = messages::create(&mut tx, &r.msg, r.only_endpoint.as_deref(), r.lease.as_ref(), r.idem.as_ref()).await?;
    tx.commit().await?;
    Ok(out)
}

/// The group in one transaction; rolled back when a request in it needs its
/// own answer, or goes to an ordered endpoint (see [`Together`]).
async fn commit_together(pool: &PgPool, group: &[Request]) -> Result<Together> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;

    // Idempotency keys, in key order; each must be stored (new, or replacing an expired one).
    let mut keyed: Vec<&IdempotencyRecord> = group.iter().filter_map(|r| r.idem.as_ref()).collect();
    if !keyed.is_empty() {
        keyed.sort_by(|a, b| {
            (&a.org_id, &a.key.method, &a.key.path, &a.key.key).cmp(&(
                &b.org_id,
                &b.key.method,
                &b.key.path,
                &b.key.key,
            ))
        });
        let col = |f: fn(&IdempotencyRecord) -> &str| keyed.iter().map(|r| f(r)).collect::<Vec<&str>>();
        let stored = sqlx::query(
            "INSERT INTO idempotency (org_id, method, path, key, request_hash, status, resource_id, expires_at)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::integer[],
                                  $7::text[], $8::bigint[])
             ON CONFLICT (org_id, method, path, key) DO UPDATE SET request_hash = EXCLUDED.request_hash,
                 status = EXCLUDED.status, resource_id = EXCLUDED.resource_id, expires_at = EXCLUDED.expires_at
             WHERE idempotency.expires_at <= $9",
        )
        .bind(col(|r| &r.org_id))
        .bind(col(|r| &r.key.method))
        .bind(col(|r| &r.key.path))
        .bind(col(|r| &r.key.key))
        .bind(col(|r| &r.request_hash))
        .bind(keyed.iter().map(|r| i32::from(r.status)).collect::<Vec<i32>>())
        .bind(keyed.iter().map(|r| r.resource_id.as_deref()).collect::<Vec<Option<&str>>>())
        .bind(keyed.iter().map(|r| r.expires_at).collect::<Vec<i64>>())
        .bind(hookd_core::timefmt::now_millis())
        .execute(&mut *tx)
        .await;
        match stored {
            Ok(done) if done.rows_affected() as usize == keyed.len() => {}
            // A key in use, here twice, or changed concurrently.
            _ => return Ok(Together::NotPlain),
        }
    }

    // Messages, eventIds in order; each must be new.
    let mut msgs: Vec<&Message> = group.iter().map(|r| &r.msg).collect();
    msgs.sort_by(|a, b| (&a.app_id, &a.event_id, &a.id).cmp(&(&b.app_id, &b.event_id, &b.id)));
    let inserted = sqlx::query(
        "INSERT INTO message (org_id, app_id, id, event_id, event_type, channels, tags, payload, created_at, expires_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[],
                              $8::bytea[], $9::bigint[], $10::bigint[])
         ON CONFLICT (app_id, event_id) WHERE event_id IS NOT NULL DO NOTHING",
    )
    .bind(msgs.iter().map(|m| m.org_id.as_str()).collect::<Vec<_>>())
    .bind(msgs.iter().map(|m| m.app_id.as_str()).collect::<Vec<_>>())
    .bind(msgs.iter().map(|m| m.id.as_str()).collect::<Vec<_>>())
    .bind(msgs.iter().map(|m| m.event_id.as_deref()).collect::<Vec<_>>())
    .bind(msgs.iter().map(|m| m.event_type.as_str()).collect::<Vec<_>>())
    .bind(msgs.iter().map(|m| rows::json_opt(&m.channels)).collect::<Vec<_>>())
    .bind(msgs.iter().map(|m| rows::json_opt(&m.tags)).collect::<Vec<_>>())
    .bind(msgs.iter().map(|m| m.payload.as_deref()).collect::<Vec<_>>())
    .bind(msgs.iter().map(|m| m.created_at).collect::<Vec<_>>())
    .bind(msgs.iter().map(|m| m.expires_at).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(done) if done.rows_affected() as usize == msgs.len() => {}
        _ => return Ok(Together::NotPlain),
    }

    // Every endpoint of the group's applications, with who holds its queue.
    let apps: Vec<(&str, &str)> = {
        let set: HashSet<(&str, &str)> = group.iter().map(|r| (r.msg.org_id.as_str(), r.msg.app_id.as_str())).collect();
        set.into_iter().collect()
    };
    let endpoint_rows = sqlx::query(&format!(
        "SELECT {ENDPOINT_COLUMNS}, o.owner, o.expires_at, hookd_now_ms() FROM endpoint e
         JOIN unnest($1::text[], $2::text[]) AS a(org_id, app_id) ON a.org_id = e.org_id AND a.app_id = e.app_id
         LEFT JOIN endpoint_owner o ON o.endpoint_id = e.id
         ORDER BY e.id"
    ))
    .bind(apps.iter().map(|a| a.0).collect::<Vec<_>>())
    .bind(apps.iter().map(|a| a.1).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    let mut now = 0;
    let mut by_app: HashMap<String, Vec<Held>> = HashMap::new();
    for r in &endpoint_rows {
        let ep = rows::endpoint(r)?;
        let owner: Option<String> = r.try_get(ENDPOINT_COLUMN_COUNT)?;
        let expires_at: Option<i64> = r.try_get(ENDPOINT_COLUMN_COUNT + 1)?;
        now = r.try_get(ENDPOINT_COLUMN_COUNT + 2)?;
        let holder = owner.zip(expires_at).map(|(owner, expires_at)| Holder { owner, expires_at });
        by_app.entry(ep.app_id.clone()).or_default().push((Arc::new(ep), holder));
    }

    // Each message's destinations; the queues this group's leases must take.
    let mut planned: Vec<Vec<(Arc<Endpoint>, &str)>> = Vec::with_capacity(group.len());
    let mut to_take: Vec<(String, &Lease)> = Vec::new();
    let mut ordered = vec![false; group.len()];
    for (r, ordered) in group.iter().zip(ordered.iter_mut()) {
        let mut dests = Vec::new();
        let recipients = Recipients::new(&r.msg);
        for (ep, holder) in by_app.get(&r.msg.app_id).map(Vec::as_slice).unwrap_or_default() {
            let wanted = match r.only_endpoint.as_deref() {
                Some(only) => ep.id == only,
                None => recipients.wants(ep),
            };
            if !wanted {
                continue;
            }
            // An ordered endpoint's delivery takes its place in its key's order
            // under the key's lock: `messages::create` does that, one request at
            // a time (rolled back here, nothing was decided yet).
            if ep.control.ordering.is_some() {
                *ordered = true;
                continue;
            }
            // A disabled endpoint (a test send) is scheduled, as in `messages::create`.
            let state = match &r.lease {
                _ if ep.disabled => "scheduled",
                None => "scheduled",
                Some(lease) => match standing(holder.as_ref(), lease, now) {
                    Standing::Holds => "leased",
                    Standing::Take => {
                        to_take.push((ep.id.clone(), lease));
                        "leased"
                    }
                    Standing::Other => "scheduled",
                },
            };
            dests.push((ep.clone(), state));
        }
        planned.push(dests);
    }
    if ordered.contains(&true) {
        return Ok(Together::Ordered(ordered));
    }
    // Take each queue once, per owner, in id order; what cannot be taken stays scheduled.
    to_take.sort_by(|a, b| a.0.cmp(&b.0));
    to_take.dedup_by(|a, b| a.0 == b.0 && a.1.owner == b.1.owner);
    let mut taken: HashSet<(String, String)> = HashSet::new();
    let mut by_owner: HashMap<&str, (Vec<String>, &Lease)> = HashMap::new();
    for (ep, lease) in &to_take {
        by_owner.entry(lease.owner.as_str()).or_insert_with(|| (Vec::new(), lease)).0.push(ep.clone());
    }
    for (owner, (eps, lease)) in by_owner {
        for ep in owners::take(&mut tx, &eps, lease).await? {
            taken.insert((ep, owner.to_string()));
        }
    }
    let needed_take: HashSet<(String, String)> = to_take.iter().map(|(e, l)| (e.clone(), l.owner.clone())).collect();

    // Every delivery of the group in one statement.
    let mut d_msg: Vec<&str> = Vec::new();
    let mut d_org: Vec<&str> = Vec::new();
    let mut d_app: Vec<&str> = Vec::new();
    let mut d_ep: Vec<String> = Vec::new();
    let mut d_state: Vec<&str> = Vec::new();
    let mut d_owner: Vec<Option<&str>> = Vec::new();
    let mut d_lease_ms: Vec<Option<i64>> = Vec::new();
    for (r, dests) in group.iter().zip(planned.iter_mut()) {
        for (ep, state) in dests.iter_mut() {
            if *state == "leased" {
                let lease = r.lease.as_ref().expect("leased only with a lease");
                let key = (ep.id.clone(), lease.owner.clone());
                if needed_take.contains(&key) && !taken.contains(&key) {
                    *state = "scheduled";
                }
            }
            d_msg.push(&r.msg.id);
            d_org.push(&r.msg.org_id);
            d_app.push(&r.msg.app_id);
            d_ep.push(ep.id.clone());
            d_state.push(state);
            let leased = *state == "leased";
            d_owner.push(r.lease.as_ref().filter(|_| leased).map(|l| l.owner.as_str()));
            d_lease_ms.push(r.lease.as_ref().filter(|_| leased).map(|l| l.duration_ms));
        }
    }
    let ids: HashMap<(String, String), i64> = if d_msg.is_empty() {
        HashMap::new()
    } else {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "INSERT INTO delivery (org_id, app_id, msg_id, endpoint_id, state, attempts, due_at,
                 lease_owner, lease_expires_at, lease_token, created_at, updated_at)
             SELECT t.org_id, t.app_id, t.msg_id, t.endpoint_id, t.state, 0,
                    CASE WHEN t.state = 'scheduled' THEN hookd_now_ms() END,
                    t.owner, hookd_now_ms() + t.lease_ms,
                    CASE WHEN t.state = 'leased' THEN 1 ELSE 0 END,
                    hookd_now_ms(), hookd_now_ms()
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[])
                  AS t(org_id, app_id, msg_id, endpoint_id, state, owner, lease_ms)
             RETURNING id, msg_id, endpoint_id",
        )
        .bind(&d_org)
        .bind(&d_app)
        .bind(&d_msg)
        .bind(&d_ep)
        .bind(&d_state)
        .bind(&d_owner)
        .bind(&d_lease_ms)
        .fetch_all(&mut *tx)
        .await?;
        rows.into_iter().map(|(id, m, e)| ((m, e), id)).collect()
    };
    // A failed commit may still have landed: never run the group again after it.
    tx.commit().await.map_err(|e| StoreError::Unavailable(format!("the commit's outcome is unknown: {e}")))?;

    let mut results = Vec::with_capacity(group.len());
    for (r, dests) in group.iter().zip(planned) {
        let mut jobs = Vec::new();
        let mut unleased = 0;
        for (ep, state) in dests {
            match state {
                "leased" => {
                    let delivery_id = *ids
                        .get(&(r.msg.id.clone(), ep.id.clone()))
                        .ok_or_else(|| StoreError::Internal("a delivery was not inserted".into()))?;
                    jobs.push(DeliveryJob {
                        delivery_id,
                        lease_token: 1,
                        org_id: r.msg.org_id.clone(),
                        app_id: r.msg.app_id.clone(),
                        msg_id: r.msg.id.clone(),
                        event_type: r.msg.event_type.clone(),
                        msg_created_at: r.msg.created_at,
                        payload: r.msg.payload.clone(),
                        endpoint: ep,
                        attempts: 0,
                        trigger: AttemptTrigger::Scheduled,
                    });
                }
                "scheduled" => unleased += 1,
                _ => {}
            }
        }
        results.push((jobs, unleased));
    }
    Ok(Together::Committed(results))
}
