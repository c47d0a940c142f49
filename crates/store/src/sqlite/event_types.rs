//! Event types. Deleting archives; expunging removes.

use rusqlite::{params, Connection};

use super::rows::{self, EVENT_TYPE_COLUMNS};
use crate::model::*;
use crate::{Result, StoreError};

pub fn list(c: &Connection, org_id: &str, page: &Page, include_archived: bool) -> Result<Vec<EventType>> {
    let mut params: Vec<rusqlite::types::Value> = vec![org_id.to_string().into()];
    let archived = if include_archived { "" } else { " AND archived = 0" };
    let sql = format!(
        "SELECT {EVENT_TYPE_COLUMNS} FROM event_type WHERE org_id = ?{archived}{}",
        rows::page_clause(page, "name", &mut params)
    );
    rows::collect(&mut *c.prepare_cached(&sql)?, params, rows::event_type)
}

pub fn get(c: &Connection, org_id: &str, name: &str) -> Result<EventType> {
    Ok(c.prepare_cached(&format!("SELECT {EVENT_TYPE_COLUMNS} FROM event_type WHERE org_id = ?1 AND name = ?2"))?
        .query_row(params![org_id, name], rows::event_type)?)
}

pub fn insert(c: &Connection, e: &EventType) -> Result<()> {
    c.prepare_cached(&format!(
        "INSERT INTO event_type ({EVENT_TYPE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    ))?
    .execute(params![
        e.org_id,
        e.name,
        e.description,
        e.archived,
        e.deprecated,
        e.schemas,
        rows::json_opt(&e.feature_flags),
        e.group_name,
        e.created_at,
        e.updated_at,
        rows::json_opt(&e.retry_schedule_ms),
        e.validate_payloads
    ])
    .map_err(|err| rows::unique_violation(err, "an event type with this name"))?;
    Ok(())
}

pub fn update(c: &Connection, e: &EventType) -> Result<()> {
    let n = c
        .prepare_cached(
            "UPDATE event_type SET description = ?3, archived = ?4, deprecated = ?5, schemas = ?6,
             feature_flags = ?7, group_name = ?8, updated_at = ?9, validate_payloads = ?10 WHERE org_id = ?1 AND name = ?2",
        )?
        .execute(params![
            e.org_id,
            e.name,
            e.description,
            e.archived,
            e.deprecated,
            e.schemas,
            rows::json_opt(&e.feature_flags),
            e.group_name,
            e.updated_at,
            e.validate_payloads
        ])?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub fn delete(c: &Connection, org_id: &str, name: &str) -> Result<()> {
    let n = c.execute("DELETE FROM event_type WHERE org_id = ?1 AND name = ?2", params![org_id, name])?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Sets (or with `None` clears) the event type's retry schedule.
pub fn set_retry_schedule(c: &Connection, org_id: &str, name: &str, schedule: Option<&[u64]>, now: i64) -> Result<()> {
    let n = c
        .prepare_cached("UPDATE event_type SET retry_schedule = ?3, updated_at = ?4 WHERE org_id = ?1 AND name = ?2")?
        .execute(params![org_id, name, schedule.map(|s| rows::json(&s)), now])?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
