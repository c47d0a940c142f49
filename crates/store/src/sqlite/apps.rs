//! Applications.

use rusqlite::{params, Connection};

use super::rows::{self, APP_COLUMNS};
use crate::model::*;
use crate::{Result, StoreError};

pub fn list(c: &Connection, org_id: &str, page: &Page) -> Result<Vec<Application>> {
    let mut params: Vec<rusqlite::types::Value> = vec![org_id.to_string().into()];
    let sql =
        format!("SELECT {APP_COLUMNS} FROM application WHERE org_id = ?{}", rows::page_clause(page, "id", &mut params));
    rows::collect(&mut *c.prepare_cached(&sql)?, params, rows::app)
}

pub fn get(c: &Connection, org_id: &str, id_or_uid: &str) -> Result<Application> {
    Ok(c.prepare_cached(&format!(
        "SELECT {APP_COLUMNS} FROM application WHERE org_id = ?1 AND (id = ?2 OR uid = ?2) ORDER BY id = ?2 DESC LIMIT 1"
    ))?
    .query_row(params![org_id, id_or_uid], rows::app)?)
}

pub fn insert(c: &Connection, a: &Application) -> Result<()> {
    c.prepare_cached(&format!("INSERT INTO application ({APP_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"))?
        .execute(params![
            a.org_id,
            a.id,
            a.uid,
            a.name,
            a.rate_limit,
            rows::json(&a.metadata),
            a.created_at,
            a.updated_at
        ])
        .map_err(|e| uid_conflict(c, e, a))?;
    Ok(())
}

pub fn update(c: &Connection, a: &Application) -> Result<()> {
    let n = c
        .prepare_cached(
            "UPDATE application SET uid = ?3, name = ?4, rate_limit = ?5, metadata = ?6, updated_at = ?7
             WHERE org_id = ?1 AND id = ?2",
        )?
        .execute(params![a.org_id, a.id, a.uid, a.name, a.rate_limit, rows::json(&a.metadata), a.updated_at])
        .map_err(|e| uid_conflict(c, e, a))?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

fn uid_conflict(c: &Connection, e: rusqlite::Error, a: &Application) -> StoreError {
    match rows::unique_violation(e, "an application with this uid") {
        StoreError::Conflict { what, .. } => {
            let existing_id = a.uid.as_deref().and_then(|uid| get(c, &a.org_id, uid).ok()).map(|x| x.id);
            StoreError::Conflict { what, existing_id }
        }
        other => other,
    }
}

pub fn delete(c: &Connection, org_id: &str, app_id: &str) -> Result<()> {
    // Children first: attempts and deliveries reference messages and endpoints.
    for sql in [
        "DELETE FROM attempt WHERE org_id = ?1 AND app_id = ?2",
        "DELETE FROM delivery WHERE org_id = ?1 AND app_id = ?2",
        "DELETE FROM message WHERE org_id = ?1 AND app_id = ?2",
        "DELETE FROM endpoint WHERE org_id = ?1 AND app_id = ?2",
        "DELETE FROM api_token WHERE org_id = ?1 AND app_id = ?2",
        "DELETE FROM mcp_token WHERE org_id = ?1 AND app_id = ?2",
        "DELETE FROM background_task WHERE org_id = ?1 AND app_id = ?2",
    ] {
        c.execute(sql, params![org_id, app_id])?;
    }
    let n = c.execute("DELETE FROM application WHERE org_id = ?1 AND id = ?2", params![org_id, app_id])?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
