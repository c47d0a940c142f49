//! Organisations, API tokens and idempotency records.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, QueryBuilder, Row};

use crate::model::*;
use crate::{Result, StoreError};

/// Run inside a transaction: nodes starting at once create one default organisation.
pub async fn default_org(c: &mut PgConnection) -> Result<String> {
    const FIRST: &str = "SELECT id FROM organization WHERE is_default = 1";
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
    sqlx::query(
        "INSERT INTO organization (id, name, created_at, updated_at, is_default) VALUES ($1, 'default', $2, $2, 1)",
    )
    .bind(&id)
    .bind(hookd_core::timefmt::now_millis())
    .execute(&mut *c)
    .await?;
    Ok(id)
}

const TOKEN_COLUMNS: &str =
    "id, org_id, token_hash, app_id, created_at, expires_at, name, role, capabilities, session_id, tail";

pub async fn insert_token(c: &mut PgConnection, t: &ApiToken) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO api_token ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(&t.id)
    .bind(&t.org_id)
    .bind(&t.token_hash)
    .bind(&t.app_id)
    .bind(t.created_at)
    .bind(t.expires_at)
    .bind(&t.name)
    .bind(t.role.as_str())
    .bind(t.capabilities.as_ref().map(|c| serde_json::to_string(c).unwrap_or_default()))
    .bind(&t.session_id)
    .bind(&t.tail)
    .execute(c)
    .await?;
    Ok(())
}

fn token_row(r: &PgRow) -> std::result::Result<ApiToken, sqlx::Error> {
    let role: String = r.try_get(7)?;
    let capabilities: Option<String> = r.try_get(8)?;
    let app_id: Option<String> = r.try_get(3)?;
    let scoped = app_id.is_some();
    Ok(ApiToken {
        id: r.try_get(0)?,
        org_id: r.try_get(1)?,
        token_hash: r.try_get(2)?,
        app_id,
        created_at: r.try_get(4)?,
        expires_at: r.try_get(5)?,
        name: r.try_get(6)?,
        // A token scoped to an application is a portal token whatever its row
        // says (a row written by an older version says `admin`); an unknown
        // role is a portal token too, which without an application is refused.
        role: if scoped { TokenRole::Portal } else { TokenRole::parse(&role).unwrap_or(TokenRole::Portal) },
        // Unreadable capabilities grant none; absent ones (older tokens) all.
        capabilities: capabilities.map(|c| serde_json::from_str(&c).unwrap_or_default()),
        session_id: r.try_get(9)?,
        tail: r.try_get(10)?,
    })
}

pub async fn token_by_hash(c: &mut PgConnection, hash: &str) -> Result<Option<ApiToken>> {
    let row = sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM api_token WHERE token_hash = $1"))
        .bind(hash)
        .fetch_optional(c)
        .await?;
    Ok(row.as_ref().map(token_row).transpose()?)
}

pub async fn get_token(c: &mut PgConnection, id: &str) -> Result<ApiToken> {
    let row =
        sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM api_token WHERE id = $1")).bind(id).fetch_one(c).await?;
    Ok(token_row(&row)?)
}

pub async fn list_tokens(c: &mut PgConnection, org_id: Option<&str>, page: &Page) -> Result<Vec<ApiToken>> {
    let mut q = QueryBuilder::new(format!("SELECT {TOKEN_COLUMNS} FROM api_token WHERE role <> 'portal'"));
    if let Some(org) = org_id {
        q.push(" AND org_id = ").push_bind(org.to_string());
    }
    super::rows::push_page(&mut q, page, "id");
    super::rows::collect(q.build().fetch_all(c).await?, token_row)
}

pub async fn update_token(c: &mut PgConnection, t: &ApiToken) -> Result<()> {
    let n = sqlx::query("UPDATE api_token SET name = $2, role = $3, expires_at = $4 WHERE id = $1")
        .bind(&t.id)
        .bind(&t.name)
        .bind(t.role.as_str())
        .bind(t.expires_at)
        .execute(c)
        .await?;
    if n.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub async fn has_admin_token(c: &mut PgConnection, org_id: &str) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT EXISTS(SELECT 1 FROM api_token WHERE org_id = $1 AND role = 'server')")
        .bind(org_id)
        .fetch_one(c)
        .await?)
}

const ORG_COLUMNS: &str = "id, name, env_type, created_at, updated_at, policy, encrypt_payloads";

fn policy_json(p: &hookd_core::policy::OrgPolicy) -> Option<String> {
    (!p.is_empty()).then(|| serde_json::to_string(p).unwrap_or_default())
}

fn org_row(r: &PgRow) -> std::result::Result<Organization, sqlx::Error> {
    let created_at: i64 = r.try_get(3)?;
    Ok(Organization {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        env_type: r.try_get(2)?,
        created_at,
        updated_at: r.try_get::<Option<i64>, _>(4)?.unwrap_or(created_at),
        policy: match r.try_get::<Option<String>, _>(5)? {
            None => Default::default(),
            // A policy this version cannot read must not become no policy.
            Some(p) => serde_json::from_str(&p).unwrap_or_else(|_| hookd_core::policy::OrgPolicy::unreadable()),
        },
        encrypt_payloads: r.try_get::<i32, _>(6)? != 0,
    })
}

pub async fn list_orgs(c: &mut PgConnection, page: &Page) -> Result<Vec<Organization>> {
    let mut q = QueryBuilder::new(format!("SELECT {ORG_COLUMNS} FROM organization WHERE TRUE"));
    super::rows::push_page(&mut q, page, "id");
    super::rows::collect(q.build().fetch_all(c).await?, org_row)
}

pub async fn get_org(c: &mut PgConnection, id: &str) -> Result<Organization> {
    let row =
        sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM organization WHERE id = $1")).bind(id).fetch_one(c).await?;
    Ok(org_row(&row)?)
}

pub async fn get_portal_settings(c: &mut PgConnection, org_id: &str) -> Result<Option<String>> {
    let settings =
        sqlx::query_scalar("SELECT portal_settings FROM organization WHERE id = $1").bind(org_id).fetch_one(c).await?;
    Ok(settings)
}

pub async fn set_portal_settings(c: &mut PgConnection, org_id: &str, settings: Option<&str>) -> Result<()> {
    let done = sqlx::query("UPDATE organization SET portal_settings = $2 WHERE id = $1")
        .bind(org_id)
        .bind(settings)
        .execute(c)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub async fn insert_org(c: &mut PgConnection, o: &Organization) -> Result<()> {
    sqlx::query(&format!("INSERT INTO organization ({ORG_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"))
        .bind(&o.id)
        .bind(&o.name)
        .bind(&o.env_type)
        .bind(o.created_at)
        .bind(o.updated_at)
        .bind(policy_json(&o.policy))
        .bind(i32::from(o.encrypt_payloads))
        .execute(c)
        .await?;
    Ok(())
}

pub async fn update_org(c: &mut PgConnection, o: &Organization) -> Result<()> {
    let n = sqlx::query(
        "UPDATE organization SET name = $2, env_type = $3, updated_at = $4, policy = $5, encrypt_payloads = $6
         WHERE id = $1",
    )
    .bind(&o.id)
    .bind(&o.name)
    .bind(&o.env_type)
    .bind(o.updated_at)
    .bind(policy_json(&o.policy))
    .bind(i32::from(o.encrypt_payloads))
    .execute(c)
    .await?;
    if n.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Run inside a transaction. Children first, as `ORG_TABLES`.
pub async fn delete_org(c: &mut PgConnection, id: &str) -> Result<()> {
    let ops = format!("{id}.operational");
    sqlx::query("DELETE FROM endpoint_owner WHERE endpoint_id IN (SELECT id FROM endpoint WHERE org_id IN ($1, $2))")
        .bind(id)
        .bind(&ops)
        .execute(&mut *c)
        .await?;
    for table in crate::ORG_TABLES {
        sqlx::query(&format!("DELETE FROM {table} WHERE org_id IN ($1, $2)"))
            .bind(id)
            .bind(&ops)
            .execute(&mut *c)
            .await?;
    }
    let n = sqlx::query("DELETE FROM organization WHERE id = $1").bind(id).execute(&mut *c).await?;
    if n.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
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

pub async fn expire_app_tokens(
    c: &mut PgConnection,
    org_id: &str,
    app_id: &str,
    at: i64,
    session_ids: &[String],
) -> Result<u64> {
    let n = sqlx::query(
        "UPDATE api_token SET expires_at = $3
         WHERE org_id = $1 AND app_id = $2 AND (expires_at IS NULL OR expires_at > $3)
           AND (cardinality($4::text[]) = 0 OR session_id = ANY($4))",
    )
    .bind(org_id)
    .bind(app_id)
    .bind(at)
    .bind(session_ids)
    .execute(c)
    .await?;
    Ok(n.rows_affected())
}
