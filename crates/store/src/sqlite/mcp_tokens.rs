//! MCP tokens ([`McpToken`]): an application's or the organisation's.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::model::{McpToken, Page};
use crate::{Result, StoreError};

const COLUMNS: &str = "id, org_id, app_id, token_hash, tail, read_only, created_at, expires_at";

fn row(r: &Row) -> rusqlite::Result<McpToken> {
    Ok(McpToken {
        id: r.get(0)?,
        org_id: r.get(1)?,
        app_id: r.get(2)?,
        token_hash: r.get(3)?,
        tail: r.get(4)?,
        read_only: r.get::<_, i64>(5)? != 0,
        created_at: r.get(6)?,
        expires_at: r.get(7)?,
    })
}

pub fn insert(c: &Connection, t: &McpToken) -> Result<()> {
    c.prepare_cached(&format!("INSERT INTO mcp_token ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"))?.execute(
        params![t.id, t.org_id, t.app_id, t.token_hash, t.tail, i64::from(t.read_only), t.created_at, t.expires_at],
    )?;
    Ok(())
}

pub fn by_hash(c: &Connection, hash: &str) -> Result<Option<McpToken>> {
    Ok(c.prepare_cached(&format!("SELECT {COLUMNS} FROM mcp_token WHERE token_hash = ?1"))?
        .query_row([hash], row)
        .optional()?)
}

pub fn list(c: &Connection, org_id: &str, app_id: Option<&str>, page: &Page) -> Result<Vec<McpToken>> {
    // `IS` compares NULL (the dashboard's tokens) as equal.
    let mut params: Vec<rusqlite::types::Value> = vec![org_id.to_string().into(), app_id.map(str::to_string).into()];
    let sql = format!(
        "SELECT {COLUMNS} FROM mcp_token WHERE org_id = ? AND app_id IS ?{}",
        super::rows::page_clause(page, "id", &mut params)
    );
    super::rows::collect(&mut *c.prepare_cached(&sql)?, params, row)
}

pub fn delete(c: &Connection, org_id: &str, app_id: Option<&str>, id: &str) -> Result<()> {
    let n =
        c.execute("DELETE FROM mcp_token WHERE org_id = ?1 AND app_id IS ?2 AND id = ?3", params![org_id, app_id, id])?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
