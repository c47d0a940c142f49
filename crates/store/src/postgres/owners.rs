//! Ownership of endpoint queues: one node at a time sends to an endpoint, so its
//! concurrency cap (and later throttle, breaker, ordering) holds across nodes.
//!
//! Lock order: every statement here that locks several `endpoint_owner` rows
//! locks them in ascending `endpoint_id` (callers pass sorted ids; the others
//! lock through an `ORDER BY … FOR UPDATE`), so two nodes taking, renewing and
//! releasing overlapping sets of queues wait on each other but never deadlock.

use sqlx::PgConnection;

use crate::model::Lease;
pub use crate::ownership::{standing, Holder, Standing};
use crate::Result;

/// Takes the queues of `endpoint_ids` (sorted ascending) for `lease.owner` where
/// they are free, expired or already its own (renewing those); returns the ones
/// it now owns. A queue another node holds is left alone: if that node is taking
/// it at this moment, this waits for its commit and then sees it held.
///
/// A queue taken over from another node (one whose lease ran out: it stopped
/// or lost the database) has its stuck ordered heads released here: that node
/// may have died between recording an outcome and releasing the next delivery
/// of its key (two transactions), which would otherwise wait for the sweep.
pub async fn take(c: &mut PgConnection, endpoint_ids: &[String], lease: &Lease) -> Result<Vec<String>> {
    debug_assert!(endpoint_ids.windows(2).all(|w| w[0] <= w[1]), "lock order: endpoint ids must be sorted");
    let taken: Vec<(String, bool)> = sqlx::query_as(
        // `prev` is read from the statement's snapshot: the owners before it.
        "WITH prev AS (SELECT endpoint_id, owner FROM endpoint_owner WHERE endpoint_id = ANY($1))
         INSERT INTO endpoint_owner (endpoint_id, owner, expires_at)
         SELECT unnest($1::text[]), $2, hookd_now_ms() + $3
         ON CONFLICT (endpoint_id) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
         WHERE endpoint_owner.owner = EXCLUDED.owner OR endpoint_owner.expires_at < hookd_now_ms()
         RETURNING endpoint_id,
             COALESCE((SELECT p.owner <> $2 FROM prev p WHERE p.endpoint_id = endpoint_owner.endpoint_id), false)",
    )
    .bind(endpoint_ids)
    .bind(&lease.owner)
    .bind(lease.duration_ms)
    .fetch_all(&mut *c)
    .await?;
    let from_others: Vec<String> = taken.iter().filter(|(_, other)| *other).map(|(e, _)| e.clone()).collect();
    super::ordering::release_stuck_of(c, &from_others).await?;
    Ok(taken.into_iter().map(|(e, _)| e).collect())
}

/// Two statements, each its own transaction: holding delivery rows while waiting
/// for `endpoint_owner` rows (or the reverse) could deadlock with a claim.
pub async fn renew(c: &mut PgConnection, lease: &Lease, delivery_ids: &[i64], endpoint_ids: &[String]) -> Result<()> {
    if !delivery_ids.is_empty() {
        sqlx::query(
            "WITH held AS MATERIALIZED (
                 SELECT id FROM delivery WHERE state = 'leased' AND lease_owner = $1 AND id = ANY($3)
                 ORDER BY id FOR UPDATE
             )
             UPDATE delivery d SET lease_expires_at = hookd_now_ms() + $2 FROM held
             WHERE d.id = held.id AND d.state = 'leased'",
        )
        .bind(&lease.owner)
        .bind(lease.duration_ms)
        .bind(delivery_ids)
        .execute(&mut *c)
        .await?;
    }
    if !endpoint_ids.is_empty() {
        sqlx::query(
            "WITH owned AS MATERIALIZED (
                 SELECT endpoint_id FROM endpoint_owner WHERE owner = $1 AND endpoint_id = ANY($3)
                 ORDER BY endpoint_id FOR UPDATE
             )
             UPDATE endpoint_owner o SET expires_at = hookd_now_ms() + $2 FROM owned
             WHERE o.endpoint_id = owned.endpoint_id",
        )
        .bind(&lease.owner)
        .bind(lease.duration_ms)
        .bind(endpoint_ids)
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

pub async fn release_all(c: &mut PgConnection, owner: &str) -> Result<()> {
    sqlx::query(
        "WITH owned AS MATERIALIZED (SELECT endpoint_id FROM endpoint_owner WHERE owner = $1 ORDER BY endpoint_id FOR UPDATE)
         DELETE FROM endpoint_owner o USING owned WHERE o.endpoint_id = owned.endpoint_id",
    )
    .bind(owner)
    .execute(c)
    .await?;
    Ok(())
}
