//! Event types. Deleting archives; expunging removes.

use sqlx::{PgConnection, QueryBuilder};

use super::rows::{self, EVENT_TYPE_COLUMNS};
use crate::model::*;
use crate::{Result, StoreError};

pub async fn list(c: &mut PgConnection, org_id: &str, page: &Page, include_archived: bool) -> Result<Vec<EventType>> {
    let mut q = QueryBuilder::new(format!("SELECT {EVENT_TYPE_COLUMNS} FROM event_type WHERE org_id = "));
    q.push_bind(org_id);
    if !include_archived {
        q.push(" AND NOT archived");
    }
    rows::push_page(&mut q, page, "name");
    rows::collect(q.build().fetch_all(c).await?, rows::event_type)
}

pub async fn get(c: &mut PgConnection, org_id: &str, name: &str) -> Result<EventType> {
    let row = sqlx::query(&format!("SELECT {EVENT_TYPE_COLUMNS} FROM event_type WHERE org_id = $1 AND name = $2"))
        .bind(org_id)
        .bind(name)
        .fetch_one(c)
        .await?;
    Ok(rows::event_type(&row)?)
}

pub async fn insert(c: &mut PgConnection, e: &EventType) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO event_type ({EVENT_TYPE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(&e.org_id)
    .bind(&e.name)
    .bind(&e.description)
    .bind(e.archived)
    .bind(e.deprecated)
    .bind(&e.schemas)
    .bind(rows::json_opt(&e.feature_flags))
    .bind(&e.group_name)
    .bind(e.created_at)
    .bind(e.updated_at)
    .bind(rows::json_opt(&e.retry_schedule_ms))
    .bind(e.validate_payloads)
    .execute(c)
    .await
    .map_err(|err| rows::unique_violation(err, "an event type with this name"))?;
    Ok(())
}

pub async fn update(c: &mut PgConnection, e: &EventType) -> Result<()> {
    let n = sqlx::query(
        "UPDATE event_type SET description = $3, archived = $4, deprecated = $5, schemas = $6,
         feature_flags = $7, group_name = $8, updated_at = $9, validate_payloads = $10 WHERE org_id = $1 AND name = $2",
    )
    .bind(&e.org_id)
    .bind(&e.name)
    .bind(&e.description)
    .bind(e.archived)
    .bind(e.deprecated)
    .bind(&e.schemas)
    .bind(rows::json_opt(&e.feature_flags))
    .bind(&e.group_name)
    .bind(e.updated_at)
    .bind(e.validate_payloads)
    .execute(c)
    .await?;
    if n.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub async fn delete(c: &mut PgConnection, org_id: &str, name: &str) -> Result<()> {
    let n = sqlx::query("DELETE FROM event_type WHERE org_id = $1 AND name = $2")
        .bind(org_id)
        .bind(name)
        .execute(c)
        .await?;
    if n.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Sets (or with `None` clears) the event type's retry schedule.
pub async fn set_retry_schedule(
    c: &mut PgConnection,
    org_id: &str,
    name: &str,
    schedule: Option<&[u64]>,
    now: i64,
) -> Result<()> {
    let n = sqlx::query("UPDATE event_type SET retry_schedule = $3, updated_at = $4 WHERE org_id = $1 AND name = $2")
        .bind(org_id)
        .bind(name)
        .bind(schedule.map(|s| rows::json(&s)))
        .bind(now)
        .execute(c)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
