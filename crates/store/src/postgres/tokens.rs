//! Organisations, API tokens and idempotency records.

use sqlx::{PgConnection, Row};

use crate::model::*;
use crate::{Result, StoreError};

/// Run inside a transaction: nodes starting at once create one default organisation.
pub async fn default_org(c: &mut PgConnection) -> Result<String> {
    const FIRST: &str = "SELECT id FROM organization ORDER BY created_at LIMIT 1";
    if let Some(id) = sqlx::query_scalar(FIRST).fetch_optional(&mut *c).await? {
        return Ok(id);
    }
    // Serialise the creators; the lock is released at commit.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(super::advisory_key("hookd:default_org"))
        .execute(&mut *c)
        .await?;
    if let Some(id) = sqlx::query_scalar(FIRST).fetch_optional(&mut *c).await? {
        return Ok(id);
    }
    let id = hookd_core::new_id(hookd_core::IdPrefix::Organization);
    sqlx::query("INSERT INTO organization (id, name, created_at) VALUES ($1, 'default', $2)")
        .bind(&id)
        .bind(hookd_core::timefmt::now_millis())
        .execute(&mut *c)
        .await?;
    Ok(id)
}

pub async fn insert_token(c: &mut PgConnection, t: &ApiToken) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_token (id, org_id, token_hash, app_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&t.id)
    .bind(&t.org_id)
    .bind(&t.token_hash)
    .bind(&t.app_id)
    .bind(t.created_at)
    .bind(t.expires_at)
    .execute(c)
    .await?;
    Ok(())
}

pub async fn token_by_hash(c: &mut PgConnection, hash: &str) -> Result<Option<ApiToken>> {
    let row = sqlx::query(
        "SELECT id, org_id, token_hash, app_id, created_at, expires_at FROM api_token WHERE token_hash = $1",
    )
    .bind(hash)
    .fetch_optional(c)
    .await?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(ApiToken {
        id: r.try_get(0)?,
        org_id: r.try_get(1)?,
        token_hash: r.try_get(2)?,
        app_id: r.try_get(3)?,
        created_at: r.try_get(4)?,
        expires_at: r.try_get(5)?,
    }))
}

pub async fn has_admin_token(c: &mut PgConnection, org_id: &str) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT EXISTS(SELECT 1 FROM api_token WHERE org_id = $1 AND app_id IS NULL)")
        .bind(org_id)
        .fetch_one(c)
        .await?)
}

pub async fn idempotency_lookup(
    c: &mut PgConnection,
    org_id: &str,
    key: &IdempotencyKey,
    now: i64,
) -> Result<Option<IdempotencyOutcome>> {
    let row = sqlx::query(
        "SELECT request_hash, status, resource_id FROM idempotency
         WHERE org_id = $1 AND method = $2 AND path = $3 AND key = $4 AND expires_at > $5",
    )
    .bind(org_id)
    .bind(&key.method)
    .bind(&key.path)
    .bind(&key.key)
    .bind(now)
    .fetch_optional(c)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let status: i32 = r.try_get(1)?;
    Ok(Some(IdempotencyOutcome {
        request_hash: r.try_get(0)?,
        status: u16::try_from(status).map_err(|e| StoreError::Internal(e.to_string()))?,
        resource_id: r.try_get(2)?,
    }))
}

/// Stores the record, replacing an expired one. If the key is live (used by a
/// request that committed first, here or on another node), fails with the stored
/// outcome so the whole transaction rolls back. A concurrent request with the same
/// key waits here on the row until the first commits or rolls back (decision 3).
pub async fn idempotency_insert(c: &mut PgConnection, rec: &IdempotencyRecord) -> Result<()> {
    let now = hookd_core::timefmt::now_millis();
    let stored = sqlx::query(
        "INSERT INTO idempotency (org_id, method, path, key, request_hash, status, resource_id, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (org_id, method, path, key) DO UPDATE SET request_hash = EXCLUDED.request_hash,
             status = EXCLUDED.status, resource_id = EXCLUDED.resource_id, expires_at = EXCLUDED.expires_at
         WHERE idempotency.expires_at <= $9
         RETURNING 1",
    )
    .bind(&rec.org_id)
    .bind(&rec.key.method)
    .bind(&rec.key.path)
    .bind(&rec.key.key)
    .bind(&rec.request_hash)
    .bind(i32::from(rec.status))
    .bind(&rec.resource_id)
    .bind(rec.expires_at)
    .bind(now)
    .fetch_optional(&mut *c)
    .await?;
    if stored.is_some() {
        return Ok(());
    }
    match idempotency_lookup(c, &rec.org_id, &rec.key, now).await? {
        Some(prev) => Err(StoreError::IdempotencyReplay(prev)),
        // It expired between the two statements: rare enough to ask for a retry.
        None => Err(StoreError::Unavailable("idempotency key changed concurrently; retry".into())),
    }
}

pub async fn maybe_idempotency(c: &mut PgConnection, rec: Option<&IdempotencyRecord>) -> Result<()> {
    match rec {
        Some(r) => idempotency_insert(c, r).await,
        None => Ok(()),
    }
}

pub async fn expire_app_tokens(c: &mut PgConnection, org_id: &str, app_id: &str, at: i64) -> Result<u64> {
    let n = sqlx::query(
        "UPDATE api_token SET expires_at = $3
         WHERE org_id = $1 AND app_id = $2 AND (expires_at IS NULL OR expires_at > $3)",
    )
    .bind(org_id)
    .bind(app_id)
    .bind(at)
    .execute(c)
    .await?;
    Ok(n.rows_affected())
}
