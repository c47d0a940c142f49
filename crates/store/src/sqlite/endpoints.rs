//! Endpoints, their secrets and headers (kept on the endpoint row), and stats.

use rusqlite::{params, Connection, OptionalExtension};

use super::deliveries;
use super::rows::{self, ENDPOINT_COLUMNS};
use crate::change::{Columns, EndpointChange, EndpointUpdated};
use crate::model::*;
use crate::{states, Result, StoreError};

pub fn list(c: &Connection, org_id: &str, app_id: &str, page: &Page) -> Result<Vec<Endpoint>> {
    let mut params: Vec<rusqlite::types::Value> = vec![org_id.to_string().into(), app_id.to_string().into()];
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoint e WHERE e.org_id = ? AND e.app_id = ?{}",
        rows::page_clause(page, "e.id", &mut params)
    );
    rows::collect(&mut *c.prepare_cached(&sql)?, params, rows::endpoint)
}

/// Every endpoint of an application, for fan-out.
pub fn all_of_app(c: &Connection, org_id: &str, app_id: &str) -> Result<Vec<Endpoint>> {
    let mut stmt =
        c.prepare_cached(&format!("SELECT {ENDPOINT_COLUMNS} FROM endpoint e WHERE e.org_id = ?1 AND e.app_id = ?2"))?;
    let rows = stmt.query_map(params![org_id, app_id], rows::endpoint)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn get(c: &Connection, org_id: &str, app_id: &str, id_or_uid: &str) -> Result<Endpoint> {
    Ok(c.prepare_cached(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoint e WHERE e.org_id = ?1 AND e.app_id = ?2 AND (e.id = ?3 OR e.uid = ?3)
         ORDER BY e.id = ?3 DESC LIMIT 1"
    ))?
    .query_row(params![org_id, app_id, id_or_uid], rows::endpoint)?)
}

pub fn insert(c: &Connection, e: &Endpoint) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO endpoint (org_id, app_id, id, uid, url, description, version, disabled, event_types, channels,
         rate_limit, metadata, headers, secret, retired_secrets, created_at, updated_at, revision, control, auth)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
    )?
    .execute(params![
        e.org_id,
        e.app_id,
        e.id,
        e.uid,
        e.url,
        e.description,
        e.version,
        e.disabled,
        rows::json_opt(&e.event_types),
        rows::json_opt(&e.channels),
        e.rate_limit,
        rows::json(&e.metadata),
        rows::headers_to_db(&e.id, &e.headers),
        rows::secret_to_db(&e.id, &e.secret),
        rows::retired_to_db(&e.id, &e.retired_secrets),
        e.created_at,
        e.updated_at,
        e.revision,
        control_to_db(&e.control),
        crate::codec::auth_to_db(&e.id, &e.auth)
    ])
    .map_err(|err| rows::unique_violation(err, "an endpoint with this uid"))?;
    Ok(())
}

/// Applies `change` to the endpoint as stored and writes the columns it owns;
/// pauses or resumes its deliveries when `disabled` flips.
pub fn update(
    c: &Connection,
    org_id: &str,
    app_id: &str,
    endpoint_id: &str,
    change: &EndpointChange,
    now: i64,
) -> Result<EndpointUpdated> {
    let mut ep = get(c, org_id, app_id, endpoint_id)?;
    let was_disabled = ep.disabled;
    let ordering_before = ep.control.ordering.clone();
    change.apply(&mut ep, now)?;
    let n = match change.columns() {
        Columns::Settings => c
            .prepare_cached(
                "UPDATE endpoint SET uid = ?2, url = ?3, description = ?4, version = ?5, disabled = ?6,
                     event_types = ?7, channels = ?8, rate_limit = ?9, metadata = ?10, updated_at = ?11,
                     revision = ?12, control = ?13
                 WHERE id = ?1",
            )?
            .execute(params![
                ep.id,
                ep.uid,
                ep.url,
                ep.description,
                ep.version,
                ep.disabled,
                rows::json_opt(&ep.event_types),
                rows::json_opt(&ep.channels),
                ep.rate_limit,
                rows::json(&ep.metadata),
                ep.updated_at,
                ep.revision,
                control_to_db(&ep.control)
            ])
            .map_err(|err| rows::unique_violation(err, "an endpoint with this uid"))?,
        Columns::Auth => c
            .prepare_cached("UPDATE endpoint SET auth = ?2, updated_at = ?3, revision = ?4 WHERE id = ?1")?
            .execute(params![ep.id, crate::codec::auth_to_db(&ep.id, &ep.auth), ep.updated_at, ep.revision])?,
        Columns::Headers => c
            .prepare_cached("UPDATE endpoint SET headers = ?2, updated_at = ?3, revision = ?4 WHERE id = ?1")?
            .execute(params![ep.id, rows::headers_to_db(&ep.id, &ep.headers), ep.updated_at, ep.revision])?,
        Columns::Secrets => c
            .prepare_cached(
                "UPDATE endpoint SET secret = ?2, retired_secrets = ?3, updated_at = ?4, revision = ?5 WHERE id = ?1",
            )?
            .execute(params![
                ep.id,
                rows::secret_to_db(&ep.id, &ep.secret),
                rows::retired_to_db(&ep.id, &ep.retired_secrets),
                ep.updated_at,
                ep.revision
            ])?,
    };
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    // New keys (or none): what waits is released. A new `onFailure` keeps them.
    let key = |o: &Option<hookd_core::ordering::Ordering>| o.as_ref().map(|o| o.key.clone());
    if ordering_before.is_some() && key(&ordering_before) != key(&ep.control.ordering) {
        super::ordering::unorder_endpoint(c, &ep.id, now)?;
    }
    let (mut paused, mut resumed) = (0, 0);
    match (was_disabled, ep.disabled) {
        (false, true) => paused = deliveries::pause_endpoint(c, &ep.id, now)?,
        (true, false) => {
            resumed = deliveries::resume_endpoint(c, &ep.id, now)?;
            // Enabled afresh: its breaker and failing-since start over.
            c.prepare_cached("UPDATE endpoint SET health = NULL WHERE id = ?1")?.execute([&ep.id])?;
            ep.health = None;
        }
        _ => {}
    }
    Ok(EndpointUpdated { endpoint: ep, was_disabled, paused, resumed })
}

/// Endpoints among `known` (id, revision) whose revision moved.
pub fn changed(c: &Connection, known: &[(String, i64)]) -> Result<Vec<Endpoint>> {
    let mut stmt = c.prepare_cached(&format!("SELECT {ENDPOINT_COLUMNS} FROM endpoint e WHERE e.id = ?1"))?;
    let mut out = Vec::new();
    for (id, revision) in known {
        if let Some(ep) = stmt.query_row([id], rows::endpoint).optional()? {
            if ep.revision != *revision {
                out.push(ep);
            }
        }
    }
    Ok(out)
}

pub fn delete(c: &Connection, org_id: &str, app_id: &str, endpoint_id: &str) -> Result<()> {
    c.execute("DELETE FROM attempt WHERE org_id = ?1 AND endpoint_id = ?2", params![org_id, endpoint_id])?;
    c.execute("DELETE FROM delivery WHERE org_id = ?1 AND endpoint_id = ?2", params![org_id, endpoint_id])?;
    let n = c.execute(
        "DELETE FROM endpoint WHERE org_id = ?1 AND app_id = ?2 AND id = ?3",
        params![org_id, app_id, endpoint_id],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub fn stats(c: &Connection, org_id: &str, endpoint_id: &str, since: i64, until: i64) -> Result<EndpointStats> {
    let mut stmt = c.prepare_cached(
        "SELECT state, attempts > 0, COUNT(*) FROM delivery
         WHERE org_id = ?1 AND endpoint_id = ?2 AND created_at >= ?3 AND created_at < ?4 GROUP BY 1, 2",
    )?;
    let mut rows = stmt.query(params![org_id, endpoint_id, since, until])?;
    let mut out = EndpointStats::default();
    while let Some(r) = rows.next()? {
        let n: i64 = r.get(2)?;
        states::count(&mut out, rows::state_at(r, 0)?, r.get(1)?, n as u64);
    }
    Ok(out)
}

fn control_to_db(control: &DeliveryControl) -> Option<String> {
    (!control.is_default()).then(|| rows::json(control))
}

/// Writes what the delivering node reports of the endpoint's health; leaves
/// `revision` alone (nothing a node holds changes with it).
pub fn set_health(c: &Connection, endpoint_id: &str, health: &EndpointHealth) -> Result<()> {
    let before: Option<(String, Option<String>)> = c
        .prepare_cached("SELECT org_id, health FROM endpoint WHERE id = ?1")?
        .query_row(params![endpoint_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    c.prepare_cached("UPDATE endpoint SET health = ?2 WHERE id = ?1")?
        .execute(params![endpoint_id, rows::json(health)])?;
    // A change of state goes into the endpoint's health history.
    let Some((org_id, before)) = before else { return Ok(()) };
    let before: Option<EndpointHealth> = before.and_then(|h| serde_json::from_str(&h).ok());
    let now = health.updated_at;
    let (was, _) = crate::checks::health_state(false, before.as_ref(), now);
    let (is, reason) = crate::checks::health_state(false, Some(health), now);
    if was != is {
        c.prepare_cached(
            "INSERT INTO endpoint_health_event (org_id, endpoint_id, state, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![org_id, endpoint_id, is.as_str(), reason, now])?;
    }
    Ok(())
}

/// See `Resources::list_endpoint_health_events` (newest first).
pub fn health_events(
    c: &Connection,
    org_id: &str,
    endpoint_id: &str,
    limit: usize,
) -> Result<Vec<crate::checks::HealthEvent>> {
    let mut stmt = c.prepare_cached(
        "SELECT id, endpoint_id, state, reason, at FROM endpoint_health_event
         WHERE org_id = ?1 AND endpoint_id = ?2 ORDER BY id DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![org_id, endpoint_id, limit as i64], |r| {
        Ok(crate::checks::HealthEvent {
            id: r.get(0)?,
            endpoint_id: r.get(1)?,
            state: crate::checks::HealthState::parse(&r.get::<_, String>(2)?),
            reason: r.get(3)?,
            at: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// See `Resources::reseal_secrets`.
pub fn reseal(c: &Connection, batch: usize) -> Result<u64> {
    let Some(ring) = crate::crypt::keyring() else { return Ok(0) };
    let current = format!("enc1:{}:%", ring.current_id());
    type Sealed = (String, String, String, String, Option<String>);
    let rows: Vec<Sealed> = {
        let mut stmt = c.prepare_cached(
            "SELECT id, secret, retired_secrets, headers, auth FROM endpoint
             WHERE secret NOT LIKE ?1 OR headers NOT LIKE ?1 OR auth NOT LIKE ?1 LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![current, batch as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut update = c.prepare_cached(
        "UPDATE endpoint SET secret = ?2, retired_secrets = ?3, headers = ?4, auth = ?5
         WHERE id = ?1 AND secret = ?6 AND headers = ?7 AND auth IS ?8",
    )?;
    for (id, secret, retired, headers, auth) in &rows {
        let bad = |e: crate::codec::DecodeError| StoreError::Internal(format!("endpoint {id}: {e}"));
        let new_secret = rows::secret_to_db(id, &crate::codec::secret_from_db(id, secret).map_err(bad)?);
        let new_retired = rows::retired_to_db(id, &crate::codec::retired_from_db(id, retired).map_err(bad)?);
        let new_headers = rows::headers_to_db(id, &crate::codec::headers_from_db(id, headers).map_err(bad)?);
        let new_auth = crate::codec::auth_to_db(id, &crate::codec::auth_from_db(id, auth.as_deref()).map_err(bad)?);
        update.execute(params![id, new_secret, new_retired, new_headers, new_auth, secret, headers, auth])?;
    }
    Ok(rows.len() as u64)
}

pub fn crypt_marker(c: &Connection) -> Result<Option<String>> {
    Ok(c.query_row("SELECT sealed FROM crypt_marker WHERE id = 1", [], |r| r.get(0)).optional()?)
}

pub fn set_crypt_marker(c: &Connection, sealed: &str) -> Result<()> {
    c.execute(
        "INSERT INTO crypt_marker (id, sealed) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET sealed = excluded.sealed",
        [sealed],
    )?;
    Ok(())
}
