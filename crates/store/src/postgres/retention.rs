//! The retention sweep: expired payloads and response bodies, old keys and
//! tasks, in small batches (one short transaction each, rows skipped rather
//! than waited for), so delivery keeps flowing. Autovacuum makes the space
//! reusable (the tables' settings are in the migrations).

use hookd_core::id::{id_floor_at, IdPrefix};
use hookd_core::timefmt::now_millis;
use sqlx::PgConnection;

use super::ordering;
use crate::task::{PruneReport, Retention};
use crate::Result;

/// Run inside a transaction.
pub async fn prune(c: &mut PgConnection, batch: usize, limits: Retention) -> Result<PruneReport> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM message WHERE expires_at <= hookd_now_ms() AND payload IS NOT NULL
         ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(batch as i64)
    .fetch_all(&mut *c)
    .await?;
    let mut report = PruneReport::default();
    if !ids.is_empty() {
        report.messages = sqlx::query("UPDATE message SET payload = NULL WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *c)
            .await?
            .rows_affected();
        // The response's body and both headers go with the payload.
        report.attempts = sqlx::query(
            "UPDATE attempt SET response = '', sent_headers = NULL, response_headers = NULL
             WHERE msg_id = ANY($1) AND (response <> '' OR sent_headers IS NOT NULL OR response_headers IS NOT NULL)",
        )
        .bind(&ids)
        .execute(&mut *c)
        .await?
        .rows_affected();
        report.canceled = sqlx::query(
            "WITH waiting AS MATERIALIZED (
                 SELECT id FROM delivery WHERE msg_id = ANY($1) AND state IN ('scheduled', 'paused')
                 ORDER BY id FOR UPDATE
             )
             UPDATE delivery d SET state = 'canceled', due_at = NULL, updated_at = hookd_now_ms()
             FROM waiting WHERE d.id = waiting.id AND d.state IN ('scheduled', 'paused')",
        )
        .bind(&ids)
        .execute(&mut *c)
        .await?
        .rows_affected();
        // Ordered endpoints' queues move past what was canceled. Without the
        // keys' locks (this holds message rows an insert may wait for): a
        // delivery parked meanwhile is freed by the next sweep's `release_stuck`.
        let keys = ordering::keys_of_msgs(&mut *c, &ids).await?;
        ordering::release_heads(&mut *c, &keys).await?;
    }
    // The oldest messages, by id (ids sort by creation time), with their
    // deliveries and attempts (foreign keys cascade); not while one of its
    // deliveries is in flight.
    let cutoff = id_floor_at(IdPrefix::Message, (now_millis() - limits.messages_ms).max(0) as u64);
    report.deleted = sqlx::query(
        "WITH old AS MATERIALIZED (
             SELECT id FROM message WHERE id < $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
         ), busy AS MATERIALIZED (
             -- One probe of the (msg_id, endpoint_id) index per old message: the
             -- message's few deliveries, their state checked after (OFFSET 0 keeps
             -- the check out of the scan). Asked directly, the planner may scan
             -- every delivery, or the lease index, dead entries and all.
             SELECT old.id FROM old CROSS JOIN LATERAL (
                 SELECT 1 FROM (SELECT d.state FROM delivery d WHERE d.msg_id = old.id OFFSET 0) ds
                 WHERE ds.state = 'leased' LIMIT 1
             ) leased
         )
         DELETE FROM message m USING old
         WHERE m.id = old.id AND NOT EXISTS (SELECT 1 FROM busy WHERE busy.id = old.id)",
    )
    .bind(cutoff)
    .bind(batch as i64)
    .execute(&mut *c)
    .await?
    .rows_affected();
    // An ordered endpoint's queue whose head went with its message moves on.
    report.housekeeping += ordering::release_stuck(&mut *c, batch).await?;
    // Inbound requests are kept as long as messages.
    let request_cutoff = id_floor_at(IdPrefix::InboundRequest, (now_millis() - limits.messages_ms).max(0) as u64);
    report.housekeeping += sqlx::query(
        "DELETE FROM ingest_request WHERE id IN (SELECT id FROM ingest_request WHERE id < $1 ORDER BY id LIMIT $2)",
    )
    .bind(request_cutoff)
    .bind(batch as i64)
    .execute(&mut *c)
    .await?
    .rows_affected();
    // A tracked object is forgotten once nothing has been heard of it for as long.
    report.housekeeping += sqlx::query(
        "DELETE FROM ingest_object WHERE ctid IN (SELECT ctid FROM ingest_object WHERE updated_at < $1 LIMIT $2)",
    )
    .bind(now_millis() - limits.messages_ms)
    .bind(batch as i64)
    .execute(&mut *c)
    .await?
    .rows_affected();
    for sql in [
        "DELETE FROM idempotency WHERE ctid IN (SELECT ctid FROM idempotency WHERE expires_at < hookd_now_ms() LIMIT $1)",
        "DELETE FROM api_token WHERE ctid IN (SELECT ctid FROM api_token
             WHERE expires_at IS NOT NULL AND expires_at <= hookd_now_ms() LIMIT $1)",
        "DELETE FROM one_time_token WHERE ctid IN (SELECT ctid FROM one_time_token
             WHERE expires_at <= hookd_now_ms() LIMIT $1)",
    ] {
        report.housekeeping += sqlx::query(sql).bind(batch as i64).execute(&mut *c).await?.rows_affected();
    }
    report.housekeeping += sqlx::query(
        "DELETE FROM background_task WHERE id IN (SELECT id FROM background_task
             WHERE status <> 'running' AND updated_at < hookd_now_ms() - $2 LIMIT $1)",
    )
    .bind(batch as i64)
    .bind(limits.tasks_ms)
    .execute(&mut *c)
    .await?
    .rows_affected();
    Ok(report)
}
