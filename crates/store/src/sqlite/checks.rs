//! Endpoint checks.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::checks::EndpointCheckRow;
use crate::Result;

const COLUMNS: &str = "org_id, app_id, endpoint_id, result, cert_not_after, checked_at, warned_at";

fn row(r: &Row) -> rusqlite::Result<EndpointCheckRow> {
    Ok(EndpointCheckRow {
        org_id: r.get(0)?,
        app_id: r.get(1)?,
        endpoint_id: r.get(2)?,
        result: r.get(3)?,
        cert_not_after: r.get(4)?,
        checked_at: r.get(5)?,
        warned_at: r.get(6)?,
    })
}

pub fn put(c: &Connection, x: &EndpointCheckRow) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO endpoint_check (org_id, app_id, endpoint_id, result, cert_not_after, checked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (endpoint_id) DO UPDATE SET result = excluded.result,
             cert_not_after = COALESCE(excluded.cert_not_after, endpoint_check.cert_not_after), checked_at = excluded.checked_at",
    )?
    .execute(params![x.org_id, x.app_id, x.endpoint_id, x.result, x.cert_not_after, x.checked_at])?;
    Ok(())
}

pub fn get(c: &Connection, org_id: &str, endpoint_id: &str) -> Result<Option<EndpointCheckRow>> {
    Ok(c.prepare_cached(&format!("SELECT {COLUMNS} FROM endpoint_check WHERE org_id = ?1 AND endpoint_id = ?2"))?
        .query_row(params![org_id, endpoint_id], row)
        .optional()?)
}

pub fn claim(c: &Connection, before: i64, now: i64, limit: usize) -> Result<Vec<EndpointCheckRow>> {
    let mut stmt = c.prepare_cached(&format!(
        "UPDATE endpoint_check SET checked_at = ?2 WHERE endpoint_id IN (
             SELECT endpoint_id FROM endpoint_check
             WHERE cert_not_after IS NOT NULL AND checked_at < ?1 ORDER BY checked_at LIMIT ?3)
         RETURNING {COLUMNS}"
    ))?;
    let rows = stmt.query_map(params![before, now, limit as i64], row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn mark_warned(c: &Connection, endpoint_id: &str, at: i64) -> Result<()> {
    c.execute("UPDATE endpoint_check SET warned_at = ?2 WHERE endpoint_id = ?1", params![endpoint_id, at])?;
    Ok(())
}

pub fn delete(c: &Connection, endpoint_id: &str) -> Result<()> {
    c.execute("DELETE FROM endpoint_check WHERE endpoint_id = ?1", params![endpoint_id])?;
    Ok(())
}
