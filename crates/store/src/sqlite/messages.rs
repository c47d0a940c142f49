//! Messages and their fan-out into deliveries.

use std::collections::HashMap;
use std::sync::Arc;

use hookd_core::AttemptTrigger;
use rusqlite::{params, Connection, OptionalExtension};

use super::rows::{self, MESSAGE_COLUMNS, MESSAGE_COLUMNS_NO_PAYLOAD};
use super::{endpoints, owners, tokens};
use crate::model::*;
use crate::{Result, StoreError};

/// Inserts the message and one delivery per endpoint that accepts it; returns
/// the deliveries ready to send.
pub fn create(
    c: &Connection,
    msg: &Message,
    only_endpoint: Option<&str>,
    lease: Option<&Lease>,
    idem: Option<&IdempotencyRecord>,
) -> Result<(Vec<DeliveryJob>, usize)> {
    tokens::maybe_idempotency(c, idem)?;
    c.prepare_cached(
        "INSERT INTO message (org_id, app_id, id, event_id, event_type, channels, tags, payload, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
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
        msg.created_at
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
    let endpoints = endpoints::all_of_app(c, &msg.org_id, &msg.app_id)?;
    let mut jobs = Vec::new();
    let mut unleased = 0;
    for ep in endpoints {
        let wanted = match only_endpoint {
            Some(only) => ep.id == only,
            None => ep.accepts(&msg.event_type, msg.channels.as_deref()),
        };
        if !wanted {
            continue;
        }
        // Lease only what goes to endpoints this node owns; the rest is the owner's.
        let lease = match lease {
            Some(l) if owners::take(c, &ep.id, l, msg.created_at)? => Some(l),
            _ => None,
        };
        let delivery_id = insert_delivery(c, msg, &ep.id, lease, msg.created_at)?;
        if lease.is_none() {
            unleased += 1;
            continue;
        }
        jobs.push(DeliveryJob {
            delivery_id,
            org_id: msg.org_id.clone(),
            app_id: msg.app_id.clone(),
            msg_id: msg.id.clone(),
            event_type: msg.event_type.clone(),
            msg_created_at: msg.created_at,
            payload: msg.payload.clone(),
            endpoint: Arc::new(ep),
            attempts: 0,
            trigger: AttemptTrigger::Scheduled,
        });
    }
    Ok((jobs, unleased))
}

pub fn insert_delivery(
    c: &Connection,
    msg: &Message,
    endpoint_id: &str,
    lease: Option<&Lease>,
    now: i64,
) -> Result<i64> {
    c.prepare_cached(
        "INSERT INTO delivery (org_id, app_id, msg_id, endpoint_id, status, attempts, next_attempt_at,
         lease_owner, lease_expires_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 1, 0, ?5, ?6, ?7, ?5, ?5)",
    )?
    .execute(params![
        msg.org_id,
        msg.app_id,
        msg.id,
        endpoint_id,
        now,
        lease.map(|l| &l.owner),
        lease.map(|l| l.until)
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

pub fn expunge_content(c: &Connection, org_id: &str, app_id: &str, msg_id: &str) -> Result<()> {
    let n = c.execute(
        "UPDATE message SET payload = NULL WHERE org_id = ?1 AND app_id = ?2 AND id = ?3",
        params![org_id, app_id, msg_id],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Messages of the app in [since, until) that match the endpoint and have no
/// delivery to it: create those deliveries, due now.
pub fn replay_missing(c: &Connection, ep: &Endpoint, since: i64, until: i64, now: i64) -> Result<u64> {
    let candidates: Vec<Message> = {
        let mut stmt = c.prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS_NO_PAYLOAD} FROM message m
             WHERE m.org_id = ?1 AND m.app_id = ?2 AND m.created_at >= ?3 AND m.created_at < ?4
               AND NOT EXISTS (SELECT 1 FROM delivery d WHERE d.msg_id = m.id AND d.endpoint_id = ?5)
             ORDER BY m.id"
        ))?;
        let rows = stmt.query_map(params![ep.org_id, ep.app_id, since, until, ep.id], rows::message)?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    let mut n = 0;
    for m in candidates.iter().filter(|m| ep.accepts(&m.event_type, m.channels.as_deref())) {
        insert_delivery(c, m, &ep.id, None, now)?;
        n += 1;
    }
    Ok(n)
}

/// Loads what is needed to send deliveries, by id; endpoints shared per batch.
pub fn load_jobs(c: &Connection, delivery_ids: &[i64], trigger: AttemptTrigger) -> Result<Vec<DeliveryJob>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT d.id, d.attempts, {MESSAGE_COLUMNS}, {} FROM delivery d
         JOIN message m ON m.id = d.msg_id JOIN endpoint e ON e.id = d.endpoint_id WHERE d.id = ?1",
        rows::ENDPOINT_COLUMNS
    ))?;
    let mut endpoints: HashMap<String, Arc<Endpoint>> = HashMap::new();
    // One payload in memory per message, however many of its deliveries are loaded.
    let mut payloads: HashMap<String, Arc<[u8]>> = HashMap::new();
    let mut jobs = Vec::with_capacity(delivery_ids.len());
    for id in delivery_ids {
        let row = stmt
            .query_row([id], |r| {
                let msg = rows::message_at(r, 2)?;
                let ep_id: String = r.get(2 + rows::MESSAGE_COLUMN_COUNT + 2)?;
                let ep = match endpoints.get(&ep_id) {
                    Some(ep) => ep.clone(),
                    None => Arc::new(rows::endpoint_at(r, 2 + rows::MESSAGE_COLUMN_COUNT)?),
                };
                Ok((r.get::<_, i64>(0)?, r.get::<_, u32>(1)?, msg, ep))
            })
            .optional()?;
        let Some((delivery_id, attempts, msg, ep)) = row else {
            continue;
        };
        endpoints.insert(ep.id.clone(), ep.clone());
        let payload = msg.payload.map(|p| payloads.entry(msg.id.clone()).or_insert(p).clone());
        jobs.push(DeliveryJob {
            delivery_id,
            org_id: msg.org_id,
            app_id: msg.app_id,
            msg_id: msg.id,
            event_type: msg.event_type,
            msg_created_at: msg.created_at,
            payload,
            endpoint: ep,
            attempts,
            trigger,
        });
    }
    Ok(jobs)
}
