//! Background tasks: stored, leased, and advanced one batch per write.

use hookd_core::id::{id_floor_at, IdPrefix};
use hookd_core::AttemptTrigger;
use rusqlite::{params, Connection, OptionalExtension};

use super::rows::{self, MESSAGE_COLUMNS, MESSAGE_COLUMNS_NO_PAYLOAD, TASK_COLUMNS};
use super::{endpoints, messages, tokens};
use crate::model::*;
use crate::recipients::Recipients;
use crate::task::*;
use crate::{Result, StoreError};

pub fn insert(c: &Connection, t: &BackgroundTask, idem: Option<&IdempotencyRecord>) -> Result<()> {
    tokens::maybe_idempotency(c, idem)?;
    c.prepare_cached(
        "INSERT INTO background_task (id, org_id, app_id, endpoint_id, kind, status, since, until, cursor,
             messages_sent, error, created_at, updated_at, params, result)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
        t.id,
        t.org_id,
        t.app_id,
        t.endpoint_id,
        t.kind.as_str(),
        t.status.as_str(),
        t.since,
        t.until,
        t.cursor,
        t.messages_sent as i64,
        t.error,
        t.created_at,
        t.updated_at,
        rows::json_opt(&t.filter),
        t.result
    ])?;
    Ok(())
}

pub fn get(c: &Connection, org_id: &str, id: &str) -> Result<BackgroundTask> {
    Ok(c.prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM background_task WHERE org_id = ?1 AND id = ?2"))?
        .query_row(params![org_id, id], rows::task)?)
}

pub fn list(c: &Connection, org_id: &str, f: &TaskFilter, page: &Page) -> Result<Vec<BackgroundTask>> {
    let mut sql = format!("SELECT {TASK_COLUMNS} FROM background_task WHERE org_id = ?");
    let mut params: Vec<rusqlite::types::Value> = vec![org_id.to_string().into()];
    if let Some(app) = &f.app_id {
        sql.push_str(" AND app_id = ?");
        params.push(app.clone().into());
    }
    if let Some(s) = f.status {
        sql.push_str(" AND status = ?");
        params.push(s.as_str().to_string().into());
    }
    if let Some(k) = f.kind {
        sql.push_str(" AND kind = ?");
        params.push(k.as_str().to_string().into());
    }
    sql.push_str(&rows::page_clause(page, "id", &mut params));
    rows::collect(&mut c.prepare(&sql)?, params, rows::task)
}

/// Leases the oldest running task that nobody holds.
pub fn claim(c: &Connection, lease: &Lease, now: i64) -> Result<Option<TaskLease>> {
    let id: Option<String> = c
        .prepare_cached(
            "SELECT id FROM background_task
             WHERE status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < ?1) ORDER BY id LIMIT 1",
        )?
        .query_row([now], |r| r.get(0))
        .optional()?;
    let Some(id) = id else { return Ok(None) };
    let token: i64 = c
        .prepare_cached(
            "UPDATE background_task SET lease_owner = ?2, lease_expires_at = ?3, lease_token = lease_token + 1
             WHERE id = ?1 AND status = 'running' RETURNING lease_token",
        )?
        .query_row(params![id, lease.owner, now + lease.duration_ms], |r| r.get(0))?;
    let task = c
        .prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM background_task WHERE id = ?1"))?
        .query_row([&id], rows::task)?;
    Ok(Some(TaskLease { task, token }))
}

/// The task as stored, if `lease` still holds it.
fn held(c: &Connection, lease: &TaskLease) -> Result<BackgroundTask> {
    Ok(c.prepare_cached(&format!(
        "SELECT {TASK_COLUMNS} FROM background_task WHERE id = ?1 AND status = 'running' AND lease_token = ?2"
    ))?
    .query_row(params![lease.task.id, lease.token], rows::task)?)
}

pub fn step(c: &Connection, lease: &TaskLease, lease_ms: i64, batch: usize, now: i64) -> Result<TaskStep> {
    let task = held(c, lease)?;
    let ep = match endpoints::get(c, &task.org_id, &task.app_id, &task.endpoint_id) {
        Ok(ep) => ep,
        Err(StoreError::NotFound) => {
            finish(c, &task, "failed", Some("the endpoint was deleted"), now)?;
            return Ok(TaskStep { sent: 0, done: true });
        }
        Err(e) => return Err(e),
    };
    let (sent, cursor, seen) = match task.kind {
        TaskKind::EndpointRecover => recover_batch(c, &task, &ep, batch, now)?,
        TaskKind::EndpointReplay => replay_batch(c, &task, &ep, batch, now)?,
        TaskKind::EndpointBulkReplay => bulk_replay_batch(c, &task, &ep, batch, now)?,
        // Made finished: there is nothing to run.
        TaskKind::SdkGenerate => (0, None, 0),
    };
    // Ordered deliveries made waiting again wait parked: only the first of
    // each key is due.
    if sent > 0 && ep.control.ordering.is_some() {
        super::ordering::release_heads_of_endpoint(c, &ep.id, now)?;
    }
    c.prepare_cached(
        "UPDATE background_task SET cursor = COALESCE(?2, cursor), messages_sent = messages_sent + ?3,
             lease_expires_at = ?4, updated_at = ?5
         WHERE id = ?1",
    )?
    .execute(params![task.id, cursor, sent as i64, now + lease_ms, now])?;
    let done = seen < batch;
    if done {
        finish(c, &task, "finished", None, now)?;
    }
    Ok(TaskStep { sent, done })
}

fn finish(c: &Connection, task: &BackgroundTask, status: &str, error: Option<&str>, now: i64) -> Result<()> {
    c.prepare_cached(
        "UPDATE background_task SET status = ?2, error = ?3, lease_owner = NULL, lease_expires_at = NULL,
             updated_at = ?4
         WHERE id = ?1 AND status = 'running'",
    )?
    .execute(params![task.id, status, error, now])?;
    Ok(())
}

pub fn fail(c: &Connection, lease: &TaskLease, error: &str, now: i64) -> Result<()> {
    let task = held(c, lease)?;
    finish(c, &task, "failed", Some(error), now)
}

/// One batch of failed attempts to the endpoint in the range, after the
/// cursor: each attempted message's delivery that has not succeeded since is
/// due now (a failed one, or one waiting for its next retry), as a manual
/// attempt (while the endpoint is disabled, the node that claims it pauses it).
/// Returns (made due,
/// new cursor, attempts seen).
fn recover_batch(
    c: &Connection,
    task: &BackgroundTask,
    ep: &Endpoint,
    batch: usize,
    now: i64,
) -> Result<(u64, Option<String>, usize)> {
    // Attempt ids sort by time, so the range is a range of ids on the endpoint's index.
    let floor = id_floor_at(IdPrefix::Attempt, task.since.max(0) as u64);
    let after = task.cursor.clone().unwrap_or_else(|| floor.clone());
    let ceiling = id_floor_at(IdPrefix::Attempt, task.until.max(0) as u64);
    let rows: Vec<(String, String)> = {
        let mut stmt = c.prepare_cached(
            "SELECT id, msg_id FROM attempt
             WHERE endpoint_id = ?1 AND id >= ?2 AND id > ?3 AND id < ?4 AND status = 2
             ORDER BY id LIMIT ?5",
        )?;
        let rows =
            stmt.query_map(params![ep.id, floor, after, ceiling, batch as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut update = c.prepare_cached(
        "UPDATE delivery SET state = 'scheduled', due_at = CASE WHEN order_key IS NULL THEN ?3 END, next_trigger = ?4,
             updated_at = ?3
         WHERE msg_id = ?1 AND endpoint_id = ?2
           AND (state = 'failed' OR (state = 'scheduled' AND due_at > ?3))",
    )?;
    let mut sent = 0;
    for (_, msg_id) in &rows {
        sent += update.execute(params![msg_id, ep.id, now, AttemptTrigger::Manual as i64])? as u64;
    }
    Ok((sent, rows.last().map(|(id, _)| id.clone()), rows.len()))
}

/// One batch of the application's messages in the range, after the cursor:
/// those the endpoint accepts and never got get a delivery, due now (while the
/// endpoint is disabled, the node that claims it pauses it). Returns (created, new cursor, messages seen).
fn replay_batch(
    c: &Connection,
    task: &BackgroundTask,
    ep: &Endpoint,
    batch: usize,
    now: i64,
) -> Result<(u64, Option<String>, usize)> {
    let floor = id_floor_at(IdPrefix::Message, task.since.max(0) as u64);
    let after = task.cursor.clone().unwrap_or_else(|| floor.clone());
    // A filter may read the payload.
    let columns = if ep.control.filter.is_some() { MESSAGE_COLUMNS } else { MESSAGE_COLUMNS_NO_PAYLOAD };
    let candidates: Vec<Message> = {
        let mut stmt = c.prepare_cached(&format!(
            "SELECT {columns} FROM message m
             WHERE m.app_id = ?1 AND m.id >= ?2 AND m.id > ?3 AND m.created_at >= ?4 AND m.created_at < ?5
             ORDER BY m.id LIMIT ?6"
        ))?;
        let rows =
            stmt.query_map(params![ep.app_id, floor, after, task.since, task.until, batch as i64], rows::message)?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut exists = c.prepare_cached("SELECT 1 FROM delivery WHERE msg_id = ?1 AND endpoint_id = ?2")?;

    let mut sent = 0;
    for m in candidates.iter().filter(|m| Recipients::new(m).matches(ep)) {
        if exists.query_row(params![m.id, ep.id], |_| Ok(())).optional()?.is_none() {
            // An ordered endpoint's key may need the payload (read without it above).
            let key = match &ep.control.ordering {
                Some(o) if o.key.as_deref().is_some_and(|k| k.starts_with('/')) => {
                    crate::ordering::key_for(ep, &messages::get(c, &m.org_id, &m.app_id, &m.id)?)
                }
                Some(_) => crate::ordering::key_for(ep, m),
                None => None,
            };
            let parked = match &key {
                Some(k) => super::ordering::blocked(c, &ep.id, k)?,
                None => false,
            };
            let placed = messages::Placement { order_key: key.as_deref(), parked };
            messages::insert_delivery(c, m, &ep.id, "scheduled", placed, now)?;
            sent += 1;
        }
    }
    Ok((sent, candidates.last().map(|m| m.id.clone()), candidates.len()))
}

/// One batch of the endpoint's deliveries of messages in the range, after the
/// cursor (message ids sort by time, so the range is a range of the endpoint's
/// `(endpoint_id, msg_id)` index): those matching the task's filter are due now
/// as manual attempts; one in flight is due again once its outcome is in; a
/// paused one waits for its endpoint; one whose payload is gone is skipped.
/// Returns (made due, new cursor, deliveries seen).
fn bulk_replay_batch(
    c: &Connection,
    task: &BackgroundTask,
    ep: &Endpoint,
    batch: usize,
    now: i64,
) -> Result<(u64, Option<String>, usize)> {
    let filter = task.filter.clone().unwrap_or_default();
    let floor = id_floor_at(IdPrefix::Message, task.since.max(0) as u64);
    let after = task.cursor.clone().unwrap_or_else(|| floor.clone());
    let ceiling = id_floor_at(IdPrefix::Message, task.until.max(0) as u64);
    let status = filter.status_sql();
    let rows: Vec<ReplayCandidate> = {
        let mut stmt = c.prepare_cached(&format!(
            "SELECT d.id, d.state, d.msg_id, m.event_type, m.channels, m.tags, m.payload IS NULL,
                    (SELECT a.response_status_code FROM attempt a
                     WHERE a.msg_id = d.msg_id AND a.endpoint_id = d.endpoint_id ORDER BY a.id DESC LIMIT 1),
                    (d.state = 'scheduled' AND d.attempts = 0)
             FROM delivery d JOIN message m ON m.id = d.msg_id
             WHERE d.endpoint_id = ?1 AND d.msg_id >= ?2 AND d.msg_id > ?3 AND d.msg_id < ?4{status}
             ORDER BY d.msg_id LIMIT ?5"
        ))?;
        let rows = stmt.query_map(params![ep.id, floor, after, ceiling, batch as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut sent = 0;
    for (id, state, ..) in rows.iter().filter(|c| filter.picks(c)) {
        sent += match state.as_str() {
            "paused" => 0,
            "leased" => c.execute("UPDATE delivery SET resend_pending = 1 WHERE id = ?1 AND state = 'leased'", [id])?,
            _ => c
                .prepare_cached(
                    "UPDATE delivery SET state = 'scheduled', due_at = CASE WHEN order_key IS NULL THEN ?3 END,
                         next_trigger = ?4, updated_at = ?3
                     WHERE id = ?1 AND state = ?2",
                )?
                .execute(params![id, state, now, AttemptTrigger::Manual as i64])?,
        } as u64;
    }
    Ok((sent, rows.last().map(|r| r.2.clone()), rows.len()))
}
