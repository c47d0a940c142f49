//! Endpoints, their secrets and headers (kept on the endpoint row), and stats.

use sqlx::{PgConnection, QueryBuilder, Row};

use super::owners::Holder;
use super::rows::{self, ENDPOINT_COLUMNS, ENDPOINT_COLUMN_COUNT};
use crate::model::*;
use crate::{Result, StoreError};

pub async fn list(c: &mut PgConnection, org_id: &str, app_id: &str, page: &Page) -> Result<Vec<Endpoint>> {
    let mut q = QueryBuilder::new(format!("SELECT {ENDPOINT_COLUMNS} FROM endpoint e WHERE e.org_id = "));
    q.push_bind(org_id).push(" AND e.app_id = ").push_bind(app_id);
    rows::push_page(&mut q, page, "e.id");
    rows::collect(q.build().fetch_all(c).await?, rows::endpoint)
}

/// Every endpoint of an application, for fan-out, with who holds its queue (read
/// without a lock: the caller decides from it whether it must take the queue).
pub async fn all_of_app(c: &mut PgConnection, org_id: &str, app_id: &str) -> Result<Vec<(Endpoint, Option<Holder>)>> {
    let rows = sqlx::query(&format!(
        "SELECT {ENDPOINT_COLUMNS}, o.owner, o.expires_at FROM endpoint e
         LEFT JOIN endpoint_owner o ON o.endpoint_id = e.id
         WHERE e.org_id = $1 AND e.app_id = $2 ORDER BY e.id"
    ))
    .bind(org_id)
    .bind(app_id)
    .fetch_all(c)
    .await?;
    rows::collect(rows, |r| {
        let owner: Option<String> = r.try_get(ENDPOINT_COLUMN_COUNT)?;
        let expires_at: Option<i64> = r.try_get(ENDPOINT_COLUMN_COUNT + 1)?;
        let holder = owner.zip(expires_at).map(|(owner, expires_at)| Holder { owner, expires_at });
        Ok((rows::endpoint(r)?, holder))
    })
}

pub async fn get(c: &mut PgConnection, org_id: &str, app_id: &str, id_or_uid: &str) -> Result<Endpoint> {
    let row = sqlx::query(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoint e WHERE e.org_id = $1 AND e.app_id = $2 AND (e.id = $3 OR e.uid = $3)
         ORDER BY e.id = $3 DESC LIMIT 1"
    ))
    .bind(org_id)
    .bind(app_id)
    .bind(id_or_uid)
    .fetch_one(c)
    .await?;
    Ok(rows::endpoint(&row)?)
}

const UID_TAKEN: &str = "an endpoint with this uid";

pub async fn insert(c: &mut PgConnection, e: &Endpoint) -> Result<()> {
    sqlx::query(
        "INSERT INTO endpoint (org_id, app_id, id, uid, url, description, version, disabled, event_types, channels,
         rate_limit, metadata, headers, secret, retired_secrets, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(&e.org_id)
    .bind(&e.app_id)
    .bind(&e.id)
    .bind(&e.uid)
    .bind(&e.url)
    .bind(&e.description)
    .bind(e.version)
    .bind(e.disabled)
    .bind(rows::json_opt(&e.event_types))
    .bind(rows::json_opt(&e.channels))
    .bind(rows::rate_limit_to_db(e.rate_limit))
    .bind(rows::json(&e.metadata))
    .bind(rows::json(&e.headers))
    .bind(rows::secret_to_db(&e.secret))
    .bind(rows::retired_to_db(&e.retired_secrets))
    .bind(e.created_at)
    .bind(e.updated_at)
    .execute(c)
    .await
    .map_err(|err| rows::unique_violation(err, UID_TAKEN))?;
    Ok(())
}

pub async fn update(c: &mut PgConnection, e: &Endpoint) -> Result<()> {
    let n = sqlx::query(
        "UPDATE endpoint SET uid = $4, url = $5, description = $6, version = $7, disabled = $8, event_types = $9,
         channels = $10, rate_limit = $11, metadata = $12, headers = $13, secret = $14, retired_secrets = $15,
         updated_at = $16
         WHERE org_id = $1 AND app_id = $2 AND id = $3",
    )
    .bind(&e.org_id)
    .bind(&e.app_id)
    .bind(&e.id)
    .bind(&e.uid)
    .bind(&e.url)
    .bind(&e.description)
    .bind(e.version)
    .bind(e.disabled)
    .bind(rows::json_opt(&e.event_types))
    .bind(rows::json_opt(&e.channels))
    .bind(rows::rate_limit_to_db(e.rate_limit))
    .bind(rows::json(&e.metadata))
    .bind(rows::json(&e.headers))
    .bind(rows::secret_to_db(&e.secret))
    .bind(rows::retired_to_db(&e.retired_secrets))
    .bind(e.updated_at)
    .execute(c)
    .await
    .map_err(|err| rows::unique_violation(err, UID_TAKEN))?;
    if n.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub async fn delete(c: &mut PgConnection, org_id: &str, app_id: &str, endpoint_id: &str) -> Result<()> {
    for sql in [
        "DELETE FROM attempt WHERE org_id = $1 AND endpoint_id = $2",
        "DELETE FROM delivery WHERE org_id = $1 AND endpoint_id = $2",
    ] {
        sqlx::query(sql).bind(org_id).bind(endpoint_id).execute(&mut *c).await?;
    }
    let n = sqlx::query("DELETE FROM endpoint WHERE org_id = $1 AND app_id = $2 AND id = $3")
        .bind(org_id)
        .bind(app_id)
        .bind(endpoint_id)
        .execute(&mut *c)
        .await?;
    if n.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub async fn stats(
    c: &mut PgConnection,
    org_id: &str,
    endpoint_id: &str,
    since: i64,
    until: i64,
) -> Result<EndpointStats> {
    let counts: Vec<(i16, i64)> = sqlx::query_as(
        "SELECT status, COUNT(*) FROM delivery
         WHERE org_id = $1 AND endpoint_id = $2 AND created_at >= $3 AND created_at < $4 GROUP BY status",
    )
    .bind(org_id)
    .bind(endpoint_id)
    .bind(since)
    .bind(until)
    .fetch_all(c)
    .await?;
    let mut out = EndpointStats::default();
    for (s, n) in counts {
        let n = n as u64;
        match i64::from(s) {
            status::SUCCESS => out.success += n,
            status::PENDING => out.pending += n,
            status::FAIL => out.fail += n,
            status::SENDING => out.sending += n,
            status::CANCELED => out.canceled += n,
            _ => {}
        }
    }
    Ok(out)
}
