//! Applications.

use sqlx::{PgConnection, PgPool, QueryBuilder};

use super::rows::{self, APP_COLUMNS};
use crate::model::*;
use crate::{Result, StoreError};

pub async fn list(c: &mut PgConnection, org_id: &str, page: &Page) -> Result<Vec<Application>> {
    let mut q = QueryBuilder::new(format!("SELECT {APP_COLUMNS} FROM application WHERE org_id = "));
    q.push_bind(org_id);
    rows::push_page(&mut q, page, "id");
    rows::collect(q.build().fetch_all(c).await?, rows::app)
}

pub async fn get(c: &mut PgConnection, org_id: &str, id_or_uid: &str) -> Result<Application> {
    let row = sqlx::query(&format!(
        "SELECT {APP_COLUMNS} FROM application WHERE org_id = $1 AND (id = $2 OR uid = $2)
         ORDER BY id = $2 DESC LIMIT 1"
    ))
    .bind(org_id)
    .bind(id_or_uid)
    .fetch_one(c)
    .await?;
    Ok(rows::app(&row)?)
}

const UID_TAKEN: &str = "an application with this uid";

pub async fn insert(c: &mut PgConnection, a: &Application) -> Result<()> {
    sqlx::query(&format!("INSERT INTO application ({APP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
        .bind(&a.org_id)
        .bind(&a.id)
        .bind(&a.uid)
        .bind(&a.name)
        .bind(rows::rate_limit_to_db(a.rate_limit))
        .bind(rows::json(&a.metadata))
        .bind(a.created_at)
        .bind(a.updated_at)
        .execute(c)
        .await
        .map_err(|e| rows::unique_violation(e, UID_TAKEN))?;
    Ok(())
}

pub async fn update(c: &mut PgConnection, a: &Application) -> Result<()> {
    let n = sqlx::query(
        "UPDATE application SET uid = $3, name = $4, rate_limit = $5, metadata = $6, updated_at = $7
         WHERE org_id = $1 AND id = $2",
    )
    .bind(&a.org_id)
    .bind(&a.id)
    .bind(&a.uid)
    .bind(&a.name)
    .bind(rows::rate_limit_to_db(a.rate_limit))
    .bind(rows::json(&a.metadata))
    .bind(a.updated_at)
    .execute(c)
    .await
    .map_err(|e| rows::unique_violation(e, UID_TAKEN))?;
    if n.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Names the application that holds the uid in a conflict. Runs after the failed
/// transaction rolled back (it can run no more queries), on a fresh connection.
pub async fn uid_conflict(pool: &PgPool, e: StoreError, a: &Application) -> StoreError {
    let StoreError::Conflict { what, .. } = e else { return e };
    let existing_id = match &a.uid {
        Some(uid) => match pool.acquire().await {
            Ok(mut c) => get(&mut c, &a.org_id, uid).await.ok().map(|x| x.id),
            Err(_) => None,
        },
        None => None,
    };
    StoreError::Conflict { what, existing_id }
}

pub async fn delete(c: &mut PgConnection, org_id: &str, app_id: &str) -> Result<()> {
    // Children first, as in SQLite (the foreign keys would cascade anyway).
    for sql in [
        "DELETE FROM attempt WHERE org_id = $1 AND app_id = $2",
        "DELETE FROM delivery WHERE org_id = $1 AND app_id = $2",
        "DELETE FROM message WHERE org_id = $1 AND app_id = $2",
        "DELETE FROM endpoint WHERE org_id = $1 AND app_id = $2",
        "DELETE FROM api_token WHERE org_id = $1 AND app_id = $2",
        "DELETE FROM mcp_token WHERE org_id = $1 AND app_id = $2",
        "DELETE FROM background_task WHERE org_id = $1 AND app_id = $2",
    ] {
        sqlx::query(sql).bind(org_id).bind(app_id).execute(&mut *c).await?;
    }
    let n = sqlx::query("DELETE FROM application WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(app_id)
        .execute(&mut *c)
        .await?;
    if n.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
