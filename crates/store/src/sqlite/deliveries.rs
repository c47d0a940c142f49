//! The delivery queue: claims, rescue, outcomes, resend. Every transition is one
//! conditional UPDATE naming the state it leaves (and, for a leased delivery, its
//! fencing token). The writer thread runs one closure at a time, so these
//! conditions never race here; they are written as on PostgreSQL all the same,
//! so the two backends keep one contract.

use hookd_core::text::storable_str;
use hookd_core::AttemptTrigger;
use rusqlite::{params, Connection, OptionalExtension};

use super::ordering::head_only;
use super::{messages, owners};
use crate::model::*;
use crate::Result;

/// Leases due scheduled deliveries to `lease.owner`, of endpoints whose queue
/// it owns or can take. Only the endpoints of the first `limit` due deliveries
/// are taken, so a node with little room does not take queues it cannot serve.
pub fn claim_due(c: &Connection, lease: &Lease, now: i64, limit: usize, skip: &[String]) -> Result<Vec<DeliveryJob>> {
    let skip = serde_json::to_string(skip).expect("ids serialise");
    let candidates: Vec<String> = {
        let mut stmt = c.prepare_cached(concat!(
            "SELECT DISTINCT endpoint_id FROM (SELECT d.endpoint_id FROM delivery d
               LEFT JOIN endpoint_owner o ON o.endpoint_id = d.endpoint_id
               WHERE d.state = 'scheduled' AND d.due_at <= ?1
                 AND (o.owner IS NULL OR o.owner = ?3 OR o.expires_at < ?1)
                 AND d.endpoint_id NOT IN (SELECT value FROM json_each(?4)) AND ",
            head_only!(),
            " ORDER BY d.due_at LIMIT ?2)"
        ))?;
        let rows = stmt.query_map(params![now, limit as i64, lease.owner, skip], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    let mut owned = Vec::with_capacity(candidates.len());
    for ep in candidates {
        if owners::take(c, &ep, lease, now)? {
            owned.push(ep);
        }
    }
    if owned.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = {
        // `state IN (…)` names the partial index of waiting rows, so SQLite
        // reads only those (not every delivery the endpoint ever had).
        let mut stmt = c.prepare_cached(concat!(
            "SELECT id FROM delivery d
             WHERE d.state IN ('scheduled', 'paused') AND d.state = 'scheduled' AND d.due_at <= ?1
               AND d.endpoint_id IN (SELECT value FROM json_each(?3)) AND ",
            head_only!(),
            " ORDER BY d.due_at LIMIT ?2"
        ))?;
        let owned = serde_json::to_string(&owned).expect("ids serialise");
        let rows = stmt.query_map(params![now, limit as i64, owned], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    let mut leased = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(token) = lease_one(c, id, "scheduled", lease, now)? {
            leased.push((id, token));
        }
    }
    messages::load_jobs(c, &leased)
}

/// `from` → leased to `lease.owner` under a new token; `None` when the delivery
/// is no longer in `from`.
pub fn lease_one(c: &Connection, id: i64, from: &str, lease: &Lease, now: i64) -> Result<Option<i64>> {
    Ok(c.prepare_cached(
        "UPDATE delivery SET state = 'leased', lease_owner = ?3, lease_expires_at = ?4, lease_token = lease_token + 1,
             updated_at = ?5
         WHERE id = ?1 AND state = ?2 RETURNING lease_token",
    )?
    .query_row(params![id, from, lease.owner, now + lease.duration_ms, now], |r| r.get(0))
    .optional()?)
}

/// Leased deliveries whose lease ran out become scheduled, due now.
pub fn rescue_expired(c: &Connection, now: i64, limit: usize) -> Result<u64> {
    let n = c
        .prepare_cached(
            "UPDATE delivery SET state = 'scheduled', due_at = ?1, lease_owner = NULL, lease_expires_at = NULL,
                 updated_at = ?1
             WHERE id IN (SELECT id FROM delivery WHERE state = 'leased' AND lease_expires_at < ?1
                          ORDER BY lease_expires_at LIMIT ?2)",
        )?
        .execute(params![now, limit as i64])?;
    Ok(n as u64)
}

/// Applies each outcome whose delivery is still leased under its token, and
/// stores its attempt. A delivery asked to be resent while leased is due again
/// now, as a manual attempt, whatever the outcome; a pause is kept only while
/// the endpoint is still disabled; a delivery given back unsent keeps whether
/// its next attempt is manual.
pub fn record_outcomes(c: &Connection, outcomes: &[Outcome], now: i64) -> Result<()> {
    let mut update = c.prepare_cached(
        "UPDATE delivery SET
             state = CASE WHEN resend_pending THEN 'scheduled'
                          WHEN ?3 = 'paused' AND NOT (SELECT disabled FROM endpoint WHERE id = delivery.endpoint_id)
                              THEN 'scheduled'
                          ELSE ?3 END,
             due_at = CASE WHEN resend_pending THEN ?6
                           WHEN ?3 = 'scheduled' THEN ?6 + ?5
                           WHEN ?3 = 'paused' AND NOT (SELECT disabled FROM endpoint WHERE id = delivery.endpoint_id)
                               THEN ?6
                           ELSE NULL END,
             attempts = ?4, resend_pending = 0,
             next_trigger = CASE WHEN resend_pending THEN 1 WHEN ?7 THEN 0 ELSE next_trigger END,
             lease_owner = NULL, lease_expires_at = NULL, updated_at = ?6
         WHERE id = ?1 AND state = 'leased' AND lease_token = ?2
         RETURNING endpoint_id, order_key",
    )?;
    // An attempt already stored is skipped: recording a batch again is harmless.
    let mut insert = c.prepare_cached(
        "INSERT INTO attempt (id, org_id, app_id, msg_id, endpoint_id, url, status, response_status_code, response,
             response_duration_ms, trigger_type, created_at, sent_headers, response_headers)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) ON CONFLICT (id) DO NOTHING",
    )?;
    let mut counted = Vec::new();
    for o in outcomes {
        let updated: Option<(String, Option<String>)> = update
            .query_row(
                params![
                    o.delivery_id,
                    o.lease_token,
                    o.next.state().as_str(),
                    o.attempts,
                    o.next.due_after_ms().unwrap_or(0),
                    now,
                    o.attempt.is_some()
                ],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        // Another node took the delivery over, or it was deleted meanwhile.
        let Some((endpoint_id, order_key)) = updated else { continue };
        // Done with an ordered endpoint's delivery: the next of its key goes.
        if let Some(key) = order_key {
            super::ordering::release_head(c, &endpoint_id, &key, now)?;
        }
        if let Some(a) = &o.attempt {
            let inserted = insert.execute(params![
                a.id,
                a.org_id,
                a.app_id,
                a.msg_id,
                a.endpoint_id,
                storable_str(&a.url),
                a.status as i64,
                a.response_status_code,
                storable_str(&a.response),
                a.response_duration_ms,
                a.trigger as i64,
                a.created_at,
                a.headers.as_ref().and_then(|h| h.sent.as_deref()).map(storable_str),
                a.headers.as_ref().and_then(|h| h.received.as_deref()).map(storable_str)
            ])?;
            // Counted once: an attempt already stored was counted with it.
            if inserted > 0 {
                counted.push(a);
            }
        }
    }
    for (key, rollup) in crate::stats::minute_rollups(counted) {
        super::stats::upsert(c, &key, &rollup)?;
    }
    Ok(())
}

/// See `Queue::resend`.
pub fn resend(
    c: &Connection,
    msg: &Message,
    ep: &Endpoint,
    lease: Option<&Lease>,
    now: i64,
) -> Result<Vec<DeliveryJob>> {
    let endpoint_id = ep.id.as_str();
    let lease = match lease {
        Some(l) if owners::take(c, endpoint_id, l, now)? => Some(l),
        _ => None,
    };
    let existing: Option<(i64, String, Option<String>)> = c
        .query_row(
            "SELECT id, state, order_key FROM delivery WHERE msg_id = ?1 AND endpoint_id = ?2",
            params![msg.id, endpoint_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    // An ordered endpoint's delivery goes when it is the first of its key;
    // the claim sees to that, so it is not leased here.
    let ordered = match &existing {
        Some((_, _, key)) => key.is_some(),
        None => ep.control.ordering.is_some(),
    };
    let (id, from) = match existing {
        None => {
            let key = crate::ordering::key_for(ep, msg);
            let parked = match &key {
                Some(k) => super::ordering::blocked(c, endpoint_id, k)?,
                None => false,
            };
            let placed = messages::Placement { order_key: key.as_deref(), parked };
            let id = messages::insert_delivery(c, msg, endpoint_id, "scheduled", placed, now)?;
            if parked {
                // Manual, and due when its turn comes.
                c.execute(
                    "UPDATE delivery SET next_trigger = ?2 WHERE id = ?1",
                    params![id, AttemptTrigger::Manual as i64],
                )?;
                return Ok(Vec::new());
            }
            (id, "scheduled".to_string())
        }
        Some((id, state, _)) if state == "leased" => {
            c.execute("UPDATE delivery SET resend_pending = 1 WHERE id = ?1 AND state = 'leased'", [id])?;
            return Ok(Vec::new());
        }
        Some((_, state, _)) if state == "paused" => return Ok(Vec::new()),
        Some((id, state, _)) => (id, state),
    };
    c.prepare_cached(
        "UPDATE delivery SET state = 'scheduled', due_at = ?3, next_trigger = ?4, updated_at = ?3
         WHERE id = ?1 AND state = ?2",
    )?
    .execute(params![id, from, now, AttemptTrigger::Manual as i64])?;
    match lease.filter(|_| !ordered) {
        Some(l) => match lease_one(c, id, "scheduled", l, now)? {
            Some(token) => messages::load_jobs(c, &[(id, token)]),
            None => Ok(Vec::new()),
        },
        None => Ok(Vec::new()),
    }
}

/// Disabling an endpoint pauses what waits for it; enabling makes that due now.
pub fn pause_endpoint(c: &Connection, endpoint_id: &str, now: i64) -> Result<u64> {
    let n = c
        .prepare_cached(
            "UPDATE delivery SET state = 'paused', due_at = NULL, updated_at = ?2
             WHERE endpoint_id = ?1 AND state IN ('scheduled', 'paused') AND state = 'scheduled'
               AND (order_key IS NULL OR due_at IS NOT NULL)",
        )?
        .execute(params![endpoint_id, now])?;
    Ok(n as u64)
}

/// (Parked deliveries of an ordered endpoint stay parked through both; what
/// was paused of it waits parked again, and the first of each key is due.)
pub fn resume_endpoint(c: &Connection, endpoint_id: &str, now: i64) -> Result<u64> {
    let n = c
        .prepare_cached(
            "UPDATE delivery SET state = 'scheduled', due_at = CASE WHEN order_key IS NULL THEN ?2 END, updated_at = ?2
             WHERE endpoint_id = ?1 AND state IN ('scheduled', 'paused') AND state = 'paused'",
        )?
        .execute(params![endpoint_id, now])?;
    super::ordering::release_heads_of_endpoint(c, endpoint_id, now)?;
    Ok(n as u64)
}

/// See `Queue::oldest_due`.
pub fn oldest_due(c: &Connection) -> Result<Option<i64>> {
    Ok(c.query_row("SELECT MIN(due_at) FROM delivery WHERE state = 'scheduled'", [], |r| r.get(0))?)
}

pub fn pending_count(c: &Connection) -> Result<u64> {
    // Two counts, each over its partial index.
    let n: i64 = c.query_row(
        "SELECT (SELECT COUNT(*) FROM delivery WHERE state = 'scheduled')
              + (SELECT COUNT(*) FROM delivery WHERE state = 'leased')",
        [],
        |r| r.get(0),
    )?;
    Ok(n as u64)
}
