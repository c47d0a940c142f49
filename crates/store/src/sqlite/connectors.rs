//! Connectors: named transformations endpoints may use.

use rusqlite::{params, Connection, Row};

use super::rows;
use crate::model::*;
use crate::{Result, StoreError};

const COLUMNS: &str = "org_id, id, uid, spec, created_at, updated_at";

fn connector(r: &Row) -> rusqlite::Result<Connector> {
    let spec: String = r.get(3)?;
    Ok(Connector {
        org_id: r.get(0)?,
        id: r.get(1)?,
        uid: r.get(2)?,
        spec: serde_json::from_str(&spec)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e)))?,
        created_at: r.get(4)?,
        updated_at: r.get(5)?,
    })
}

pub fn list(c: &Connection, org_id: &str, page: &Page) -> Result<Vec<Connector>> {
    let mut params: Vec<rusqlite::types::Value> = vec![org_id.to_string().into()];
    let sql = format!("SELECT {COLUMNS} FROM connector WHERE org_id = ?{}", rows::page_clause(page, "id", &mut params));
    rows::collect(&mut *c.prepare_cached(&sql)?, params, connector)
}

pub fn get(c: &Connection, org_id: &str, id_or_uid: &str) -> Result<Connector> {
    Ok(c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM connector WHERE org_id = ?1 AND (id = ?2 OR uid = ?2) ORDER BY id = ?2 DESC LIMIT 1"
    ))?
    .query_row(params![org_id, id_or_uid], connector)?)
}

pub fn insert(c: &Connection, k: &Connector) -> Result<()> {
    c.prepare_cached(&format!("INSERT INTO connector ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"))?
        .execute(params![k.org_id, k.id, k.uid, rows::json(&k.spec), k.created_at, k.updated_at])
        .map_err(|e| rows::unique_violation(e, "a connector with this uid"))?;
    Ok(())
}

pub fn update(c: &Connection, k: &Connector) -> Result<()> {
    let n = c
        .prepare_cached("UPDATE connector SET uid = ?3, spec = ?4, updated_at = ?5 WHERE org_id = ?1 AND id = ?2")?
        .execute(params![k.org_id, k.id, k.uid, rows::json(&k.spec), k.updated_at])
        .map_err(|e| rows::unique_violation(e, "a connector with this uid"))?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub fn delete(c: &Connection, org_id: &str, id: &str) -> Result<()> {
    let n = c.execute("DELETE FROM connector WHERE org_id = ?1 AND id = ?2", params![org_id, id])?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
