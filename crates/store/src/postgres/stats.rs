//! Statistics rollups (see `crate::stats`) on PostgreSQL: rows are merged in
//! the database (`ON CONFLICT … DO UPDATE` with sums and `hookd_sketch_merge`),
//! so nodes writing the same row add up rather than overwrite each other.

use std::collections::BTreeMap;

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::stats::{Granularity, QueueNow, Rollup, RollupRetention, Sketch, StatsQuery, StatsRow};
use crate::Result;

/// What an `INSERT … ON CONFLICT` on the rollup key sets: the sum of both.
pub const MERGE: &str = "ON CONFLICT (org_id, app_id, endpoint_id, event_type, width_ms, bucket_start) DO UPDATE SET
    attempts = stats_rollup.attempts + EXCLUDED.attempts,
    success = stats_rollup.success + EXCLUDED.success,
    fail_4xx = stats_rollup.fail_4xx + EXCLUDED.fail_4xx,
    fail_5xx = stats_rollup.fail_5xx + EXCLUDED.fail_5xx,
    fail_timeout = stats_rollup.fail_timeout + EXCLUDED.fail_timeout,
    fail_connection = stats_rollup.fail_connection + EXCLUDED.fail_connection,
    fail_tls = stats_rollup.fail_tls + EXCLUDED.fail_tls,
    fail_other = stats_rollup.fail_other + EXCLUDED.fail_other,
    bytes = stats_rollup.bytes + EXCLUDED.bytes,
    latency_sum_ms = stats_rollup.latency_sum_ms + EXCLUDED.latency_sum_ms,
    latency_max_ms = GREATEST(stats_rollup.latency_max_ms, EXCLUDED.latency_max_ms),
    latency = hookd_sketch_merge(stats_rollup.latency, EXCLUDED.latency),
    delivery = hookd_sketch_merge(stats_rollup.delivery, EXCLUDED.delivery)";

const COUNTS: &str = "attempts, success, fail_4xx, fail_5xx, fail_timeout, fail_connection, fail_tls, fail_other, \
                      bytes, latency_sum_ms, latency_max_ms, latency::text, delivery::text";

fn rollup_at(r: &PgRow, at: usize) -> sqlx::Result<Rollup> {
    let n = |i: usize| -> sqlx::Result<u64> { Ok(r.try_get::<i64, _>(at + i)?.max(0) as u64) };
    Ok(Rollup {
        attempts: n(0)?,
        success: n(1)?,
        fail_4xx: n(2)?,
        fail_5xx: n(3)?,
        fail_timeout: n(4)?,
        fail_connection: n(5)?,
        fail_tls: n(6)?,
        fail_other: n(7)?,
        bytes: n(8)?,
        latency_sum_ms: n(9)?,
        latency_max_ms: n(10)?,
        latency: Sketch::from_json(&r.try_get::<String, _>(at + 11)?),
        delivery: Sketch::from_json(&r.try_get::<String, _>(at + 12)?),
    })
}

/// See `Resources::stats`. Rows are added up per slot here rather than in SQL:
/// their sketches merge in Rust.
pub async fn query(c: &mut PgConnection, q: &StatsQuery) -> Result<Vec<StatsRow>> {
    let rows = sqlx::query(&format!(
        "SELECT bucket_start, event_type, {COUNTS} FROM stats_rollup
         WHERE org_id = $1 AND app_id = $2 AND bucket_start >= $3 AND bucket_start < $4
           AND ($5::text IS NULL OR endpoint_id = $5)
           AND (cardinality($6::text[]) = 0 OR event_type = ANY($6))"
    ))
    .bind(&q.org_id)
    .bind(&q.app_id)
    .bind(q.since)
    .bind(q.until)
    .bind(q.endpoint_id.as_deref())
    .bind(&q.event_types)
    .fetch_all(c)
    .await?;
    let mut slots: BTreeMap<(i64, String), Rollup> = BTreeMap::new();
    let period = q.period_ms.max(1);
    for r in &rows {
        let start: i64 = r.try_get(0)?;
        let slot = start.div_euclid(period) * period;
        slots.entry((slot, r.try_get(1)?)).or_default().merge(&rollup_at(r, 2)?);
    }
    Ok(slots
        .into_iter()
        .map(|((slot_start, event_type), rollup)| StatsRow { slot_start, event_type, rollup })
        .collect())
}

/// See `Resources::queue_now`.
pub async fn queue_now(
    c: &mut PgConnection,
    org_id: &str,
    app_id: &str,
    endpoint_id: Option<&str>,
) -> Result<QueueNow> {
    let (depth, paused, oldest): (i64, i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*) FILTER (WHERE d.state IN ('scheduled', 'leased')),
                COUNT(*) FILTER (WHERE d.state = 'paused'),
                MIN(d.created_at) FILTER (WHERE d.state IN ('scheduled', 'leased'))
         FROM endpoint e JOIN delivery d ON d.endpoint_id = e.id
         WHERE e.org_id = $1 AND e.app_id = $2 AND ($3::text IS NULL OR e.id = $3)
           AND d.state IN ('scheduled', 'leased', 'paused')",
    )
    .bind(org_id)
    .bind(app_id)
    .bind(endpoint_id)
    .fetch_one(c)
    .await?;
    Ok(QueueNow { depth: depth as u64, paused: paused as u64, oldest_created_at: oldest })
}

/// See `Queue::fold_rollups`: each step is one statement that deletes the
/// narrow rows and adds them into the wide ones, so a fold is all or nothing.
pub async fn fold(c: &mut PgConnection, batch: usize, retention: RollupRetention) -> Result<u64> {
    let mut done = 0;
    for (from, to, keep_ms) in [
        (Granularity::Minute, Granularity::Hour, retention.minutes_ms),
        (Granularity::Hour, Granularity::Day, retention.hours_ms),
    ] {
        let (w, wide) = (from.width_ms(), to.width_ms());
        let folded: i64 = sqlx::query_scalar(&format!(
            "WITH moved AS (
                 DELETE FROM stats_rollup r
                 WHERE (r.org_id, r.app_id, r.endpoint_id, r.event_type, r.width_ms, r.bucket_start) IN (
                     SELECT org_id, app_id, endpoint_id, event_type, width_ms, bucket_start FROM stats_rollup
                     WHERE width_ms = $1
                       AND bucket_start < ((hookd_now_ms() - $3) / $2) * $2
                     LIMIT $4 FOR UPDATE SKIP LOCKED)
                 RETURNING r.*, (r.bucket_start / $2) * $2 AS wide_start
             ), sums AS (
                 SELECT org_id, app_id, endpoint_id, event_type, wide_start,
                        SUM(attempts)::bigint AS attempts, SUM(success)::bigint AS success,
                        SUM(fail_4xx)::bigint AS fail_4xx, SUM(fail_5xx)::bigint AS fail_5xx,
                        SUM(fail_timeout)::bigint AS fail_timeout, SUM(fail_connection)::bigint AS fail_connection,
                        SUM(fail_tls)::bigint AS fail_tls, SUM(fail_other)::bigint AS fail_other,
                        SUM(bytes)::bigint AS bytes, SUM(latency_sum_ms)::bigint AS latency_sum_ms,
                        MAX(latency_max_ms) AS latency_max_ms, COUNT(*) AS n
                 FROM moved GROUP BY 1, 2, 3, 4, 5
             ), lat AS (
                 SELECT org_id, app_id, endpoint_id, event_type, wide_start, jsonb_object_agg(k, n) AS sketch
                 FROM (SELECT org_id, app_id, endpoint_id, event_type, wide_start, e.key AS k,
                              SUM(e.value::bigint) AS n
                       FROM moved, jsonb_each_text(moved.latency) e GROUP BY 1, 2, 3, 4, 5, 6) x
                 GROUP BY 1, 2, 3, 4, 5
             ), del AS (
                 SELECT org_id, app_id, endpoint_id, event_type, wide_start, jsonb_object_agg(k, n) AS sketch
                 FROM (SELECT org_id, app_id, endpoint_id, event_type, wide_start, e.key AS k,
                              SUM(e.value::bigint) AS n
                       FROM moved, jsonb_each_text(moved.delivery) e GROUP BY 1, 2, 3, 4, 5, 6) x
                 GROUP BY 1, 2, 3, 4, 5
             ), added AS (
                 INSERT INTO stats_rollup (org_id, app_id, endpoint_id, event_type, width_ms, bucket_start,
                     attempts, success, fail_4xx, fail_5xx, fail_timeout, fail_connection, fail_tls, fail_other,
                     bytes, latency_sum_ms, latency_max_ms, latency, delivery)
                 SELECT s.org_id, s.app_id, s.endpoint_id, s.event_type, $5, s.wide_start,
                        s.attempts, s.success, s.fail_4xx, s.fail_5xx, s.fail_timeout, s.fail_connection, s.fail_tls,
                        s.fail_other, s.bytes, s.latency_sum_ms, s.latency_max_ms,
                        COALESCE(lat.sketch, '{{}}'::jsonb), COALESCE(del.sketch, '{{}}'::jsonb)
                 FROM sums s
                 LEFT JOIN lat USING (org_id, app_id, endpoint_id, event_type, wide_start)
                 LEFT JOIN del USING (org_id, app_id, endpoint_id, event_type, wide_start)
                 ORDER BY 1, 2, 3, 4, 6
                 {MERGE}
             )
             SELECT COALESCE(SUM(n), 0)::bigint FROM sums"
        ))
        .bind(w)
        .bind(wide)
        .bind(keep_ms)
        .bind(batch as i64)
        .bind(wide)
        .fetch_one(&mut *c)
        .await?;
        done += folded as u64;
    }
    if retention.days_ms > 0 {
        done += sqlx::query(
            "DELETE FROM stats_rollup WHERE (org_id, app_id, endpoint_id, event_type, width_ms, bucket_start) IN (
                 SELECT org_id, app_id, endpoint_id, event_type, width_ms, bucket_start FROM stats_rollup
                 WHERE width_ms = $1 AND bucket_start < hookd_now_ms() - $2 LIMIT $3)",
        )
        .bind(Granularity::Day.width_ms())
        .bind(retention.days_ms)
        .bind(batch as i64)
        .execute(&mut *c)
        .await?
        .rows_affected();
    }
    Ok(done)
}

/// See `Queue::app_traffic`.
pub async fn app_traffic(
    c: &mut PgConnection,
    base_since: i64,
    recent_since: i64,
) -> Result<Vec<crate::stats::AppTraffic>> {
    let rows: Vec<(String, String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT org_id, app_id,
                COALESCE(SUM(attempts) FILTER (WHERE bucket_start >= $2), 0)::bigint,
                COALESCE(SUM(attempts - success) FILTER (WHERE bucket_start >= $2), 0)::bigint,
                COALESCE(SUM(attempts) FILTER (WHERE bucket_start < $2), 0)::bigint,
                COALESCE(SUM(attempts - success) FILTER (WHERE bucket_start < $2), 0)::bigint
         FROM stats_rollup WHERE width_ms = 60000 AND bucket_start >= $1
         GROUP BY org_id, app_id
         HAVING SUM(attempts) FILTER (WHERE bucket_start >= $2) > 0",
    )
    .bind(base_since)
    .bind(recent_since)
    .fetch_all(c)
    .await?;
    let n = |v: i64| v.max(0) as u64;
    Ok(rows
        .into_iter()
        .map(|(org_id, app_id, ra, rf, ba, bf)| crate::stats::AppTraffic {
            org_id,
            app_id,
            recent_attempts: n(ra),
            recent_failures: n(rf),
            base_attempts: n(ba),
            base_failures: n(bf),
        })
        .collect())
}

/// See `Queue::claim_alert`.
pub async fn claim_alert(
    c: &mut PgConnection,
    org_id: &str,
    app_id: &str,
    kind: &str,
    now: i64,
    quiet_ms: i64,
) -> Result<bool> {
    let n = sqlx::query(
        "INSERT INTO alert_state (org_id, app_id, kind, fired_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (org_id, app_id, kind) DO UPDATE SET fired_at = EXCLUDED.fired_at
         WHERE alert_state.fired_at <= $4 - $5",
    )
    .bind(org_id)
    .bind(app_id)
    .bind(kind)
    .bind(now)
    .bind(quiet_ms)
    .execute(c)
    .await?
    .rows_affected();
    Ok(n > 0)
}
