//! Endpoints, their secrets and headers (kept on the endpoint row), and stats.

use rusqlite::{params, Connection};

use super::rows::{self, ENDPOINT_COLUMNS};
use crate::model::*;
use crate::{Result, StoreError};

pub fn list(c: &Connection, org_id: &str, app_id: &str, page: &Page) -> Result<Vec<Endpoint>> {
    let mut params: Vec<rusqlite::types::Value> = vec![org_id.to_string().into(), app_id.to_string().into()];
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoint e WHERE e.org_id = ? AND e.app_id = ?{}",
        rows::page_clause(page, "e.id", &mut params)
    );
    rows::collect(&mut *c.prepare_cached(&sql)?, params, rows::endpoint)
}

/// Every endpoint of an application, for fan-out.
pub fn all_of_app(c: &Connection, org_id: &str, app_id: &str) -> Result<Vec<Endpoint>> {
    let mut stmt =
        c.prepare_cached(&format!("SELECT {ENDPOINT_COLUMNS} FROM endpoint e WHERE e.org_id = ?1 AND e.app_id = ?2"))?;
    let rows = stmt.query_map(params![org_id, app_id], rows::endpoint)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn get(c: &Connection, org_id: &str, app_id: &str, id_or_uid: &str) -> Result<Endpoint> {
    Ok(c.prepare_cached(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoint e WHERE e.org_id = ?1 AND e.app_id = ?2 AND (e.id = ?3 OR e.uid = ?3)
         ORDER BY e.id = ?3 DESC LIMIT 1"
    ))?
    .query_row(params![org_id, app_id, id_or_uid], rows::endpoint)?)
}

pub fn insert(c: &Connection, e: &Endpoint) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO endpoint (org_id, app_id, id, uid, url, description, version, disabled, event_types, channels,
         rate_limit, metadata, headers, secret, retired_secrets, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?
    .execute(params![
        e.org_id,
        e.app_id,
        e.id,
        e.uid,
        e.url,
        e.description,
        e.version,
        e.disabled,
        rows::json_opt(&e.event_types),
        rows::json_opt(&e.channels),
        e.rate_limit,
        rows::json(&e.metadata),
        rows::json(&e.headers),
        rows::secret_to_db(&e.secret),
        rows::retired_to_db(&e.retired_secrets),
        e.created_at,
        e.updated_at
    ])
    .map_err(|err| rows::unique_violation(err, "an endpoint with this uid"))?;
    Ok(())
}

pub fn update(c: &Connection, e: &Endpoint) -> Result<()> {
    let n = c
        .prepare_cached(
            "UPDATE endpoint SET uid = ?4, url = ?5, description = ?6, version = ?7, disabled = ?8, event_types = ?9,
             channels = ?10, rate_limit = ?11, metadata = ?12, headers = ?13, secret = ?14, retired_secrets = ?15,
             updated_at = ?16
             WHERE org_id = ?1 AND app_id = ?2 AND id = ?3",
        )?
        .execute(params![
            e.org_id,
            e.app_id,
            e.id,
            e.uid,
            e.url,
            e.description,
            e.version,
            e.disabled,
            rows::json_opt(&e.event_types),
            rows::json_opt(&e.channels),
            e.rate_limit,
            rows::json(&e.metadata),
            rows::json(&e.headers),
            rows::secret_to_db(&e.secret),
            rows::retired_to_db(&e.retired_secrets),
            e.updated_at
        ])
        .map_err(|err| rows::unique_violation(err, "an endpoint with this uid"))?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub fn delete(c: &Connection, org_id: &str, app_id: &str, endpoint_id: &str) -> Result<()> {
    c.execute("DELETE FROM attempt WHERE org_id = ?1 AND endpoint_id = ?2", params![org_id, endpoint_id])?;
    c.execute("DELETE FROM delivery WHERE org_id = ?1 AND endpoint_id = ?2", params![org_id, endpoint_id])?;
    let n = c.execute(
        "DELETE FROM endpoint WHERE org_id = ?1 AND app_id = ?2 AND id = ?3",
        params![org_id, app_id, endpoint_id],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub fn stats(c: &Connection, org_id: &str, endpoint_id: &str, since: i64, until: i64) -> Result<EndpointStats> {
    let mut stmt = c.prepare_cached(
        "SELECT status, COUNT(*) FROM delivery
         WHERE org_id = ?1 AND endpoint_id = ?2 AND created_at >= ?3 AND created_at < ?4 GROUP BY status",
    )?;
    let mut rows = stmt.query(params![org_id, endpoint_id, since, until])?;
    let mut out = EndpointStats::default();
    while let Some(r) = rows.next()? {
        let n: i64 = r.get(1)?;
        let n = n as u64;
        match r.get::<_, i64>(0)? {
            status::SUCCESS => out.success += n,
            status::PENDING => out.pending += n,
            status::FAIL => out.fail += n,
            status::SENDING => out.sending += n,
            status::CANCELED => out.canceled += n,
            _ => {}
        }
    }
    Ok(out)
}
