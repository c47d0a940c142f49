//! MCP tokens ([`McpToken`]): an application's or the organisation's.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, QueryBuilder, Row};

use crate::model::{McpToken, Page};
use crate::{Result, StoreError};

const COLUMNS: &str = "id, org_id, app_id, token_hash, tail, read_only, created_at, expires_at";

fn row(r: &PgRow) -> std::result::Result<McpToken, sqlx::Error> {
    Ok(McpToken {
        id: r.try_get(0)?,
        org_id: r.try_get(1)?,
        app_id: r.try_get(2)?,
        token_hash: r.try_get(3)?,
        tail: r.try_get(4)?,
        read_only: r.try_get(5)?,
        created_at: r.try_get(6)?,
        expires_at: r.try_get(7)?,
    })
}

pub async fn insert(c: &mut PgConnection, t: &McpToken) -> Result<()> {
    sqlx::query(&format!("INSERT INTO mcp_token ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
        .bind(&t.id)
        .bind(&t.org_id)
        .bind(&t.app_id)
        .bind(&t.token_hash)
        .bind(&t.tail)
        .bind(t.read_only)
        .bind(t.created_at)
        .bind(t.expires_at)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn by_hash(c: &mut PgConnection, hash: &str) -> Result<Option<McpToken>> {
    let found = sqlx::query(&format!("SELECT {COLUMNS} FROM mcp_token WHERE token_hash = $1"))
        .bind(hash)
        .fetch_optional(c)
        .await?;
    Ok(found.as_ref().map(row).transpose()?)
}

pub async fn list(c: &mut PgConnection, org_id: &str, app_id: Option<&str>, page: &Page) -> Result<Vec<McpToken>> {
    // `IS NOT DISTINCT FROM` compares NULL (the dashboard's tokens) as equal.
    let mut q = QueryBuilder::new(format!("SELECT {COLUMNS} FROM mcp_token WHERE org_id = "));
    q.push_bind(org_id.to_string()).push(" AND app_id IS NOT DISTINCT FROM ").push_bind(app_id.map(str::to_string));
    super::rows::push_page(&mut q, page, "id");
    super::rows::collect(q.build().fetch_all(c).await?, row)
}

pub async fn delete(c: &mut PgConnection, org_id: &str, app_id: Option<&str>, id: &str) -> Result<()> {
    let n = sqlx::query("DELETE FROM mcp_token WHERE org_id = $1 AND app_id IS NOT DISTINCT FROM $2 AND id = $3")
        .bind(org_id)
        .bind(app_id)
        .bind(id)
        .execute(c)
        .await?;
    if n.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
