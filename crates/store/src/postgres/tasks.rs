//! Background tasks: stored, leased, and advanced one batch per transaction.

use hookd_core::id::{id_floor_at, IdPrefix};
use hookd_core::AttemptTrigger;
use std::collections::HashSet;

use sqlx::{PgConnection, QueryBuilder};

use super::rows::{self, MESSAGE_COLUMNS, MESSAGE_COLUMNS_NO_PAYLOAD, TASK_COLUMNS};
use super::{endpoints, ordering, tokens};
use crate::model::*;
use crate::recipients::Recipients;
use crate::task::*;
use crate::{Result, StoreError};

pub async fn insert(c: &mut PgConnection, t: &BackgroundTask, idem: Option<&IdempotencyRecord>) -> Result<()> {
    tokens::maybe_idempotency(c, idem).await?;
    sqlx::query(
        "INSERT INTO background_task (id, org_id, app_id, endpoint_id, kind, status, since, until, cursor,
             messages_sent, error, created_at, updated_at, params, result)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(&t.id)
    .bind(&t.org_id)
    .bind(&t.app_id)
    .bind(&t.endpoint_id)
    .bind(t.kind.as_str())
    .bind(t.status.as_str())
    .bind(t.since)
    .bind(t.until)
    .bind(&t.cursor)
    .bind(t.messages_sent as i64)
    .bind(&t.error)
    .bind(t.created_at)
    .bind(t.updated_at)
    .bind(rows::json_opt(&t.filter))
    .bind(&t.result)
    .execute(c)
    .await?;
    Ok(())
}

pub async fn get(c: &mut PgConnection, org_id: &str, id: &str) -> Result<BackgroundTask> {
    let row = sqlx::query(&format!("SELECT {TASK_COLUMNS} FROM background_task WHERE org_id = $1 AND id = $2"))
        .bind(org_id)
        .bind(id)
        .fetch_one(c)
        .await?;
    Ok(rows::task(&row)?)
}

pub async fn list(c: &mut PgConnection, org_id: &str, f: &TaskFilter, page: &Page) -> Result<Vec<BackgroundTask>> {
    let mut q = QueryBuilder::new(format!("SELECT {TASK_COLUMNS} FROM background_task WHERE org_id = "));
    q.push_bind(org_id);
    if let Some(app) = &f.app_id {
        q.push(" AND app_id = ").push_bind(app.clone());
    }
    if let Some(s) = f.status {
        q.push(" AND status = ").push_bind(s.as_str());
    }
    if let Some(k) = f.kind {
        q.push(" AND kind = ").push_bind(k.as_str());
    }
    rows::push_page(&mut q, page, "id");
    rows::collect(q.build().fetch_all(c).await?, rows::task)
}

/// Leases the oldest running task that nobody holds; one statement, which
/// skips a task another node is taking at the same moment.
pub async fn claim(c: &mut PgConnection, lease: &Lease) -> Result<Option<TaskLease>> {
    let row = sqlx::query(&format!(
        "WITH free AS MATERIALIZED (
             SELECT id FROM background_task
             WHERE status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < hookd_now_ms())
             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
         )
         UPDATE background_task t SET lease_owner = $1, lease_expires_at = hookd_now_ms() + $2,
             lease_token = t.lease_token + 1
         FROM free
         WHERE t.id = free.id
         RETURNING {}, t.lease_token",
        TASK_COLUMNS.split(", ").map(|col| format!("t.{}", col.trim())).collect::<Vec<_>>().join(", ")
    ))
    .bind(&lease.owner)
    .bind(lease.duration_ms)
    .fetch_optional(c)
    .await?;
    let Some(row) = row else { return Ok(None) };
    // The token follows the task's columns.
    let token: i64 = sqlx::Row::try_get(&row, TASK_COLUMNS.split(',').count())?;
    Ok(Some(TaskLease { task: rows::task(&row)?, token }))
}

/// The task as stored, locked, if `lease` still holds it.
async fn held(c: &mut PgConnection, lease: &TaskLease) -> Result<BackgroundTask> {
    let row = sqlx::query(&format!(
        "SELECT {TASK_COLUMNS} FROM background_task WHERE id = $1 AND status = 'running' AND lease_token = $2
         FOR UPDATE"
    ))
    .bind(&lease.task.id)
    .bind(lease.token)
    .fetch_one(c)
    .await?;
    Ok(rows::task(&row)?)
}

/// Run inside a transaction.
pub async fn step(c: &mut PgConnection, lease: &TaskLease, lease_ms: i64, batch: usize) -> Result<TaskStep> {
    let task = held(c, lease).await?;
    let ep = match endpoints::get(c, &task.org_id, &task.app_id, &task.endpoint_id).await {
        Ok(ep) => ep,
        Err(StoreError::NotFound) => {
            finish(c, &task, "failed", Some("the endpoint was deleted")).await?;
            return Ok(TaskStep { sent: 0, done: true });
        }
        Err(e) => return Err(e),
    };
    let (sent, cursor, seen) = match task.kind {
        TaskKind::EndpointRecover => recover_batch(c, &task, &ep, batch).await?,
        TaskKind::EndpointReplay => replay_batch(c, &task, &ep, batch).await?,
        TaskKind::EndpointBulkReplay => bulk_replay_batch(c, &task, &ep, batch).await?,
        // Made finished: there is nothing to run.
        TaskKind::SdkGenerate => (0, None, 0),
    };
    sqlx::query(
        "UPDATE background_task SET cursor = COALESCE($2, cursor), messages_sent = messages_sent + $3,
             lease_expires_at = hookd_now_ms() + $4, updated_at = hookd_now_ms()
         WHERE id = $1",
    )
    .bind(&task.id)
    .bind(cursor)
    .bind(sent as i64)
    .bind(lease_ms)
    .execute(&mut *c)
    .await?;
    let done = seen < batch;
    if done {
        finish(c, &task, "finished", None).await?;
    }
    Ok(TaskStep { sent, done })
}

async fn finish(c: &mut PgConnection, task: &BackgroundTask, status: &str, error: Option<&str>) -> Result<()> {
    sqlx::query(
        "UPDATE background_task SET status = $2, error = $3, lease_owner = NULL, lease_expires_at = NULL,
             updated_at = hookd_now_ms()
         WHERE id = $1 AND status = 'running'",
    )
    .bind(&task.id)
    .bind(status)
    .bind(error)
    .execute(c)
    .await?;
    Ok(())
}

/// Run inside a transaction.
pub async fn fail(c: &mut PgConnection, lease: &TaskLease, error: &str) -> Result<()> {
    let task = held(c, lease).await?;
    finish(c, &task, "failed", Some(error)).await
}

/// One batch of failed attempts to the endpoint in the range, after the
/// cursor: each attempted message's delivery that has not succeeded since is
/// due now (a failed one, or one waiting for its next retry), as a manual
/// attempt (while the endpoint is disabled, the node that claims it pauses it);
/// one with an ordering key waits parked, and the first waiting of its key is due.
/// Returns (made due,
/// new cursor, attempts seen).
async fn recover_batch(
    c: &mut PgConnection,
    task: &BackgroundTask,
    ep: &Endpoint,
    batch: usize,
) -> Result<(u64, Option<String>, usize)> {
    // Attempt ids sort by time, so the range is a range of ids on the endpoint's index.
    let floor = id_floor_at(IdPrefix::Attempt, task.since.max(0) as u64);
    let after = task.cursor.clone().unwrap_or_else(|| floor.clone());
    let ceiling = id_floor_at(IdPrefix::Attempt, task.until.max(0) as u64);
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, msg_id FROM attempt
         WHERE endpoint_id = $1 AND id >= $2 AND id > $3 AND id < $4 AND status = 2
         ORDER BY id LIMIT $5",
    )
    .bind(&ep.id)
    .bind(&floor)
    .bind(&after)
    .bind(&ceiling)
    .bind(batch as i64)
    .fetch_all(&mut *c)
    .await?;
    let mut msg_ids: Vec<&str> = rows.iter().map(|(_, m)| m.as_str()).collect();
    msg_ids.sort_unstable();
    msg_ids.dedup();
    // Deliveries with a key made waiting again: under the keys' locks (taken
    // before any delivery row, see `ordering`), parked, then the first waiting
    // of each key is due (a long queue is not made due row by row).
    let keys = ordering::keys_of_endpoint_msgs(&mut *c, &ep.id, &msg_ids).await?;
    ordering::lock(&mut *c, &keys).await?;
    // Rows locked in id order within one endpoint, like every multi-row lock here.
    let sent = sqlx::query(
        "WITH picked AS MATERIALIZED (
             SELECT id FROM delivery
             WHERE endpoint_id = $1 AND msg_id = ANY($2)
               AND (state = 'failed' OR (state = 'scheduled' AND due_at > hookd_now_ms()))
             ORDER BY id FOR UPDATE
         )
         UPDATE delivery d SET state = 'scheduled', due_at = CASE WHEN d.order_key IS NULL THEN hookd_now_ms() END,
             next_trigger = $3, updated_at = hookd_now_ms()
         FROM picked WHERE d.id = picked.id",
    )
    .bind(&ep.id)
    .bind(&msg_ids)
    .bind(AttemptTrigger::Manual as i16)
    .execute(&mut *c)
    .await?
    .rows_affected();
    ordering::release_heads(&mut *c, &keys).await?;
    Ok((sent, rows.last().map(|(id, _)| id.clone()), rows.len()))
}

/// One batch of the application's messages in the range, after the cursor:
/// those the endpoint accepts and never got get a delivery, due now (while the
/// endpoint is disabled, the node that claims it pauses it). Returns (created, new cursor, messages seen).
async fn replay_batch(
    c: &mut PgConnection,
    task: &BackgroundTask,
    ep: &Endpoint,
    batch: usize,
) -> Result<(u64, Option<String>, usize)> {
    let floor = id_floor_at(IdPrefix::Message, task.since.max(0) as u64);
    let after = task.cursor.clone().unwrap_or_else(|| floor.clone());
    // A filter may read the payload.
    let columns = if ep.control.filter.is_some() { MESSAGE_COLUMNS } else { MESSAGE_COLUMNS_NO_PAYLOAD };
    let candidates = sqlx::query(&format!(
        "SELECT {columns} FROM message m
         WHERE m.app_id = $1 AND m.id >= $2 AND m.id > $3 AND m.created_at >= $4 AND m.created_at < $5
         ORDER BY m.id LIMIT $6"
    ))
    .bind(&ep.app_id)
    .bind(&floor)
    .bind(&after)
    .bind(task.since)
    .bind(task.until)
    .bind(batch as i64)
    .fetch_all(&mut *c)
    .await?;
    let candidates = rows::collect(candidates, rows::message)?;
    let wanted: Vec<&Message> = candidates.iter().filter(|m| Recipients::new(m).matches(ep)).collect();
    let msg_ids: Vec<&str> = wanted.iter().map(|m| m.id.as_str()).collect();
    // A message scheduled ahead (`deliverAt`) is due then, not now.
    let due: Vec<Option<i64>> = wanted.iter().map(|m| m.deliver_at).collect();
    let sent = if msg_ids.is_empty() {
        0
    } else if ep.control.ordering.is_some() {
        replay_ordered(c, ep, &wanted).await?
    } else {
        sqlx::query(
            "INSERT INTO delivery (org_id, app_id, msg_id, endpoint_id, state, attempts, due_at, created_at,
                 updated_at)
             SELECT $1, $2, t.msg_id, $3, 'scheduled', 0, COALESCE(t.deliver_at, hookd_now_ms()), hookd_now_ms(),
                    hookd_now_ms()
             FROM unnest($4::text[], $5::bigint[]) AS t(msg_id, deliver_at)
             ON CONFLICT (msg_id, endpoint_id) DO NOTHING",
        )
        .bind(&ep.org_id)
        .bind(&ep.app_id)
        .bind(&ep.id)
        .bind(&msg_ids)
        .bind(&due)
        .execute(&mut *c)
        .await?
        .rows_affected()
    };
    Ok((sent, candidates.last().map(|m| m.id.clone()), candidates.len()))
}

/// [`replay_batch`]'s deliveries to an ordered endpoint, for the messages
/// (in id order) that have none there yet: each with its key, due now (or at
/// its `deliverAt`), or parked behind another of its key still waiting (an
/// earlier one of this batch included), decided under the keys' locks. Returns
/// how many were created.
async fn replay_ordered(c: &mut PgConnection, ep: &Endpoint, wanted: &[&Message]) -> Result<u64> {
    // A JSON Pointer key needs the payload (read without it above).
    let pointer = ep.control.ordering.as_ref().and_then(|o| o.key.as_deref()).is_some_and(|k| k.starts_with('/'));
    let loaded: Vec<Message>;
    let msgs: Vec<&Message> = if pointer {
        let ids: Vec<&str> = wanted.iter().map(|m| m.id.as_str()).collect();
        let found = sqlx::query(&format!("SELECT {MESSAGE_COLUMNS} FROM message m WHERE m.id = ANY($1) ORDER BY m.id"))
            .bind(&ids)
            .fetch_all(&mut *c)
            .await?;
        loaded = rows::collect(found, rows::message)?;
        loaded.iter().collect()
    } else {
        wanted.to_vec()
    };
    let keyed: Vec<(&Message, String)> =
        msgs.into_iter().filter_map(|m| Some((m, crate::ordering::key_for(ep, m)?))).collect();
    let mut keys: Vec<ordering::OrderKey> = keyed.iter().map(|(_, k)| (ep.id.clone(), k.clone())).collect();
    keys.sort();
    keys.dedup();
    // Under the locks, nothing else adds a delivery of these keys (a resend of
    // one of these messages included), so what exists and what waits is settled.
    let behind = ordering::parked_behind(c, &keys).await?;
    let mut waiting: HashSet<&str> =
        keys.iter().zip(behind).filter(|(_, behind)| *behind).map(|((_, k), _)| k.as_str()).collect();
    let ids: Vec<&str> = keyed.iter().map(|(m, _)| m.id.as_str()).collect();
    let had: HashSet<String> =
        sqlx::query_scalar("SELECT msg_id FROM delivery WHERE endpoint_id = $1 AND msg_id = ANY($2)")
            .bind(&ep.id)
            .bind(&ids)
            .fetch_all(&mut *c)
            .await?
            .into_iter()
            .collect();
    let (mut msg_ids, mut due, mut order_keys, mut parked) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (m, key) in keyed.iter().filter(|(m, _)| !had.contains(&m.id)) {
        msg_ids.push(m.id.as_str());
        // A message scheduled ahead (`deliverAt`) is due then, not now.
        due.push(m.deliver_at);
        order_keys.push(key.as_str());
        // The first of its key goes unless another waits; the rest wait behind it.
        parked.push(!waiting.insert(key.as_str()));
    }
    if msg_ids.is_empty() {
        return Ok(0);
    }
    // Inserted in the messages' order: ids, and so the order within a key, follow it.
    Ok(sqlx::query(
        "INSERT INTO delivery (org_id, app_id, msg_id, endpoint_id, state, attempts, due_at, created_at,
             updated_at, order_key)
         SELECT $1, $2, t.msg_id, $3, 'scheduled', 0,
                CASE WHEN NOT t.parked THEN COALESCE(t.deliver_at, hookd_now_ms()) END, hookd_now_ms(),
                hookd_now_ms(), t.order_key
         FROM unnest($4::text[], $5::bigint[], $6::text[], $7::boolean[]) WITH ORDINALITY
              AS t(msg_id, deliver_at, order_key, parked, n)
         ORDER BY t.n
         ON CONFLICT (msg_id, endpoint_id) DO NOTHING",
    )
    .bind(&ep.org_id)
    .bind(&ep.app_id)
    .bind(&ep.id)
    .bind(&msg_ids)
    .bind(&due)
    .bind(&order_keys)
    .bind(&parked)
    .execute(&mut *c)
    .await?
    .rows_affected())
}

/// One batch of the endpoint's deliveries of messages in the range, after the
/// cursor (message ids sort by time, so the range is a range of the endpoint's
/// `(endpoint_id, msg_id)` index): those matching the task's filter are due now
/// as manual attempts; one in flight is due again once its outcome is in; a
/// paused one waits for its endpoint; one whose payload is gone is skipped.
/// One with an ordering key waits parked, under its key's lock, and the first
/// waiting of each key is due (as in [`recover_batch`]).
/// Each change is one conditional update naming the state it leaves. Returns
/// (made due, new cursor, deliveries seen).
async fn bulk_replay_batch(
    c: &mut PgConnection,
    task: &BackgroundTask,
    ep: &Endpoint,
    batch: usize,
) -> Result<(u64, Option<String>, usize)> {
    let filter = task.filter.clone().unwrap_or_default();
    let floor = id_floor_at(IdPrefix::Message, task.since.max(0) as u64);
    let after = task.cursor.clone().unwrap_or_else(|| floor.clone());
    let ceiling = id_floor_at(IdPrefix::Message, task.until.max(0) as u64);
    let status = filter.status_sql();
    let rows: Vec<ReplayCandidate> = sqlx::query_as(&format!(
        "SELECT d.id, d.state, d.msg_id, m.event_type, m.channels::text, m.tags::text, m.payload IS NULL,
                (SELECT a.response_status_code FROM attempt a
                 WHERE a.msg_id = d.msg_id AND a.endpoint_id = d.endpoint_id ORDER BY a.id DESC LIMIT 1),
                (d.state = 'scheduled' AND d.attempts = 0)
         FROM delivery d JOIN message m ON m.id = d.msg_id
         WHERE d.endpoint_id = $1 AND d.msg_id >= $2 AND d.msg_id > $3 AND d.msg_id < $4{status}
         ORDER BY d.msg_id LIMIT $5"
    ))
    .bind(&ep.id)
    .bind(&floor)
    .bind(&after)
    .bind(&ceiling)
    .bind(batch as i64)
    .fetch_all(&mut *c)
    .await?;
    // Rows locked in id order within one endpoint, like every multi-row lock here.
    let mut picked: Vec<&ReplayCandidate> = rows.iter().filter(|c| filter.picks(c)).collect();
    picked.sort_by_key(|r| r.0);
    let rescheduled: Vec<i64> = picked.iter().filter(|r| r.1 != "paused" && r.1 != "leased").map(|r| r.0).collect();
    let keys = ordering::keys_of_deliveries(&mut *c, &rescheduled).await?;
    ordering::lock(&mut *c, &keys).await?;
    let mut sent = 0;
    for (id, state, ..) in picked {
        let query = match state.as_str() {
            "paused" => continue,
            "leased" => {
                sqlx::query("UPDATE delivery SET resend_pending = TRUE WHERE id = $1 AND state = 'leased'").bind(id)
            }
            _ => sqlx::query(
                "UPDATE delivery SET state = 'scheduled', due_at = CASE WHEN order_key IS NULL THEN hookd_now_ms() END,
                     next_trigger = $3, updated_at = hookd_now_ms()
                 WHERE id = $1 AND state = $2",
            )
            .bind(id)
            .bind(state)
            .bind(AttemptTrigger::Manual as i16),
        };
        sent += query.execute(&mut *c).await?.rows_affected();
    }
    ordering::release_heads(&mut *c, &keys).await?;
    Ok((sent, rows.last().map(|r| r.2.clone()), rows.len()))
}
