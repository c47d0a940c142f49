//! Payload templates and their immutable versions.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::rows;
use crate::model::*;
use crate::{Result, StoreError};

const TEMPLATE_COLUMNS: &str = "org_id, id, uid, name, description, latest_version, created_at, updated_at";
const VERSION_COLUMNS: &str = "org_id, template_id, version, format, source, created_at";

fn template(r: &Row) -> rusqlite::Result<Template> {
    Ok(Template {
        org_id: r.get(0)?,
        id: r.get(1)?,
        uid: r.get(2)?,
        name: r.get(3)?,
        description: r.get(4)?,
        latest_version: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

fn version(r: &Row) -> rusqlite::Result<TemplateVersion> {
    Ok(TemplateVersion {
        org_id: r.get(0)?,
        template_id: r.get(1)?,
        version: r.get(2)?,
        format: r.get(3)?,
        source: r.get(4)?,
        created_at: r.get(5)?,
    })
}

pub fn list(c: &Connection, org_id: &str, page: &Page) -> Result<Vec<Template>> {
    let mut params: Vec<rusqlite::types::Value> = vec![org_id.to_string().into()];
    let sql = format!(
        "SELECT {TEMPLATE_COLUMNS} FROM template WHERE org_id = ?{}",
        rows::page_clause(page, "id", &mut params)
    );
    rows::collect(&mut *c.prepare_cached(&sql)?, params, template)
}

pub fn get(c: &Connection, org_id: &str, id_or_uid: &str) -> Result<Template> {
    Ok(c.prepare_cached(&format!(
        "SELECT {TEMPLATE_COLUMNS} FROM template WHERE org_id = ?1 AND (id = ?2 OR uid = ?2) ORDER BY id = ?2 DESC LIMIT 1"
    ))?
    .query_row(params![org_id, id_or_uid], template)?)
}

/// Inserts the template and its first version.
pub fn insert(c: &Connection, t: &Template, first: &TemplateVersion) -> Result<()> {
    c.prepare_cached(&format!("INSERT INTO template ({TEMPLATE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"))?
        .execute(params![t.org_id, t.id, t.uid, t.name, t.description, t.latest_version, t.created_at, t.updated_at])
        .map_err(|e| rows::unique_violation(e, "a template with this uid"))?;
    insert_version(c, first)
}

fn insert_version(c: &Connection, v: &TemplateVersion) -> Result<()> {
    c.prepare_cached(&format!("INSERT INTO template_version ({VERSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"))?
        .execute(params![v.org_id, v.template_id, v.version, v.format, v.source, v.created_at])?;
    Ok(())
}

pub fn update(c: &Connection, t: &Template) -> Result<()> {
    let n = c
        .prepare_cached(
            "UPDATE template SET uid = ?3, name = ?4, description = ?5, updated_at = ?6 WHERE org_id = ?1 AND id = ?2",
        )?
        .execute(params![t.org_id, t.id, t.uid, t.name, t.description, t.updated_at])
        .map_err(|e| rows::unique_violation(e, "a template with this uid"))?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Removes the template with its versions; refused while an endpoint renders with it.
pub fn delete(c: &Connection, org_id: &str, id: &str) -> Result<()> {
    let pinned: Option<String> = c
        .query_row(
            "SELECT id FROM endpoint WHERE org_id = ?1 AND control IS NOT NULL
             AND json_extract(control, '$.template.id') = ?2 LIMIT 1",
            params![org_id, id],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(endpoint_id) = pinned {
        return Err(StoreError::Conflict { what: "an endpoint using this template", existing_id: Some(endpoint_id) });
    }
    let n = c.execute("DELETE FROM template WHERE org_id = ?1 AND id = ?2", params![org_id, id])?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Adds the template's next version.
pub fn add_version(
    c: &Connection,
    org_id: &str,
    template_id: &str,
    format: &str,
    source: &str,
    now: i64,
) -> Result<TemplateVersion> {
    let next: u32 = c
        .prepare_cached(
            "UPDATE template SET latest_version = latest_version + 1, updated_at = ?3
             WHERE org_id = ?1 AND id = ?2 RETURNING latest_version",
        )?
        .query_row(params![org_id, template_id, now], |r| r.get(0))?;
    let v = TemplateVersion {
        org_id: org_id.to_string(),
        template_id: template_id.to_string(),
        version: next,
        format: format.to_string(),
        source: source.to_string(),
        created_at: now,
    };
    insert_version(c, &v)?;
    Ok(v)
}

/// Versions newest first, `limit` of them below `before` (a version number).
pub fn list_versions(
    c: &Connection,
    org_id: &str,
    template_id: &str,
    before: Option<u32>,
    limit: usize,
) -> Result<Vec<TemplateVersion>> {
    let sql = format!(
        "SELECT {VERSION_COLUMNS} FROM template_version WHERE org_id = ?1 AND template_id = ?2 AND version < ?3
         ORDER BY version DESC LIMIT ?4"
    );
    let rows = c
        .prepare_cached(&sql)?
        .query_map(params![org_id, template_id, before.unwrap_or(u32::MAX), limit as i64], version)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// One version; `None` is the latest.
pub fn get_version(c: &Connection, org_id: &str, template_id: &str, number: Option<u32>) -> Result<TemplateVersion> {
    let sql = format!(
        "SELECT {VERSION_COLUMNS} FROM template_version WHERE org_id = ?1 AND template_id = ?2
         AND version = COALESCE(?3, (SELECT latest_version FROM template WHERE org_id = ?1 AND id = ?2))"
    );
    Ok(c.prepare_cached(&sql)?.query_row(params![org_id, template_id, number], version)?)
}
