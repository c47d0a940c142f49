//! Ordered endpoints on SQLite (see `crate::ordering`). One writer runs every
//! write, so "is an earlier delivery still waiting" and the insert that
//! follows cannot race.

use rusqlite::{params, Connection};

use crate::Result;

/// The claim's condition on a delivery `d`: unordered, or none before it of
/// its key is still waiting and none of its key is in flight. (Two probes,
/// each a short seek on its own partial index, however many wait parked.)
macro_rules! head_only {
    () => {
        "(d.order_key IS NULL OR (NOT EXISTS (SELECT 1 FROM delivery p
             WHERE p.endpoint_id = d.endpoint_id AND p.order_key = d.order_key
               AND p.state IN ('scheduled', 'leased', 'paused') AND p.id < d.id)
           AND NOT EXISTS (SELECT 1 FROM delivery p
             WHERE p.endpoint_id = d.endpoint_id AND p.order_key = d.order_key
               AND p.state = 'leased' AND p.id > d.id)))"
    };
}
pub(crate) use head_only;

/// Whether a new delivery to (endpoint, key) must wait behind another.
pub fn blocked(c: &Connection, endpoint_id: &str, key: &str) -> Result<bool> {
    Ok(c.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM delivery WHERE endpoint_id = ?1 AND order_key = ?2
                 AND state IN ('scheduled', 'leased', 'paused'))",
    )?
    .query_row(params![endpoint_id, key], |r| r.get(0))?)
}

/// Makes the first waiting delivery of (endpoint, key) due now when it is
/// parked; returns whether one was.
pub fn release_head(c: &Connection, endpoint_id: &str, key: &str, now: i64) -> Result<bool> {
    let n = c
        .prepare_cached(
            "UPDATE delivery SET due_at = ?3, updated_at = ?3
             WHERE id = (SELECT id FROM delivery WHERE endpoint_id = ?1 AND order_key = ?2
                             AND state IN ('scheduled', 'leased', 'paused') ORDER BY id LIMIT 1)
               AND state = 'scheduled' AND due_at IS NULL",
        )?
        .execute(params![endpoint_id, key, now])?;
    Ok(n > 0)
}

/// [`release_head`] for every key the message's deliveries are in (after they
/// were canceled).
pub fn release_heads_of_msg(c: &Connection, msg_id: &str, now: i64) -> Result<()> {
    let keys: Vec<(String, String)> = {
        let mut stmt = c.prepare_cached(
            "SELECT endpoint_id, order_key FROM delivery WHERE msg_id = ?1 AND order_key IS NOT NULL",
        )?;
        let rows = stmt.query_map([msg_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (ep, key) in keys {
        release_head(c, &ep, &key, now)?;
    }
    Ok(())
}

/// [`release_head`] for every key with deliveries waiting for the endpoint.
pub fn release_heads_of_endpoint(c: &Connection, endpoint_id: &str, now: i64) -> Result<()> {
    let keys: Vec<String> = {
        let mut stmt = c.prepare_cached(
            "SELECT DISTINCT order_key FROM delivery
             WHERE endpoint_id = ?1 AND order_key IS NOT NULL AND state IN ('scheduled', 'leased', 'paused')",
        )?;
        let rows = stmt.query_map([endpoint_id], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for key in keys {
        release_head(c, endpoint_id, &key, now)?;
    }
    Ok(())
}

/// Frees the parked first delivery of every key that has one (the one before
/// it was deleted); returns how many. One pass over the keys (the ordering
/// index), one seek per key, however many wait parked.
pub fn release_stuck(c: &Connection, now: i64) -> Result<u64> {
    let keys: Vec<(String, String)> = {
        let mut stmt = c.prepare_cached(
            "SELECT DISTINCT endpoint_id, order_key FROM delivery
             WHERE order_key IS NOT NULL AND state IN ('scheduled', 'leased', 'paused')",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut freed = 0;
    for (ep, key) in keys {
        freed += u64::from(release_head(c, &ep, &key, now)?);
    }
    Ok(freed)
}

/// The endpoint's ordering key changed (or ordering ended): what waits for it
/// is no longer held in order, and parked deliveries are due now. One in
/// flight keeps its key until it is done (a new delivery of the same key
/// waits behind it).
pub fn unorder_endpoint(c: &Connection, endpoint_id: &str, now: i64) -> Result<()> {
    c.prepare_cached(
        "UPDATE delivery SET order_key = NULL,
             due_at = CASE WHEN state = 'scheduled' AND due_at IS NULL THEN ?2 ELSE due_at END
         WHERE endpoint_id = ?1 AND order_key IS NOT NULL AND state IN ('scheduled', 'paused')",
    )?
    .execute(params![endpoint_id, now])?;
    Ok(())
}
