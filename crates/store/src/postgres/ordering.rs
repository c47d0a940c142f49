//! Ordered endpoints on PostgreSQL (see `crate::ordering`).
//!
//! Several transactions write at once, so what SQLite's one writer gives for
//! free is a lock here: a transaction-level advisory lock per (endpoint, key).
//! Whoever inserts a delivery with a key takes it before asking whether that
//! delivery must wait parked ([`parked_behind`]), and whoever releases a key's
//! head takes it before looking for the head ([`lock`], then
//! [`release_heads`]). So a release either comes after an insert that parked
//! behind the delivery just done (it waited for that insert's commit, and its
//! next statement sees the parked row), or before it (and the insert sees the
//! delivery done, and does not park). Whoever makes a delivery with a key
//! waiting again (a resend, recover, bulk replay, an endpoint enabled) takes
//! the key's lock too, before the update: an insert that found nothing
//! waiting (and leased its delivery at once) has committed by then, and the
//! claim sees it in flight. Deliveries such bulk paths make waiting wait
//! parked, and the first waiting of each key is released after.
//!
//! Lock order: an advisory lock is taken after the queue ownership rows and
//! before any existing delivery row; several at once, in one statement, in the
//! order of the lock's own key (a hash of the pair), so lockers wait for each
//! other but do not deadlock. A holder never waits for a delivery row: a
//! release skips a head another transaction has locked (that one is pausing,
//! canceling or scheduling it anyway).
//!
//! What no lock covers (a head whose predecessor was deleted, a release lost
//! with its connection, a delivery parked while its endpoint's ordering
//! changed) the retention sweep frees ([`release_stuck`]). The claim's
//! [`head_only`] condition holds the order whatever is due.

use sqlx::PgConnection;

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

/// An (endpoint id, ordering key) pair.
pub type OrderKey = (String, String);

fn columns(keys: &[OrderKey]) -> (Vec<&str>, Vec<&str>) {
    keys.iter().map(|(e, k)| (e.as_str(), k.as_str())).unzip()
}

/// Takes the keys' advisory locks, held until the transaction ends (`c` must
/// be in one). Duplicates are locked once.
pub async fn lock(c: &mut PgConnection, keys: &[OrderKey]) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let (endpoints, keys) = columns(keys);
    // The sorted subquery is not flattened (DISTINCT), so the locks are taken
    // row by row in its order.
    sqlx::query(
        "SELECT pg_advisory_xact_lock(l.h) FROM (
             SELECT DISTINCT hashtextextended(t.e || '/' || t.k, 0) AS h
             FROM unnest($1::text[], $2::text[]) AS t(e, k)
             ORDER BY h
         ) l",
    )
    .bind(&endpoints)
    .bind(&keys)
    .execute(c)
    .await?;
    Ok(())
}

/// Takes the keys' locks ([`lock`]) and tells, for each key (in the order
/// given), whether a new delivery of it must wait parked behind another one
/// still waiting, leased or paused. Run inside a transaction, before the insert.
pub async fn parked_behind(c: &mut PgConnection, keys: &[OrderKey]) -> Result<Vec<bool>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    lock(&mut *c, keys).await?;
    // A statement of its own, after the lock: its snapshot sees what the
    // lock's last holder committed.
    let (endpoints, keys) = columns(keys);
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM delivery d WHERE d.endpoint_id = t.e AND d.order_key = t.k
                    AND d.state IN ('scheduled', 'leased', 'paused'))
         FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(e, k, n)
         ORDER BY t.n",
    )
    .bind(&endpoints)
    .bind(&keys)
    .fetch_all(c)
    .await?)
}

/// Makes the first waiting delivery of each (endpoint, key) due now when it is
/// parked; returns how many were. Call it under the keys' locks ([`lock`]),
/// unless a head missed can wait for the sweep.
pub async fn release_heads(c: &mut PgConnection, keys: &[OrderKey]) -> Result<u64> {
    if keys.is_empty() {
        return Ok(0);
    }
    let (endpoints, keys) = columns(keys);
    let n = sqlx::query(
        // The heads' ids first (one probe of the key's index each), then those
        // rows by id: never a scan of every parked delivery.
        "WITH heads AS MATERIALIZED (
             SELECT d.id FROM delivery d
             WHERE d.id = ANY(ARRAY(
                       SELECT (SELECT f.id FROM delivery f
                               WHERE f.endpoint_id = t.e AND f.order_key = t.k
                                 AND f.state IN ('scheduled', 'leased', 'paused')
                               ORDER BY f.id LIMIT 1)
                       FROM unnest($1::text[], $2::text[]) AS t(e, k)))
               AND d.state = 'scheduled' AND d.due_at IS NULL
             ORDER BY d.id FOR UPDATE OF d SKIP LOCKED
         )
         UPDATE delivery d SET due_at = hookd_now_ms(), updated_at = hookd_now_ms()
         FROM heads WHERE d.id = heads.id AND d.state = 'scheduled' AND d.due_at IS NULL",
    )
    .bind(&endpoints)
    .bind(&keys)
    .execute(c)
    .await?;
    Ok(n.rows_affected())
}

/// The keys the messages' deliveries are in (sorted), for [`release_heads`]
/// once they are canceled.
pub async fn keys_of_msgs(c: &mut PgConnection, msg_ids: &[String]) -> Result<Vec<OrderKey>> {
    if msg_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as(
        "SELECT DISTINCT endpoint_id, order_key FROM delivery
         WHERE msg_id = ANY($1) AND order_key IS NOT NULL ORDER BY 1, 2",
    )
    .bind(msg_ids)
    .fetch_all(c)
    .await?)
}

/// The keys of the endpoint's deliveries with these ids (sorted), for
/// [`lock`] before they are made waiting again, and [`release_heads`] after.
pub async fn keys_of_deliveries(c: &mut PgConnection, ids: &[i64]) -> Result<Vec<OrderKey>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as(
        "SELECT DISTINCT endpoint_id, order_key FROM delivery
         WHERE id = ANY($1) AND order_key IS NOT NULL ORDER BY 1, 2",
    )
    .bind(ids)
    .fetch_all(c)
    .await?)
}

/// The keys of the endpoint's deliveries of these messages (sorted): see
/// [`keys_of_deliveries`].
pub async fn keys_of_endpoint_msgs(c: &mut PgConnection, endpoint_id: &str, msg_ids: &[&str]) -> Result<Vec<OrderKey>> {
    if msg_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as(
        "SELECT DISTINCT endpoint_id, order_key FROM delivery
         WHERE endpoint_id = $1 AND msg_id = ANY($2) AND order_key IS NOT NULL ORDER BY 1, 2",
    )
    .bind(endpoint_id)
    .bind(msg_ids)
    .fetch_all(c)
    .await?)
}

/// The keys with deliveries waiting or in flight for the endpoint (sorted):
/// one probe of the key index per key, skipping each key's queue however long
/// it is. None (one probe) for an unordered endpoint.
pub async fn keys_of_endpoint(c: &mut PgConnection, endpoint_id: &str) -> Result<Vec<OrderKey>> {
    Ok(sqlx::query_as(
        "WITH RECURSIVE k AS (
             (SELECT d.order_key FROM delivery d
              WHERE d.endpoint_id = $1 AND d.order_key IS NOT NULL AND d.state IN ('scheduled', 'leased', 'paused')
              ORDER BY d.order_key LIMIT 1)
             UNION ALL
             SELECT n.order_key FROM k CROSS JOIN LATERAL (
                 SELECT d.order_key FROM delivery d
                 WHERE d.endpoint_id = $1 AND d.order_key IS NOT NULL AND d.state IN ('scheduled', 'leased', 'paused')
                   AND d.order_key > k.order_key
                 ORDER BY d.order_key LIMIT 1
             ) n
         )
         SELECT $1::text, order_key FROM k ORDER BY 2",
    )
    .bind(endpoint_id)
    .fetch_all(c)
    .await?)
}

/// Frees up to `limit` parked deliveries that nothing waits before any more
/// (the one before them was deleted, or its release was lost); returns how
/// many. Only the first waiting delivery of each key can be one, so the keys
/// are walked (one probe of the index each, skipping a key's queue however
/// long it is), not the parked deliveries. Rows locked elsewhere are skipped,
/// not waited for. (A head freed while a later delivery of its key is in
/// flight still waits for it: the claim's [`head_only`] sees to that.)
pub async fn release_stuck(c: &mut PgConnection, limit: usize) -> Result<u64> {
    release_stuck_all(c, limit).await
}

/// [`release_stuck`] for the queues of `endpoint_ids` only: what a node runs
/// when it takes queues over from another (a release that node lost, dying
/// between recording an outcome and releasing the next head, would otherwise
/// wait for the sweep). The keys' locks are taken first, as any release does
/// (after the queues' ownership rows, before delivery rows).
pub async fn release_stuck_of(c: &mut PgConnection, endpoint_ids: &[String]) -> Result<u64> {
    if endpoint_ids.is_empty() {
        return Ok(0);
    }
    let keys: Vec<OrderKey> = sqlx::query_as(
        "SELECT DISTINCT endpoint_id, order_key FROM delivery
         WHERE endpoint_id = ANY($1) AND order_key IS NOT NULL AND state IN ('scheduled', 'leased', 'paused')
         ORDER BY 1, 2",
    )
    .bind(endpoint_ids)
    .fetch_all(&mut *c)
    .await?;
    lock(&mut *c, &keys).await?;
    release_heads(c, &keys).await
}

async fn release_stuck_all(c: &mut PgConnection, limit: usize) -> Result<u64> {
    let n = sqlx::query(
        "WITH RECURSIVE k AS (
             (SELECT d.endpoint_id, d.order_key FROM delivery d
              WHERE d.order_key IS NOT NULL AND d.state IN ('scheduled', 'leased', 'paused')
              ORDER BY d.endpoint_id, d.order_key LIMIT 1)
             UNION ALL
             SELECT n.endpoint_id, n.order_key FROM k CROSS JOIN LATERAL (
                 SELECT d.endpoint_id, d.order_key FROM delivery d
                 WHERE d.order_key IS NOT NULL AND d.state IN ('scheduled', 'leased', 'paused')
                      AND (d.endpoint_id, d.order_key) > (k.endpoint_id, k.order_key)
                 ORDER BY d.endpoint_id, d.order_key LIMIT 1
             ) n
         ), heads AS (
             SELECT h.id FROM k CROSS JOIN LATERAL (
                 SELECT d.id, d.state, d.due_at FROM delivery d
                 WHERE d.endpoint_id = k.endpoint_id AND d.order_key = k.order_key
                   AND d.state IN ('scheduled', 'leased', 'paused')
                 ORDER BY d.id LIMIT 1
             ) h
             WHERE h.state = 'scheduled' AND h.due_at IS NULL
         ), stuck AS MATERIALIZED (
             SELECT d.id FROM delivery d
             WHERE d.id = ANY(ARRAY(SELECT id FROM heads LIMIT $1))
               AND d.state = 'scheduled' AND d.due_at IS NULL
             ORDER BY d.id FOR UPDATE OF d SKIP LOCKED
         )
         UPDATE delivery d SET due_at = hookd_now_ms(), updated_at = hookd_now_ms()
         FROM stuck WHERE d.id = stuck.id AND d.state = 'scheduled' AND d.due_at IS NULL",
    )
    .bind(limit as i64)
    .execute(c)
    .await?;
    Ok(n.rows_affected())
}

/// The endpoint's ordering key changed (or ordering ended): what waits for it is no longer
/// held in order, and parked deliveries are due now; returns how many
/// deliveries it changed. Like every endpoint edit, it locks only rows that
/// wait (in id order), never a leased one: a delivery in flight keeps its key
/// until it is done (a new delivery with that same key waits for it).
pub async fn unorder_endpoint(c: &mut PgConnection, endpoint_id: &str) -> Result<u64> {
    let n = sqlx::query(
        "WITH waiting AS MATERIALIZED (
             SELECT id FROM delivery
             WHERE endpoint_id = $1 AND order_key IS NOT NULL AND state IN ('scheduled', 'paused')
             ORDER BY id FOR UPDATE
         )
         UPDATE delivery d SET order_key = NULL,
             due_at = CASE WHEN d.state = 'scheduled' AND d.due_at IS NULL THEN hookd_now_ms() ELSE d.due_at END
         FROM waiting WHERE d.id = waiting.id AND d.state IN ('scheduled', 'paused')",
    )
    .bind(endpoint_id)
    .execute(c)
    .await?;
    Ok(n.rows_affected())
}
