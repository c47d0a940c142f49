//! Connectors: named transformations endpoints may use.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, QueryBuilder, Row};

use super::rows;
use crate::model::*;
use crate::{Result, StoreError};

const COLUMNS: &str = "org_id, id, uid, spec, created_at, updated_at";

fn connector(r: &PgRow) -> sqlx::Result<Connector> {
    let spec: String = r.try_get(3)?;
    Ok(Connector {
        org_id: r.try_get(0)?,
        id: r.try_get(1)?,
        uid: r.try_get(2)?,
        spec: serde_json::from_str(&spec).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        created_at: r.try_get(4)?,
        updated_at: r.try_get(5)?,
    })
}

pub async fn list(c: &mut PgConnection, org_id: &str, page: &Page) -> Result<Vec<Connector>> {
    let mut q = QueryBuilder::new(format!("SELECT {COLUMNS} FROM connector WHERE org_id = "));
    q.push_bind(org_id);
    rows::push_page(&mut q, page, "id");
    Ok(q.build().fetch_all(c).await?.iter().map(connector).collect::<sqlx::Result<_>>()?)
}

pub async fn get(c: &mut PgConnection, org_id: &str, id_or_uid: &str) -> Result<Connector> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM connector WHERE org_id = $1 AND (id = $2 OR uid = $2) ORDER BY id = $2 DESC LIMIT 1"
    ))
    .bind(org_id)
    .bind(id_or_uid)
    .fetch_one(c)
    .await?;
    Ok(connector(&row)?)
}

pub async fn insert(c: &mut PgConnection, k: &Connector) -> Result<()> {
    sqlx::query(&format!("INSERT INTO connector ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"))
        .bind(&k.org_id)
        .bind(&k.id)
        .bind(&k.uid)
        .bind(rows::json(&k.spec))
        .bind(k.created_at)
        .bind(k.updated_at)
        .execute(c)
        .await
        .map_err(|e| rows::unique_violation(e, "a connector with this uid"))?;
    Ok(())
}

pub async fn update(c: &mut PgConnection, k: &Connector) -> Result<()> {
    let n = sqlx::query("UPDATE connector SET uid = $3, spec = $4, updated_at = $5 WHERE org_id = $1 AND id = $2")
        .bind(&k.org_id)
        .bind(&k.id)
        .bind(&k.uid)
        .bind(rows::json(&k.spec))
        .bind(k.updated_at)
        .execute(c)
        .await
        .map_err(|e| rows::unique_violation(e, "a connector with this uid"))?
        .rows_affected();
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub async fn delete(c: &mut PgConnection, org_id: &str, id: &str) -> Result<()> {
    let n = sqlx::query("DELETE FROM connector WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(c)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
