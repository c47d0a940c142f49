//! Ownership of endpoint queues: one node at a time sends to an endpoint, so its
//! concurrency cap (and later throttle, breaker, ordering) holds across nodes.

use rusqlite::{params, Connection, OptionalExtension};

use crate::model::Lease;
use crate::ownership::{standing, Holder, Standing};
use crate::Result;

/// Takes the endpoint's queue for `lease.owner` when it is free, expired or
/// already its own (renewing it); false when another node holds it.
pub fn take(c: &Connection, endpoint_id: &str, lease: &Lease, now: i64) -> Result<bool> {
    let changed = c
        .prepare_cached(
            "INSERT INTO endpoint_owner (endpoint_id, owner, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (endpoint_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
             WHERE endpoint_owner.owner = excluded.owner OR endpoint_owner.expires_at < ?4",
        )?
        .execute(params![endpoint_id, lease.owner, now + lease.duration_ms, now])?;
    Ok(changed == 1)
}

/// Whether `lease.owner` owns the endpoint's queue, taking (or renewing) it
/// only when it must: a read where it holds the queue comfortably, as every
/// message to a busy endpoint finds.
pub fn owns(c: &Connection, endpoint_id: &str, lease: &Lease, now: i64) -> Result<bool> {
    let holder = c
        .prepare_cached("SELECT owner, expires_at FROM endpoint_owner WHERE endpoint_id = ?1")?
        .query_row([endpoint_id], |r| Ok(Holder { owner: r.get(0)?, expires_at: r.get(1)? }))
        .optional()?;
    match standing(holder.as_ref(), lease, now) {
        Standing::Holds => Ok(true),
        Standing::Take => take(c, endpoint_id, lease, now),
        Standing::Other => Ok(false),
    }
}

pub fn renew(c: &Connection, lease: &Lease, delivery_ids: &[i64], endpoint_ids: &[String], now: i64) -> Result<()> {
    let until = now + lease.duration_ms;
    let ids = serde_json::to_string(delivery_ids).expect("ids serialise");
    c.prepare_cached(
        "UPDATE delivery SET lease_expires_at = ?2
         WHERE state = 'leased' AND lease_owner = ?1 AND id IN (SELECT value FROM json_each(?3))",
    )?
    .execute(params![lease.owner, until, ids])?;
    let eps = serde_json::to_string(endpoint_ids).expect("ids serialise");
    c.prepare_cached(
        "UPDATE endpoint_owner SET expires_at = ?2
         WHERE owner = ?1 AND endpoint_id IN (SELECT value FROM json_each(?3))",
    )?
    .execute(params![lease.owner, until, eps])?;
    Ok(())
}

pub fn release_all(c: &Connection, owner: &str) -> Result<()> {
    c.execute("DELETE FROM endpoint_owner WHERE owner = ?1", [owner])?;
    Ok(())
}
