//! Payload templates and their immutable versions.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, QueryBuilder, Row};

use super::rows;
use crate::model::*;
use crate::{Result, StoreError};

const TEMPLATE_COLUMNS: &str = "org_id, id, uid, name, description, latest_version, created_at, updated_at";
const VERSION_COLUMNS: &str = "org_id, template_id, version, format, source, created_at";

fn template(r: &PgRow) -> sqlx::Result<Template> {
    Ok(Template {
        org_id: r.try_get(0)?,
        id: r.try_get(1)?,
        uid: r.try_get(2)?,
        name: r.try_get(3)?,
        description: r.try_get(4)?,
        latest_version: r.try_get::<i32, _>(5)? as u32,
        created_at: r.try_get(6)?,
        updated_at: r.try_get(7)?,
    })
}

fn version(r: &PgRow) -> sqlx::Result<TemplateVersion> {
    Ok(TemplateVersion {
        org_id: r.try_get(0)?,
        template_id: r.try_get(1)?,
        version: r.try_get::<i32, _>(2)? as u32,
        format: r.try_get(3)?,
        source: r.try_get(4)?,
        created_at: r.try_get(5)?,
    })
}

pub async fn list(c: &mut PgConnection, org_id: &str, page: &Page) -> Result<Vec<Template>> {
    let mut q = QueryBuilder::new(format!("SELECT {TEMPLATE_COLUMNS} FROM template WHERE org_id = "));
    q.push_bind(org_id);
    rows::push_page(&mut q, page, "id");
    Ok(q.build().fetch_all(c).await?.iter().map(template).collect::<sqlx::Result<_>>()?)
}

pub async fn get(c: &mut PgConnection, org_id: &str, id_or_uid: &str) -> Result<Template> {
    let row = sqlx::query(&format!(
        "SELECT {TEMPLATE_COLUMNS} FROM template WHERE org_id = $1 AND (id = $2 OR uid = $2)
         ORDER BY id = $2 DESC LIMIT 1"
    ))
    .bind(org_id)
    .bind(id_or_uid)
    .fetch_one(c)
    .await?;
    Ok(template(&row)?)
}

/// Inserts the template and its first version (run in a transaction).
pub async fn insert(c: &mut PgConnection, t: &Template, first: &TemplateVersion) -> Result<()> {
    sqlx::query(&format!("INSERT INTO template ({TEMPLATE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
        .bind(&t.org_id)
        .bind(&t.id)
        .bind(&t.uid)
        .bind(&t.name)
        .bind(&t.description)
        .bind(t.latest_version as i32)
        .bind(t.created_at)
        .bind(t.updated_at)
        .execute(&mut *c)
        .await
        .map_err(|e| rows::unique_violation(e, "a template with this uid"))?;
    insert_version(c, first).await
}

async fn insert_version(c: &mut PgConnection, v: &TemplateVersion) -> Result<()> {
    sqlx::query(&format!("INSERT INTO template_version ({VERSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"))
        .bind(&v.org_id)
        .bind(&v.template_id)
        .bind(v.version as i32)
        .bind(&v.format)
        .bind(&v.source)
        .bind(v.created_at)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn update(c: &mut PgConnection, t: &Template) -> Result<()> {
    let n = sqlx::query(
        "UPDATE template SET uid = $3, name = $4, description = $5, updated_at = $6 WHERE org_id = $1 AND id = $2",
    )
    .bind(&t.org_id)
    .bind(&t.id)
    .bind(&t.uid)
    .bind(&t.name)
    .bind(&t.description)
    .bind(t.updated_at)
    .execute(c)
    .await
    .map_err(|e| rows::unique_violation(e, "a template with this uid"))?
    .rows_affected();
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Removes the template with its versions; refused while an endpoint renders with it.
pub async fn delete(c: &mut PgConnection, org_id: &str, id: &str) -> Result<()> {
    let pinned: Option<String> = sqlx::query_scalar(
        "SELECT id FROM endpoint WHERE org_id = $1 AND control IS NOT NULL
         AND control::jsonb -> 'template' ->> 'id' = $2 LIMIT 1",
    )
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut *c)
    .await?;
    if let Some(endpoint_id) = pinned {
        return Err(StoreError::Conflict { what: "an endpoint using this template", existing_id: Some(endpoint_id) });
    }
    let n = sqlx::query("DELETE FROM template WHERE org_id = $1 AND id = $2")
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

/// Adds the template's next version (run in a transaction: the row lock on
/// the template serialises concurrent additions).
pub async fn add_version(
    c: &mut PgConnection,
    org_id: &str,
    template_id: &str,
    format: &str,
    source: &str,
    now: i64,
) -> Result<TemplateVersion> {
    let next: i32 = sqlx::query_scalar(
        "UPDATE template SET latest_version = latest_version + 1, updated_at = $3
         WHERE org_id = $1 AND id = $2 RETURNING latest_version",
    )
    .bind(org_id)
    .bind(template_id)
    .bind(now)
    .fetch_one(&mut *c)
    .await?;
    let v = TemplateVersion {
        org_id: org_id.to_string(),
        template_id: template_id.to_string(),
        version: next as u32,
        format: format.to_string(),
        source: source.to_string(),
        created_at: now,
    };
    insert_version(c, &v).await?;
    Ok(v)
}

/// Versions newest first, `limit` of them below `before` (a version number).
pub async fn list_versions(
    c: &mut PgConnection,
    org_id: &str,
    template_id: &str,
    before: Option<u32>,
    limit: usize,
) -> Result<Vec<TemplateVersion>> {
    let rows = sqlx::query(&format!(
        "SELECT {VERSION_COLUMNS} FROM template_version WHERE org_id = $1 AND template_id = $2 AND version < $3
         ORDER BY version DESC LIMIT $4"
    ))
    .bind(org_id)
    .bind(template_id)
    .bind(before.map(|b| b as i64).unwrap_or(i64::from(i32::MAX)))
    .bind(limit as i64)
    .fetch_all(c)
    .await?;
    Ok(rows.iter().map(version).collect::<sqlx::Result<_>>()?)
}

/// One version; `None` is the latest.
pub async fn get_version(
    c: &mut PgConnection,
    org_id: &str,
    template_id: &str,
    number: Option<u32>,
) -> Result<TemplateVersion> {
    let row = sqlx::query(&format!(
        "SELECT {VERSION_COLUMNS} FROM template_version WHERE org_id = $1 AND template_id = $2
         AND version = COALESCE($3, (SELECT latest_version FROM template WHERE org_id = $1 AND id = $2))"
    ))
    .bind(org_id)
    .bind(template_id)
    .bind(number.map(|n| n as i32))
    .fetch_one(c)
    .await?;
    Ok(version(&row)?)
}
