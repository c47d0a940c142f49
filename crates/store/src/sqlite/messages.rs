//! Messages and their fan-out into deliveries.

use std::collections::HashMap;
use std::sync::Arc;

use hookd_core::AttemptTrigger;
use rusqlite::{params, Connection, OptionalExtension};

use super::fanout::FanOutCache;
use super::rows::{self, MESSAGE_COLUMNS, MESSAGE_COLUMNS_NO_PAYLOAD};
use super::{owners, tokens};
use crate::model::*;
use crate::recipients::Recipients;
use crate::{Result, StoreError};

/// Inserts the message and one delivery per endpoint that accepts it; returns
/// the deliveries ready to send.
pub fn create(
    c: &Connection,
    fanout: &FanOutCache,
    msg: &Message,
    only_endpoint: Option<&str>,
    lease: Option<&Lease>,
    idem: Option<&IdempotencyRecord>,
    now: i64,
) -> Result<(Vec<DeliveryJob>, usize)> {
    tokens::maybe_idempotency(c, idem)?;
    c.prepare_cached(
        "INSERT INTO message (org_id, app_id, id, event_id, event_type, channels, tags, payload, created_at, expires_at,
             deliver_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        msg.org_id,
        msg.app_id,
        msg.id,
        msg.event_id,
        msg.event_type,
        rows::json_opt(&msg.channels),
        rows::json_opt(&msg.tags),
        msg.payload.as_deref(),
        msg.created_at,
        msg.expires_at,
        msg.deliver_at
    ])
    .map_err(|e| match rows::unique_violation(e, "a message with this eventId") {
        StoreError::Conflict { what, .. } => {
            let existing_id = msg.event_id.as_deref().and_then(|eid| {
                c.query_row(
                    "SELECT id FROM message WHERE app_id = ?1 AND event_id = ?2",
                    params![msg.app_id, eid],
                    |r| r.get(0),
                )
                .ok()
            });
            StoreError::Conflict { what, existing_id }
        }
        other => other,
    })?;
    let endpoints = fanout.endpoints(c, &msg.org_id, &msg.app_id)?;
    let mut jobs = Vec::new();
    let mut unleased = 0;
    let recipients = Recipients::new(msg);
    for ep in endpoints.iter() {
        let wanted = match only_endpoint {
            Some(only) => ep.id == only,
            None => recipients.wants(ep),
        };
        if !wanted {
            continue;
        }
        // To an ordered endpoint, behind a delivery of the same key still
        // waiting: parked until that one is done.
        let order_key = crate::ordering::key_for(ep, msg);
        let parked = match &order_key {
            Some(key) => super::ordering::blocked(c, &ep.id, key)?,
            None => false,
        };
        let placed = Placement { order_key: order_key.as_deref(), parked };
        // Only a test send reaches a disabled endpoint. It is scheduled, not
        // leased: the node that claims it pauses it (only an outcome decides a
        // pause, against the endpoint as it is then), and an enable sends it.
        if ep.disabled || parked {
            insert_delivery(c, msg, &ep.id, "scheduled", placed, now)?;
            unleased += 1;
            continue;
        }
        // Lease only what goes to endpoints this node owns; the rest is the owner's.
        let lease = match lease {
            Some(l) if owners::owns(c, &ep.id, l, now)? => Some(l),
            _ => None,
        };
        let Some(lease) = lease else {
            insert_delivery(c, msg, &ep.id, "scheduled", placed, now)?;
            unleased += 1;
            continue;
        };
        let delivery_id = insert_leased(c, msg, &ep.id, lease, order_key.as_deref(), now)?;
        jobs.push(DeliveryJob {
            delivery_id,
            lease_token: 1,
            org_id: msg.org_id.clone(),
            app_id: msg.app_id.clone(),
            msg_id: msg.id.clone(),
            event_type: msg.event_type.clone(),
            msg_created_at: msg.created_at,
            payload: msg.payload.clone(),
            endpoint: ep.clone(),
            attempts: 0,
            trigger: AttemptTrigger::Scheduled,
        });
    }
    Ok((jobs, unleased))
}

/// Where a new delivery goes in its endpoint's order: its ordering key (an
/// ordered endpoint's), and whether it waits parked behind another.
#[derive(Debug, Clone, Copy, Default)]
pub struct Placement<'a> {
    pub order_key: Option<&'a str>,
    pub parked: bool,
}

/// A new delivery of `msg` to the endpoint in `state` (scheduled: due now, or
/// at the message's `deliver_at`; parked: not due until released).
pub fn insert_delivery(
    c: &Connection,
    msg: &Message,
    endpoint_id: &str,
    state: &str,
    placed: Placement,
    now: i64,
) -> Result<i64> {
    c.prepare_cached(
        "INSERT INTO delivery (org_id, app_id, msg_id, endpoint_id, state, attempts, due_at, created_at, updated_at,
             order_key)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, CASE WHEN ?5 = 'scheduled' AND NOT ?9 THEN COALESCE(?7, ?6) END, ?6, ?6, ?8)",
    )?
    .execute(params![
        msg.org_id,
        msg.app_id,
        msg.id,
        endpoint_id,
        state,
        now,
        msg.deliver_at,
        placed.order_key,
        placed.parked
    ])?;
    Ok(c.last_insert_rowid())
}

/// A new delivery of `msg` leased to `lease.owner` under token 1.
fn insert_leased(
    c: &Connection,
    msg: &Message,
    endpoint_id: &str,
    lease: &Lease,
    order_key: Option<&str>,
    now: i64,
) -> Result<i64> {
    c.prepare_cached(
        "INSERT INTO delivery (org_id, app_id, msg_id, endpoint_id, state, attempts, lease_owner, lease_expires_at,
             lease_token, created_at, updated_at, order_key)
         VALUES (?1, ?2, ?3, ?4, 'leased', 0, ?5, ?6, 1, ?7, ?7, ?8)",
    )?
    .execute(params![
        msg.org_id,
        msg.app_id,
        msg.id,
        endpoint_id,
        lease.owner,
        now + lease.duration_ms,
        now,
        order_key
    ])?;
    Ok(c.last_insert_rowid())
}

pub fn list(c: &Connection, org_id: &str, app_id: &str, f: &MessageFilter, page: &Page) -> Result<Vec<Message>> {
    let cols = if f.with_content { MESSAGE_COLUMNS } else { MESSAGE_COLUMNS_NO_PAYLOAD };
    let mut sql = format!("SELECT {cols} FROM message m WHERE m.org_id = ? AND m.app_id = ?");
    let mut params: Vec<rusqlite::types::Value> = vec![org_id.to_string().into(), app_id.to_string().into()];
    filter_conditions(f, &mut sql, &mut params);
    sql.push_str(&rows::page_clause(page, "m.id", &mut params));
    rows::collect(&mut c.prepare(&sql)?, params, rows::message)
}

/// Appends the filter's conditions on the message aliased `m`.
pub fn filter_conditions(f: &MessageFilter, sql: &mut String, params: &mut Vec<rusqlite::types::Value>) {
    if !f.event_types.is_empty() {
        sql.push_str(&format!(" AND m.event_type IN ({})", vec!["?"; f.event_types.len()].join(",")));
        params.extend(f.event_types.iter().map(|t| t.clone().into()));
    }
    if let Some(ch) = &f.channel {
        sql.push_str(" AND EXISTS (SELECT 1 FROM json_each(m.channels) WHERE value = ?)");
        params.push(ch.clone().into());
    }
    if let Some(tag) = &f.tag {
        sql.push_str(" AND EXISTS (SELECT 1 FROM json_each(m.tags) WHERE value = ?)");
        params.push(tag.clone().into());
    }
    if let Some(before) = f.before {
        sql.push_str(" AND m.created_at < ?");
        params.push(before.into());
    }
    if let Some(after) = f.after {
        sql.push_str(" AND m.created_at > ?");
        params.push(after.into());
    }
}

pub fn get(c: &Connection, org_id: &str, app_id: &str, id_or_event_id: &str) -> Result<Message> {
    Ok(c.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM message m WHERE m.org_id = ?1 AND m.app_id = ?2 AND (m.id = ?3 OR m.event_id = ?3)
         ORDER BY m.id = ?3 DESC LIMIT 1"
    ))?
    .query_row(params![org_id, app_id, id_or_event_id], rows::message)?)
}

/// Removes the payload; deliveries that wait for it are canceled (a leased one
/// is canceled when its node next claims it and finds no payload).
pub fn expunge_content(c: &Connection, org_id: &str, app_id: &str, msg_id: &str, now: i64) -> Result<()> {
    let n = c.execute(
        "UPDATE message SET payload = NULL WHERE org_id = ?1 AND app_id = ?2 AND id = ?3",
        params![org_id, app_id, msg_id],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    c.execute(
        "UPDATE delivery SET state = 'canceled', due_at = NULL, updated_at = ?2
         WHERE msg_id = ?1 AND state IN ('scheduled', 'paused')",
        params![msg_id, now],
    )?;
    super::ordering::release_heads_of_msg(c, msg_id, now)
}

/// Cancels the message's deliveries that wait (scheduled, paused); returns how
/// many. One in flight finishes its attempt.
pub fn cancel(c: &Connection, org_id: &str, app_id: &str, msg_id: &str, now: i64) -> Result<u64> {
    get(c, org_id, app_id, msg_id)?;
    let n = c.execute(
        "UPDATE delivery SET state = 'canceled', due_at = NULL, updated_at = ?2
         WHERE msg_id = ?1 AND state IN ('scheduled', 'paused')",
        params![msg_id, now],
    )?;
    super::ordering::release_heads_of_msg(c, msg_id, now)?;
    Ok(n as u64)
}

/// Loads what is needed to send deliveries leased under the given tokens, by
/// id; endpoints and payloads shared per batch.
pub fn load_jobs(c: &Connection, leased: &[(i64, i64)]) -> Result<Vec<DeliveryJob>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT d.id, d.attempts, d.next_trigger, {MESSAGE_COLUMNS}, {} FROM delivery d
         JOIN message m ON m.id = d.msg_id JOIN endpoint e ON e.id = d.endpoint_id WHERE d.id = ?1",
        rows::ENDPOINT_COLUMNS
    ))?;
    const MSG_AT: usize = 3;
    let mut endpoints: HashMap<String, Arc<Endpoint>> = HashMap::new();
    // One payload in memory per message, however many of its deliveries are loaded.
    let mut payloads: HashMap<String, Arc<[u8]>> = HashMap::new();
    let mut jobs = Vec::with_capacity(leased.len());
    for &(id, lease_token) in leased {
        let row = stmt
            .query_row([id], |r| {
                let msg = rows::message_at(r, MSG_AT)?;
                let ep_id: String = r.get(MSG_AT + rows::MESSAGE_COLUMN_COUNT + 2)?;
                let ep = match endpoints.get(&ep_id) {
                    Some(ep) => ep.clone(),
                    None => Arc::new(rows::endpoint_at(r, MSG_AT + rows::MESSAGE_COLUMN_COUNT)?),
                };
                Ok((r.get::<_, u32>(1)?, r.get::<_, i64>(2)?, msg, ep))
            })
            .optional()?;
        let Some((attempts, trigger, msg, ep)) = row else {
            continue;
        };
        endpoints.insert(ep.id.clone(), ep.clone());
        let payload = msg.payload.map(|p| payloads.entry(msg.id.clone()).or_insert(p).clone());
        jobs.push(DeliveryJob {
            delivery_id: id,
            lease_token,
            org_id: msg.org_id,
            app_id: msg.app_id,
            msg_id: msg.id,
            event_type: msg.event_type,
            msg_created_at: msg.created_at,
            payload,
            endpoint: ep,
            attempts,
            trigger: AttemptTrigger::from_i64(trigger).unwrap_or(AttemptTrigger::Scheduled),
        });
    }
    Ok(jobs)
}
