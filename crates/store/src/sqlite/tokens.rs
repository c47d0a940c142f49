//! Organisations, API tokens and idempotency records.

use rusqlite::{params, Connection, OptionalExtension};

use crate::model::*;
use crate::Result;

pub fn default_org(c: &Connection) -> Result<String> {
    let existing: Option<String> =
        c.query_row("SELECT id FROM organization WHERE is_default = 1", [], |r| r.get(0)).optional()?;
    if let Some(id) = existing {
        return Ok(id);
    }
    let id = hookd_core::new_id(hookd_core::IdPrefix::Organization);
    c.execute(
        "INSERT INTO organization (id, name, created_at, updated_at, is_default) VALUES (?1, 'default', ?2, ?2, 1)",
        params![id, hookd_core::timefmt::now_millis()],
    )?;
    Ok(id)
}

const TOKEN_COLUMNS: &str =
    "id, org_id, token_hash, app_id, created_at, expires_at, name, role, capabilities, session_id, tail";

pub fn insert_token(c: &Connection, t: &ApiToken) -> Result<()> {
    c.prepare_cached(&format!(
        "INSERT INTO api_token ({TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))?
    .execute(params![
        t.id,
        t.org_id,
        t.token_hash,
        t.app_id,
        t.created_at,
        t.expires_at,
        t.name,
        t.role.as_str(),
        t.capabilities.as_ref().map(|c| serde_json::to_string(c).unwrap_or_default()),
        t.session_id,
        t.tail
    ])?;
    Ok(())
}

fn token_row(r: &rusqlite::Row) -> rusqlite::Result<ApiToken> {
    let role: String = r.get(7)?;
    let capabilities: Option<String> = r.get(8)?;
    let app_id: Option<String> = r.get(3)?;
    let scoped = app_id.is_some();
    Ok(ApiToken {
        id: r.get(0)?,
        org_id: r.get(1)?,
        token_hash: r.get(2)?,
        app_id,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        name: r.get(6)?,
        // A token scoped to an application is a portal token whatever its row
        // says (a row written by an older version says `admin`); an unknown
        // role is a portal token too, which without an application is refused.
        role: if scoped { TokenRole::Portal } else { TokenRole::parse(&role).unwrap_or(TokenRole::Portal) },
        // Unreadable capabilities grant none; absent ones (older tokens) all.
        capabilities: capabilities.map(|c| serde_json::from_str(&c).unwrap_or_default()),
        session_id: r.get(9)?,
        tail: r.get(10)?,
    })
}

pub fn token_by_hash(c: &Connection, hash: &str) -> Result<Option<ApiToken>> {
    Ok(c.prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM api_token WHERE token_hash = ?1"))?
        .query_row([hash], token_row)
        .optional()?)
}

pub fn get_token(c: &Connection, id: &str) -> Result<ApiToken> {
    Ok(c.prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM api_token WHERE id = ?1"))?.query_row([id], token_row)?)
}

pub fn list_tokens(c: &Connection, org_id: Option<&str>, page: &Page) -> Result<Vec<ApiToken>> {
    let mut params: Vec<rusqlite::types::Value> = Vec::new();
    let mut sql = format!("SELECT {TOKEN_COLUMNS} FROM api_token WHERE role <> 'portal'");
    if let Some(org) = org_id {
        sql.push_str(" AND org_id = ?");
        params.push(org.to_string().into());
    }
    sql.push_str(&super::rows::page_clause(page, "id", &mut params));
    super::rows::collect(&mut *c.prepare_cached(&sql)?, params, token_row)
}

pub fn update_token(c: &Connection, t: &ApiToken) -> Result<()> {
    let n = c.execute(
        "UPDATE api_token SET name = ?2, role = ?3, expires_at = ?4 WHERE id = ?1",
        params![t.id, t.name, t.role.as_str(), t.expires_at],
    )?;
    if n == 0 {
        return Err(crate::StoreError::NotFound);
    }
    Ok(())
}

pub fn has_admin_token(c: &Connection, org_id: &str) -> Result<bool> {
    Ok(c.query_row("SELECT EXISTS(SELECT 1 FROM api_token WHERE org_id = ?1 AND role = 'server')", [org_id], |r| {
        r.get(0)
    })?)
}

const ORG_COLUMNS: &str = "id, name, env_type, created_at, updated_at, policy, encrypt_payloads";

/// The stored form of a policy: `NULL` when it narrows nothing.
pub fn policy_json(p: &hookd_core::policy::OrgPolicy) -> Option<String> {
    (!p.is_empty()).then(|| serde_json::to_string(p).unwrap_or_default())
}

fn org_row(r: &rusqlite::Row) -> rusqlite::Result<Organization> {
    let created_at: i64 = r.get(3)?;
    Ok(Organization {
        id: r.get(0)?,
        name: r.get(1)?,
        env_type: r.get(2)?,
        created_at,
        updated_at: r.get::<_, Option<i64>>(4)?.unwrap_or(created_at),
        policy: match r.get::<_, Option<String>>(5)? {
            None => Default::default(),
            // A policy this version cannot read must not become no policy.
            Some(p) => serde_json::from_str(&p).unwrap_or_else(|_| hookd_core::policy::OrgPolicy::unreadable()),
        },
        encrypt_payloads: r.get::<_, i64>(6)? != 0,
    })
}

pub fn list_orgs(c: &Connection, page: &Page) -> Result<Vec<Organization>> {
    let mut params: Vec<rusqlite::types::Value> = Vec::new();
    let sql = format!(
        "SELECT {ORG_COLUMNS} FROM organization WHERE 1 = 1{}",
        super::rows::page_clause(page, "id", &mut params)
    );
    super::rows::collect(&mut *c.prepare_cached(&sql)?, params, org_row)
}

pub fn get_org(c: &Connection, id: &str) -> Result<Organization> {
    Ok(c.prepare_cached(&format!("SELECT {ORG_COLUMNS} FROM organization WHERE id = ?1"))?.query_row([id], org_row)?)
}

pub fn get_portal_settings(c: &Connection, org_id: &str) -> Result<Option<String>> {
    Ok(c.prepare_cached("SELECT portal_settings FROM organization WHERE id = ?1")?.query_row([org_id], |r| r.get(0))?)
}

pub fn set_portal_settings(c: &Connection, org_id: &str, settings: Option<&str>) -> Result<()> {
    let n = c.execute("UPDATE organization SET portal_settings = ?2 WHERE id = ?1", params![org_id, settings])?;
    if n == 0 {
        return Err(crate::StoreError::NotFound);
    }
    Ok(())
}

pub fn insert_org(c: &Connection, o: &Organization) -> Result<()> {
    c.execute(
        &format!("INSERT INTO organization ({ORG_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
        params![
            o.id,
            o.name,
            o.env_type,
            o.created_at,
            o.updated_at,
            policy_json(&o.policy),
            i64::from(o.encrypt_payloads)
        ],
    )?;
    Ok(())
}

pub fn update_org(c: &Connection, o: &Organization) -> Result<()> {
    let n = c.execute(
        "UPDATE organization SET name = ?2, env_type = ?3, updated_at = ?4, policy = ?5, encrypt_payloads = ?6
         WHERE id = ?1",
        params![o.id, o.name, o.env_type, o.updated_at, policy_json(&o.policy), i64::from(o.encrypt_payloads)],
    )?;
    if n == 0 {
        return Err(crate::StoreError::NotFound);
    }
    Ok(())
}

pub fn delete_org(c: &Connection, id: &str) -> Result<()> {
    let ops = format!("{id}.operational");
    c.execute(
        "DELETE FROM endpoint_owner WHERE endpoint_id IN (SELECT id FROM endpoint WHERE org_id IN (?1, ?2))",
        params![id, ops],
    )?;
    for table in crate::ORG_TABLES {
        c.execute(&format!("DELETE FROM {table} WHERE org_id IN (?1, ?2)"), params![id, ops])?;
    }
    if c.execute("DELETE FROM organization WHERE id = ?1", [id])? == 0 {
        return Err(crate::StoreError::NotFound);
    }
    Ok(())
}

pub fn idempotency_lookup(
    c: &Connection,
    org_id: &str,
    key: &IdempotencyKey,
    now: i64,
) -> Result<Option<IdempotencyOutcome>> {
    Ok(c.prepare_cached(
        "SELECT request_hash, status, resource_id FROM idempotency
         WHERE org_id = ?1 AND method = ?2 AND path = ?3 AND key = ?4 AND expires_at > ?5",
    )?
    .query_row(params![org_id, key.method, key.path, key.key, now], |r| {
        Ok(IdempotencyOutcome { request_hash: r.get(0)?, status: r.get(1)?, resource_id: r.get(2)? })
    })
    .optional()?)
}

/// Stores the record; if the key was used meanwhile (another node, or a race on
/// this one), fails with the stored outcome so the whole write rolls back.
pub fn idempotency_insert(c: &Connection, rec: &IdempotencyRecord) -> Result<()> {
    let now = hookd_core::timefmt::now_millis();
    if let Some(prev) = idempotency_lookup(c, &rec.org_id, &rec.key, now)? {
        return Err(crate::StoreError::IdempotencyReplay(prev));
    }
    c.prepare_cached(
        "INSERT OR REPLACE INTO idempotency (org_id, method, path, key, request_hash, status, resource_id, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        rec.org_id,
        rec.key.method,
        rec.key.path,
        rec.key.key,
        rec.request_hash,
        rec.status,
        rec.resource_id,
        rec.expires_at
    ])?;
    Ok(())
}

pub fn maybe_idempotency(c: &Connection, rec: Option<&IdempotencyRecord>) -> Result<()> {
    match rec {
        Some(r) => idempotency_insert(c, r),
        None => Ok(()),
    }
}

pub fn expire_app_tokens(c: &Connection, org_id: &str, app_id: &str, at: i64, session_ids: &[String]) -> Result<u64> {
    let sessions = serde_json::to_string(session_ids).unwrap_or_default();
    let n = c.execute(
        "UPDATE api_token SET expires_at = ?3
         WHERE org_id = ?1 AND app_id = ?2 AND (expires_at IS NULL OR expires_at > ?3)
           AND (?4 = '[]' OR session_id IN (SELECT value FROM json_each(?4)))",
        params![org_id, app_id, at, sessions],
    )?;
    Ok(n as u64)
}
