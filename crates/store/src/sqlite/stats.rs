//! Statistics rollups (see `crate::stats`) on SQLite: one writer, so a row is
//! merged by reading it and writing the sum.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::stats::{Granularity, QueueNow, Rollup, RollupKey, RollupRetention, Sketch, StatsQuery, StatsRow};
use crate::Result;

const COUNTS: &str = "attempts, success, fail_4xx, fail_5xx, fail_timeout, fail_connection, fail_tls, fail_other, \
                      bytes, latency_sum_ms, latency_max_ms, latency, delivery";

fn rollup_at(r: &Row, at: usize) -> rusqlite::Result<Rollup> {
    let n = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(at + i)?.max(0) as u64) };
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
        latency: Sketch::from_json(&r.get::<_, String>(at + 11)?),
        delivery: Sketch::from_json(&r.get::<_, String>(at + 12)?),
    })
}

/// Adds `add` to the row at `key` (made when missing).
pub fn upsert(c: &Connection, key: &RollupKey, add: &Rollup) -> Result<()> {
    let existing = c
        .prepare_cached(&format!(
            "SELECT {COUNTS} FROM stats_rollup WHERE org_id = ?1 AND app_id = ?2 AND endpoint_id = ?3
             AND event_type = ?4 AND width_ms = ?5 AND bucket_start = ?6"
        ))?
        .query_row(
            params![key.org_id, key.app_id, key.endpoint_id, key.event_type, key.width_ms, key.bucket_start],
            |r| rollup_at(r, 0),
        )
        .optional()?;
    let mut sum = existing.unwrap_or_default();
    sum.merge(add);
    let i = |n: u64| n.min(i64::MAX as u64) as i64;
    c.prepare_cached(&format!(
        "INSERT OR REPLACE INTO stats_rollup (org_id, app_id, endpoint_id, event_type, width_ms, bucket_start, {COUNTS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
    ))?
    .execute(params![
        key.org_id,
        key.app_id,
        key.endpoint_id,
        key.event_type,
        key.width_ms,
        key.bucket_start,
        i(sum.attempts),
        i(sum.success),
        i(sum.fail_4xx),
        i(sum.fail_5xx),
        i(sum.fail_timeout),
        i(sum.fail_connection),
        i(sum.fail_tls),
        i(sum.fail_other),
        i(sum.bytes),
        i(sum.latency_sum_ms),
        i(sum.latency_max_ms),
        sum.latency.to_json(),
        sum.delivery.to_json(),
    ])?;
    Ok(())
}

/// See `Resources::stats`.
pub fn query(c: &Connection, q: &StatsQuery) -> Result<Vec<StatsRow>> {
    let types = serde_json::to_string(&q.event_types).unwrap_or_else(|_| "[]".into());
    let mut stmt = c.prepare_cached(&format!(
        "SELECT bucket_start, event_type, {COUNTS} FROM stats_rollup
         WHERE org_id = ?1 AND app_id = ?2 AND bucket_start >= ?3 AND bucket_start < ?4
           AND (?5 IS NULL OR endpoint_id = ?5)
           AND (json_array_length(?6) = 0 OR event_type IN (SELECT value FROM json_each(?6)))"
    ))?;
    let mut rows = stmt.query(params![q.org_id, q.app_id, q.since, q.until, q.endpoint_id, types])?;
    let mut slots: BTreeMap<(i64, String), Rollup> = BTreeMap::new();
    let period = q.period_ms.max(1);
    while let Some(r) = rows.next()? {
        let start: i64 = r.get(0)?;
        let slot = start.div_euclid(period) * period;
        slots.entry((slot, r.get(1)?)).or_default().merge(&rollup_at(r, 2)?);
    }
    Ok(slots
        .into_iter()
        .map(|((slot_start, event_type), rollup)| StatsRow { slot_start, event_type, rollup })
        .collect())
}

/// See `Resources::queue_now`.
pub fn queue_now(c: &Connection, org_id: &str, app_id: &str, endpoint_id: Option<&str>) -> Result<QueueNow> {
    let (depth, paused, oldest): (i64, i64, Option<i64>) = c
        .prepare_cached(
            "SELECT COUNT(*) FILTER (WHERE d.state IN ('scheduled', 'leased')),
                    COUNT(*) FILTER (WHERE d.state = 'paused'),
                    MIN(d.created_at) FILTER (WHERE d.state IN ('scheduled', 'leased'))
             FROM endpoint e JOIN delivery d ON d.endpoint_id = e.id
             WHERE e.org_id = ?1 AND e.app_id = ?2 AND (?3 IS NULL OR e.id = ?3)
               AND d.state IN ('scheduled', 'leased', 'paused')",
        )?
        .query_row(params![org_id, app_id, endpoint_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(QueueNow { depth: depth as u64, paused: paused as u64, oldest_created_at: oldest })
}

/// See `Queue::fold_rollups`.
pub fn fold(c: &Connection, now: i64, batch: usize, retention: RollupRetention) -> Result<u64> {
    let mut done = 0;
    for (from, to, keep_ms) in [
        (Granularity::Minute, Granularity::Hour, retention.minutes_ms),
        (Granularity::Hour, Granularity::Day, retention.hours_ms),
    ] {
        // Only whole buckets of the wider width are folded.
        let cut = to.bucket(now - keep_ms);
        let taken: Vec<(RollupKey, Rollup)> = {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT org_id, app_id, endpoint_id, event_type, bucket_start, {COUNTS} FROM stats_rollup
                 WHERE width_ms = ?1 AND bucket_start < ?2 LIMIT ?3"
            ))?;
            let rows = stmt.query_map(params![from.width_ms(), cut, batch as i64], |r| {
                let key = RollupKey {
                    org_id: r.get(0)?,
                    app_id: r.get(1)?,
                    endpoint_id: r.get(2)?,
                    event_type: r.get(3)?,
                    width_ms: from.width_ms(),
                    bucket_start: r.get(4)?,
                };
                Ok((key, rollup_at(r, 5)?))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut folded: BTreeMap<RollupKey, Rollup> = BTreeMap::new();
        let mut delete = c.prepare_cached(
            "DELETE FROM stats_rollup WHERE org_id = ?1 AND app_id = ?2 AND endpoint_id = ?3 AND event_type = ?4
             AND width_ms = ?5 AND bucket_start = ?6",
        )?;
        for (key, rollup) in taken {
            delete.execute(params![
                key.org_id,
                key.app_id,
                key.endpoint_id,
                key.event_type,
                key.width_ms,
                key.bucket_start
            ])?;
            let wider = RollupKey { width_ms: to.width_ms(), bucket_start: to.bucket(key.bucket_start), ..key };
            folded.entry(wider).or_default().merge(&rollup);
            done += 1;
        }
        for (key, rollup) in &folded {
            upsert(c, key, rollup)?;
        }
    }
    if retention.days_ms > 0 {
        let cut = now - retention.days_ms;
        done += c
            .prepare_cached(
                "DELETE FROM stats_rollup WHERE (org_id, app_id, endpoint_id, event_type, width_ms, bucket_start)
                 IN (SELECT org_id, app_id, endpoint_id, event_type, width_ms, bucket_start FROM stats_rollup
                     WHERE width_ms = ?1 AND bucket_start < ?2 LIMIT ?3)",
            )?
            .execute(params![Granularity::Day.width_ms(), cut, batch as i64])? as u64;
    }
    Ok(done)
}

/// See `Queue::app_traffic`.
pub fn app_traffic(c: &Connection, base_since: i64, recent_since: i64) -> Result<Vec<crate::stats::AppTraffic>> {
    let mut stmt = c.prepare_cached(
        "SELECT org_id, app_id,
                SUM(CASE WHEN bucket_start >= ?2 THEN attempts ELSE 0 END),
                SUM(CASE WHEN bucket_start >= ?2 THEN attempts - success ELSE 0 END),
                SUM(CASE WHEN bucket_start < ?2 THEN attempts ELSE 0 END),
                SUM(CASE WHEN bucket_start < ?2 THEN attempts - success ELSE 0 END)
         FROM stats_rollup WHERE width_ms = 60000 AND bucket_start >= ?1
         GROUP BY org_id, app_id
         HAVING SUM(CASE WHEN bucket_start >= ?2 THEN attempts ELSE 0 END) > 0",
    )?;
    let rows = stmt.query_map(params![base_since, recent_since], |r| {
        let n = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
        Ok(crate::stats::AppTraffic {
            org_id: r.get(0)?,
            app_id: r.get(1)?,
            recent_attempts: n(2)?,
            recent_failures: n(3)?,
            base_attempts: n(4)?,
            base_failures: n(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// See `Queue::claim_alert`.
pub fn claim_alert(c: &Connection, org_id: &str, app_id: &str, kind: &str, now: i64, quiet_ms: i64) -> Result<bool> {
    let n = c
        .prepare_cached(
            "INSERT INTO alert_state (org_id, app_id, kind, fired_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (org_id, app_id, kind) DO UPDATE SET fired_at = excluded.fired_at
             WHERE alert_state.fired_at <= ?4 - ?5",
        )?
        .execute(params![org_id, app_id, kind, now, quiet_ms])?;
    Ok(n > 0)
}
