//! Endpoints, their secrets and headers (kept on the endpoint row), and stats.

use sqlx::{PgConnection, QueryBuilder, Row};

use hookd_core::DeliveryState;

use super::owners::Holder;
use super::rows::{self, ENDPOINT_COLUMNS, ENDPOINT_COLUMN_COUNT};
use super::{deliveries, ordering};
use crate::change::{Columns, EndpointChange, EndpointUpdated};
use crate::model::*;
use crate::{states, Result, StoreError};

pub async fn list(c: &mut PgConnection, org_id: &str, app_id: &str, page: &Page) -> Result<Vec<Endpoint>> {
    let mut q = QueryBuilder::new(format!("SELECT {ENDPOINT_COLUMNS} FROM endpoint e WHERE e.org_id = "));
    q.push_bind(org_id).push(" AND e.app_id = ").push_bind(app_id);
    rows::push_page(&mut q, page, "e.id");
    rows::collect(q.build().fetch_all(c).await?, rows::endpoint)
}

/// Every endpoint of an application, for fan-out, with who holds its queue (read
/// without a lock: the caller decides from it whether it must take the queue),
/// and the database's time of the read.
pub async fn all_of_app(
    c: &mut PgConnection,
    org_id: &str,
    app_id: &str,
) -> Result<(Vec<(Endpoint, Option<Holder>)>, i64)> {
    let rows = sqlx::query(&format!(
        "SELECT {ENDPOINT_COLUMNS}, o.owner, o.expires_at, hookd_now_ms() FROM endpoint e
         LEFT JOIN endpoint_owner o ON o.endpoint_id = e.id
         WHERE e.org_id = $1 AND e.app_id = $2 ORDER BY e.id"
    ))
    .bind(org_id)
    .bind(app_id)
    .fetch_all(&mut *c)
    .await?;
    let now = match rows.first() {
        Some(r) => r.try_get(ENDPOINT_COLUMN_COUNT + 2)?,
        None => 0,
    };
    let endpoints = rows::collect(rows, |r| {
        let owner: Option<String> = r.try_get(ENDPOINT_COLUMN_COUNT)?;
        let expires_at: Option<i64> = r.try_get(ENDPOINT_COLUMN_COUNT + 1)?;
        let holder = owner.zip(expires_at).map(|(owner, expires_at)| Holder { owner, expires_at });
        Ok((rows::endpoint(r)?, holder))
    })?;
    Ok((endpoints, now))
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
         rate_limit, metadata, headers, secret, retired_secrets, created_at, updated_at, revision, control, auth)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
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
    .bind(rows::headers_to_db(&e.id, &e.headers))
    .bind(rows::secret_to_db(&e.id, &e.secret))
    .bind(rows::retired_to_db(&e.id, &e.retired_secrets))
    .bind(e.created_at)
    .bind(e.updated_at)
    .bind(e.revision)
    .bind(control_to_db(&e.control))
    .bind(crate::codec::auth_to_db(&e.id, &e.auth))
    .execute(c)
    .await
    .map_err(|err| rows::unique_violation(err, UID_TAKEN))?;
    Ok(())
}

/// Applies `change` to the endpoint as stored (its row locked until the
/// transaction ends; `NO KEY UPDATE`, so inserts of deliveries and attempts,
/// whose foreign keys only need the key to stay, do not wait) and writes the
/// columns it owns; pauses or resumes its
/// deliveries when `disabled` flips. Run inside a transaction.
pub async fn update(
    c: &mut PgConnection,
    org_id: &str,
    app_id: &str,
    endpoint_id: &str,
    change: &EndpointChange,
    now: i64,
) -> Result<EndpointUpdated> {
    let row = sqlx::query(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoint e WHERE e.org_id = $1 AND e.app_id = $2 AND e.id = $3
         FOR NO KEY UPDATE"
    ))
    .bind(org_id)
    .bind(app_id)
    .bind(endpoint_id)
    .fetch_one(&mut *c)
    .await?;
    let mut ep = rows::endpoint(&row)?;
    let was_disabled = ep.disabled;
    let ordering_before = ep.control.ordering.clone();
    change.apply(&mut ep, now)?;
    match change.columns() {
        Columns::Settings => {
            sqlx::query(
                "UPDATE endpoint SET uid = $2, url = $3, description = $4, version = $5, disabled = $6,
                     event_types = $7, channels = $8, rate_limit = $9, metadata = $10, updated_at = $11,
                     revision = $12, control = $13
                 WHERE id = $1",
            )
            .bind(&ep.id)
            .bind(&ep.uid)
            .bind(&ep.url)
            .bind(&ep.description)
            .bind(ep.version)
            .bind(ep.disabled)
            .bind(rows::json_opt(&ep.event_types))
            .bind(rows::json_opt(&ep.channels))
            .bind(rows::rate_limit_to_db(ep.rate_limit))
            .bind(rows::json(&ep.metadata))
            .bind(ep.updated_at)
            .bind(ep.revision)
            .bind(control_to_db(&ep.control))
            .execute(&mut *c)
            .await
            .map_err(|err| rows::unique_violation(err, UID_TAKEN))?;
        }
        Columns::Auth => {
            sqlx::query("UPDATE endpoint SET auth = $2, updated_at = $3, revision = $4 WHERE id = $1")
                .bind(&ep.id)
                .bind(crate::codec::auth_to_db(&ep.id, &ep.auth))
                .bind(ep.updated_at)
                .bind(ep.revision)
                .execute(&mut *c)
                .await?;
        }
        Columns::Headers => {
            sqlx::query("UPDATE endpoint SET headers = $2, updated_at = $3, revision = $4 WHERE id = $1")
                .bind(&ep.id)
                .bind(rows::headers_to_db(&ep.id, &ep.headers))
                .bind(ep.updated_at)
                .bind(ep.revision)
                .execute(&mut *c)
                .await?;
        }
        Columns::Secrets => {
            sqlx::query(
                "UPDATE endpoint SET secret = $2, retired_secrets = $3, updated_at = $4, revision = $5 WHERE id = $1",
            )
            .bind(&ep.id)
            .bind(rows::secret_to_db(&ep.id, &ep.secret))
            .bind(rows::retired_to_db(&ep.id, &ep.retired_secrets))
            .bind(ep.updated_at)
            .bind(ep.revision)
            .execute(&mut *c)
            .await?;
        }
    }
    // New keys (or none): what waits is released. A new `onFailure` keeps them.
    let key = |o: &Option<hookd_core::ordering::Ordering>| o.as_ref().map(|o| o.key.clone());
    if ordering_before.is_some() && key(&ordering_before) != key(&ep.control.ordering) {
        ordering::unorder_endpoint(c, &ep.id).await?;
    }
    let (mut paused, mut resumed) = (0, 0);
    match (was_disabled, ep.disabled) {
        (false, true) => paused = deliveries::pause_endpoint(c, &ep.id).await?,
        (true, false) => {
            resumed = deliveries::resume_endpoint(&mut *c, &ep.id).await?;
            // Enabled afresh: its breaker and failing-since start over.
            sqlx::query("UPDATE endpoint SET health = NULL WHERE id = $1").bind(&ep.id).execute(&mut *c).await?;
            ep.health = None;
        }
        _ => {}
    }
    Ok(EndpointUpdated { endpoint: ep, was_disabled, paused, resumed })
}

/// Endpoints among `known` (id, revision) whose revision moved.
pub async fn changed(c: &mut PgConnection, known: &[(String, i64)]) -> Result<Vec<Endpoint>> {
    let ids: Vec<&str> = known.iter().map(|(id, _)| id.as_str()).collect();
    let revisions: Vec<i64> = known.iter().map(|(_, r)| *r).collect();
    let rows = sqlx::query(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoint e
         JOIN unnest($1::text[], $2::bigint[]) AS k(id, revision) ON k.id = e.id
         WHERE e.revision <> k.revision"
    ))
    .bind(&ids)
    .bind(&revisions)
    .fetch_all(c)
    .await?;
    rows::collect(rows, rows::endpoint)
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
    let counts: Vec<(String, bool, i64)> = sqlx::query_as(
        "SELECT state, attempts > 0, COUNT(*) FROM delivery
         WHERE org_id = $1 AND endpoint_id = $2 AND created_at >= $3 AND created_at < $4 GROUP BY 1, 2",
    )
    .bind(org_id)
    .bind(endpoint_id)
    .bind(since)
    .bind(until)
    .fetch_all(c)
    .await?;
    let mut out = EndpointStats::default();
    for (state, attempted, n) in counts {
        let state = DeliveryState::parse(&state)
            .ok_or_else(|| StoreError::Internal(format!("unknown delivery state `{state}`")))?;
        states::count(&mut out, state, attempted, n as u64);
    }
    Ok(out)
}

fn control_to_db(control: &DeliveryControl) -> Option<String> {
    (!control.is_default()).then(|| rows::json(control))
}

/// Writes what the delivering node reports of the endpoint's health; leaves
/// `revision` alone (nothing a node holds changes with it).
pub async fn set_health(c: &mut PgConnection, endpoint_id: &str, health: &EndpointHealth) -> Result<()> {
    // The row is locked until the end: two reports cannot both see the old state.
    let before: Option<(String, Option<String>)> =
        sqlx::query_as("SELECT org_id, health::text FROM endpoint WHERE id = $1 FOR UPDATE")
            .bind(endpoint_id)
            .fetch_optional(&mut *c)
            .await?;
    sqlx::query("UPDATE endpoint SET health = $2 WHERE id = $1")
        .bind(endpoint_id)
        .bind(rows::json(health))
        .execute(&mut *c)
        .await?;
    // A change of state goes into the endpoint's health history.
    let Some((org_id, before)) = before else { return Ok(()) };
    let before: Option<EndpointHealth> = before.and_then(|h| serde_json::from_str(&h).ok());
    let now = health.updated_at;
    let (was, _) = crate::checks::health_state(false, before.as_ref(), now);
    let (is, reason) = crate::checks::health_state(false, Some(health), now);
    if was != is {
        sqlx::query(
            "INSERT INTO endpoint_health_event (org_id, endpoint_id, state, reason, at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(org_id)
        .bind(endpoint_id)
        .bind(is.as_str())
        .bind(reason)
        .bind(now)
        .execute(c)
        .await?;
    }
    Ok(())
}

/// See `Resources::list_endpoint_health_events` (newest first).
pub async fn health_events(
    c: &mut PgConnection,
    org_id: &str,
    endpoint_id: &str,
    limit: usize,
) -> Result<Vec<crate::checks::HealthEvent>> {
    let found: Vec<(i64, String, String, String, i64)> = sqlx::query_as(
        "SELECT id, endpoint_id, state, reason, at FROM endpoint_health_event
         WHERE org_id = $1 AND endpoint_id = $2 ORDER BY id DESC LIMIT $3",
    )
    .bind(org_id)
    .bind(endpoint_id)
    .bind(limit as i64)
    .fetch_all(c)
    .await?;
    Ok(found
        .into_iter()
        .map(|(id, endpoint_id, state, reason, at)| crate::checks::HealthEvent {
            id,
            endpoint_id,
            state: crate::checks::HealthState::parse(&state),
            reason,
            at,
        })
        .collect())
}

/// See `Resources::reseal_secrets`.
pub async fn reseal(c: &mut PgConnection, batch: usize) -> Result<u64> {
    let Some(ring) = crate::crypt::keyring() else { return Ok(0) };
    let current = format!("enc1:{}:%", ring.current_id());
    type Sealed = (String, String, String, String, Option<String>);
    let rows: Vec<Sealed> = sqlx::query_as(
        "SELECT id, secret, retired_secrets, headers, auth FROM endpoint
         WHERE secret NOT LIKE $1 OR headers NOT LIKE $1 OR auth NOT LIKE $1 LIMIT $2",
    )
    .bind(&current)
    .bind(batch as i64)
    .fetch_all(&mut *c)
    .await?;
    for (id, secret, retired, headers, auth) in &rows {
        let bad = |e: crate::codec::DecodeError| StoreError::Internal(format!("endpoint {id}: {e}"));
        let new_secret = rows::secret_to_db(id, &crate::codec::secret_from_db(id, secret).map_err(bad)?);
        let new_retired = rows::retired_to_db(id, &crate::codec::retired_from_db(id, retired).map_err(bad)?);
        let new_headers = rows::headers_to_db(id, &crate::codec::headers_from_db(id, headers).map_err(bad)?);
        let new_auth = crate::codec::auth_to_db(id, &crate::codec::auth_from_db(id, auth.as_deref()).map_err(bad)?);
        sqlx::query(
            "UPDATE endpoint SET secret = $2, retired_secrets = $3, headers = $4, auth = $5
             WHERE id = $1 AND secret = $6 AND headers = $7 AND auth IS NOT DISTINCT FROM $8",
        )
        .bind(id)
        .bind(new_secret)
        .bind(new_retired)
        .bind(new_headers)
        .bind(new_auth)
        .bind(secret)
        .bind(headers)
        .bind(auth)
        .execute(&mut *c)
        .await?;
    }
    Ok(rows.len() as u64)
}

pub async fn crypt_marker(c: &mut PgConnection) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT sealed FROM crypt_marker WHERE id = 1").fetch_optional(c).await?)
}

pub async fn set_crypt_marker(c: &mut PgConnection, sealed: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO crypt_marker (id, sealed) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET sealed = EXCLUDED.sealed",
    )
    .bind(sealed)
    .execute(c)
    .await?;
    Ok(())
}
