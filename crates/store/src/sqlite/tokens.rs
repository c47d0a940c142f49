//! Organisations, API tokens and idempotency records.

use rusqlite::{params, Connection, OptionalExtension};

use crate::model::*;
use crate::Result;

pub fn default_org(c: &Connection) -> Result<String> {
    let existing: Option<String> =
        c.query_row("SELECT id FROM organization ORDER BY created_at LIMIT 1", [], |r| r.get(0)).optional()?;
    if let Some(id) = existing {
        return Ok(id);
    }
    let id = hookd_core::new_id(hookd_core::IdPrefix::Organization);
    c.execute(
        "INSERT INTO organization (id, name, created_at) VALUES (?1, 'default', ?2)",
        params![id, hookd_core::timefmt::now_millis()],
    )?;
    Ok(id)
}

pub fn insert_token(c: &Connection, t: &ApiToken) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO api_token (id, org_id, token_hash, app_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![t.id, t.org_id, t.token_hash, t.app_id, t.created_at, t.expires_at])?;
    Ok(())
}

pub fn token_by_hash(c: &Connection, hash: &str) -> Result<Option<ApiToken>> {
    Ok(c.prepare_cached(
        "SELECT id, org_id, token_hash, app_id, created_at, expires_at FROM api_token WHERE token_hash = ?1",
    )?
    .query_row([hash], |r| {
        Ok(ApiToken {
            id: r.get(0)?,
            org_id: r.get(1)?,
            token_hash: r.get(2)?,
            app_id: r.get(3)?,
            created_at: r.get(4)?,
            expires_at: r.get(5)?,
        })
    })
    .optional()?)
}

pub fn has_admin_token(c: &Connection, org_id: &str) -> Result<bool> {
    Ok(c.query_row("SELECT EXISTS(SELECT 1 FROM api_token WHERE org_id = ?1 AND app_id IS NULL)", [org_id], |r| {
        r.get(0)
    })?)
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

pub fn expire_app_tokens(c: &Connection, org_id: &str, app_id: &str, at: i64) -> Result<u64> {
    let n = c.execute(
        "UPDATE api_token SET expires_at = ?3
         WHERE org_id = ?1 AND app_id = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
        params![org_id, app_id, at],
    )?;
    Ok(n as u64)
}
