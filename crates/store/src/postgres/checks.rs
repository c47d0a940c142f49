//! Endpoint checks.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::rows;
use crate::checks::EndpointCheckRow;
use crate::Result;

const COLUMNS: &str = "org_id, app_id, endpoint_id, result, cert_not_after, checked_at, warned_at";

fn row(r: &PgRow) -> sqlx::Result<EndpointCheckRow> {
    Ok(EndpointCheckRow {
        org_id: r.try_get(0)?,
        app_id: r.try_get(1)?,
        endpoint_id: r.try_get(2)?,
        result: r.try_get(3)?,
        cert_not_after: r.try_get(4)?,
        checked_at: r.try_get(5)?,
        warned_at: r.try_get(6)?,
    })
}

pub async fn put(c: &mut PgConnection, x: &EndpointCheckRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO endpoint_check (org_id, app_id, endpoint_id, result, cert_not_after, checked_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (endpoint_id) DO UPDATE SET result = EXCLUDED.result,
             cert_not_after = COALESCE(EXCLUDED.cert_not_after, endpoint_check.cert_not_after), checked_at = EXCLUDED.checked_at",
    )
    .bind(&x.org_id)
    .bind(&x.app_id)
    .bind(&x.endpoint_id)
    .bind(&x.result)
    .bind(x.cert_not_after)
    .bind(x.checked_at)
    .execute(c)
    .await?;
    Ok(())
}

pub async fn get(c: &mut PgConnection, org_id: &str, endpoint_id: &str) -> Result<Option<EndpointCheckRow>> {
    let found = sqlx::query(&format!("SELECT {COLUMNS} FROM endpoint_check WHERE org_id = $1 AND endpoint_id = $2"))
        .bind(org_id)
        .bind(endpoint_id)
        .fetch_optional(c)
        .await?;
    Ok(found.as_ref().map(row).transpose()?)
}

pub async fn claim(c: &mut PgConnection, before: i64, now: i64, limit: usize) -> Result<Vec<EndpointCheckRow>> {
    let found = sqlx::query(&format!(
        "UPDATE endpoint_check SET checked_at = $2 WHERE endpoint_id IN (
             SELECT endpoint_id FROM endpoint_check
             WHERE cert_not_after IS NOT NULL AND checked_at < $1 ORDER BY checked_at LIMIT $3
             FOR UPDATE SKIP LOCKED)
         RETURNING {COLUMNS}"
    ))
    .bind(before)
    .bind(now)
    .bind(limit as i64)
    .fetch_all(c)
    .await?;
    rows::collect(found, row)
}

pub async fn mark_warned(c: &mut PgConnection, endpoint_id: &str, at: i64) -> Result<()> {
    sqlx::query("UPDATE endpoint_check SET warned_at = $2 WHERE endpoint_id = $1")
        .bind(endpoint_id)
        .bind(at)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn delete(c: &mut PgConnection, endpoint_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM endpoint_check WHERE endpoint_id = $1").bind(endpoint_id).execute(c).await?;
    Ok(())
}
