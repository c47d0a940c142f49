//! The delivery queue (claim, record) and the attempt log.

use hookd_core::AttemptTrigger;
use rusqlite::{params, Connection, OptionalExtension};

use super::rows::{self, ATTEMPT_COLUMNS, DELIVERY_COLUMNS, MESSAGE_COLUMNS, MESSAGE_COLUMNS_NO_PAYLOAD};
use super::{messages, owners};
use crate::model::*;
use crate::Result;

/// Leases due deliveries to `lease.owner`: unleased ones and those whose lease
/// expired (a dead node's, or one this node lost track of; the dispatcher skips
/// any it still holds), of endpoints whose queue it owns or can take. Only the
/// endpoints of the first `limit` such deliveries are taken, so a node with
/// little room does not take queues it cannot serve.
pub fn claim_due(c: &Connection, lease: &Lease, now: i64, limit: usize, skip: &[String]) -> Result<Vec<DeliveryJob>> {
    let candidates: Vec<String> = {
        let mut stmt = c.prepare_cached(
            "SELECT DISTINCT endpoint_id FROM (SELECT d.endpoint_id FROM delivery d
               LEFT JOIN endpoint_owner o ON o.endpoint_id = d.endpoint_id
               WHERE d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= ?1
                 AND (d.lease_owner IS NULL OR d.lease_expires_at < ?1)
                 AND (o.owner IS NULL OR o.owner = ?3 OR o.expires_at < ?1)
                 AND d.endpoint_id NOT IN (SELECT value FROM json_each(?4))
               ORDER BY d.next_attempt_at LIMIT ?2)",
        )?;
        let skip = serde_json::to_string(skip).expect("ids serialise");
        let rows = stmt.query_map(params![now, limit as i64, lease.owner, skip], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    let mut owned = Vec::with_capacity(candidates.len());
    for ep in candidates {
        if owners::take(c, &ep, lease, now)? {
            owned.push(ep);
        }
    }
    if owned.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = {
        let mut stmt = c.prepare_cached(
            "SELECT id FROM delivery
             WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= ?1
               AND (lease_owner IS NULL OR lease_expires_at < ?1)
               AND endpoint_id IN (SELECT value FROM json_each(?3))
             ORDER BY next_attempt_at LIMIT ?2",
        )?;
        let owned = serde_json::to_string(&owned).expect("ids serialise");
        let rows = stmt.query_map(params![now, limit as i64, owned], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut update = c.prepare_cached("UPDATE delivery SET lease_owner = ?2, lease_expires_at = ?3 WHERE id = ?1")?;
    for id in &ids {
        update.execute(params![id, lease.owner, lease.until])?;
    }
    messages::load_jobs(c, &ids, AttemptTrigger::Scheduled)
}

pub fn record_outcomes(c: &Connection, outcomes: &[Outcome], held_by: Option<&str>) -> Result<()> {
    let now = hookd_core::timefmt::now_millis();
    let mut update = c.prepare_cached(
        "UPDATE delivery SET status = ?2, attempts = ?3, next_attempt_at = ?4, lease_owner = NULL,
         lease_expires_at = NULL, updated_at = ?5 WHERE id = ?1 AND (?6 IS NULL OR lease_owner = ?6)",
    )?;
    // An attempt already stored is skipped: recording a batch again is harmless.
    let mut insert = c.prepare_cached(&format!(
        "INSERT INTO attempt ({ATTEMPT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (id) DO NOTHING"
    ))?;
    for o in outcomes {
        let n = update.execute(params![o.delivery_id, o.new_status, o.attempts, o.next_attempt_at, now, held_by])?;
        // The delivery is gone when its endpoint or message was deleted meanwhile,
        // or another node took over its lease.
        if n == 0 {
            continue;
        }
        if let Some(a) = &o.attempt {
            insert.execute(params![
                a.id,
                a.org_id,
                a.app_id,
                a.msg_id,
                a.endpoint_id,
                a.url,
                a.status,
                a.response_status_code,
                a.response,
                a.response_duration_ms,
                a.trigger as i64,
                a.created_at
            ])?;
        }
    }
    Ok(())
}

pub fn list_attempts(
    c: &Connection,
    org_id: &str,
    app_id: &str,
    f: &AttemptFilter,
    page: &Page,
) -> Result<Vec<Attempt>> {
    let mut sql = format!("SELECT {ATTEMPT_COLUMNS} FROM attempt WHERE org_id = ? AND app_id = ?");
    let mut params: Vec<rusqlite::types::Value> = vec![org_id.to_string().into(), app_id.to_string().into()];
    if let Some(m) = &f.msg_id {
        sql.push_str(" AND msg_id = ?");
        params.push(m.clone().into());
    }
    if let Some(e) = &f.endpoint_id {
        sql.push_str(" AND endpoint_id = ?");
        params.push(e.clone().into());
    }
    if let Some(s) = f.status {
        sql.push_str(" AND status = ?");
        params.push(s.into());
    }
    if let Some(class) = f.status_code_class {
        sql.push_str(" AND response_status_code >= ? AND response_status_code < ?");
        params.push(class.into());
        params.push(if class == 0 { 1 } else { class + 100 }.into());
    }
    let mut on_message = String::new();
    messages::filter_conditions(&f.message, &mut on_message, &mut params);
    if !on_message.is_empty() {
        sql.push_str(&format!(" AND EXISTS (SELECT 1 FROM message m WHERE m.id = attempt.msg_id{on_message})"));
    }
    if let Some(b) = f.before {
        sql.push_str(" AND created_at < ?");
        params.push(b.into());
    }
    if let Some(a) = f.after {
        sql.push_str(" AND created_at > ?");
        params.push(a.into());
    }
    sql.push_str(&rows::page_clause(page, "id", &mut params));
    rows::collect(&mut c.prepare(&sql)?, params, rows::attempt)
}

pub fn get_attempt(c: &Connection, org_id: &str, app_id: &str, msg_id: &str, attempt_id: &str) -> Result<Attempt> {
    Ok(c.prepare_cached(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempt WHERE org_id = ?1 AND app_id = ?2 AND msg_id = ?3 AND id = ?4"
    ))?
    .query_row(params![org_id, app_id, msg_id, attempt_id], rows::attempt)?)
}

pub fn message_destinations(
    c: &Connection,
    org_id: &str,
    msg_id: &str,
    page: &Page,
) -> Result<Vec<(Delivery, Endpoint)>> {
    let mut params: Vec<rusqlite::types::Value> = vec![org_id.to_string().into(), msg_id.to_string().into()];
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS}, {} FROM delivery d JOIN endpoint e ON e.id = d.endpoint_id
         WHERE d.org_id = ? AND d.msg_id = ?{}",
        rows::ENDPOINT_COLUMNS,
        rows::page_clause(page, "d.endpoint_id", &mut params)
    );
    rows::collect(&mut *c.prepare_cached(&sql)?, params, |r| {
        Ok((rows::delivery(r)?, rows::endpoint_at(r, rows::DELIVERY_COLUMN_COUNT)?))
    })
}

pub fn endpoint_messages(
    c: &Connection,
    org_id: &str,
    endpoint_id: &str,
    status: Option<i64>,
    f: &MessageFilter,
    page: &Page,
) -> Result<Vec<(Delivery, Message)>> {
    let cols = if f.with_content { MESSAGE_COLUMNS } else { MESSAGE_COLUMNS_NO_PAYLOAD };
    let mut params: Vec<rusqlite::types::Value> = vec![org_id.to_string().into(), endpoint_id.to_string().into()];
    let mut sql = format!(
        "SELECT {DELIVERY_COLUMNS}, {cols} FROM delivery d JOIN message m ON m.id = d.msg_id
         WHERE d.org_id = ? AND d.endpoint_id = ?"
    );
    if let Some(s) = status {
        sql.push_str(" AND d.status = ?");
        params.push(s.into());
    }
    messages::filter_conditions(f, &mut sql, &mut params);
    sql.push_str(&rows::page_clause(page, "d.msg_id", &mut params));
    rows::collect(&mut c.prepare(&sql)?, params, |r| {
        Ok((rows::delivery(r)?, rows::message_at(r, rows::DELIVERY_COLUMN_COUNT)?))
    })
}

/// Makes the delivery of `msg` to `endpoint_id` due now (creating it when the
/// message never went there) and returns it as a manual job when leased.
pub fn resend(
    c: &Connection,
    msg: &Message,
    endpoint_id: &str,
    lease: Option<&Lease>,
    now: i64,
) -> Result<Vec<DeliveryJob>> {
    let lease = match lease {
        Some(l) if owners::take(c, endpoint_id, l, now)? => Some(l),
        _ => None,
    };
    let existing: Option<i64> = c
        .query_row(
            "SELECT id FROM delivery WHERE msg_id = ?1 AND endpoint_id = ?2",
            params![msg.id, endpoint_id],
            |r| r.get(0),
        )
        .optional()?;
    let id = match existing {
        Some(id) => {
            c.execute(
                "UPDATE delivery SET status = CASE WHEN status = 0 THEN 0 ELSE 1 END, next_attempt_at = ?2,
                 lease_owner = ?3, lease_expires_at = ?4, updated_at = ?2 WHERE id = ?1",
                params![id, now, lease.map(|l| &l.owner), lease.map(|l| l.until)],
            )?;
            id
        }
        None => messages::insert_delivery(c, msg, endpoint_id, lease, now)?,
    };
    if lease.is_none() {
        return Ok(Vec::new());
    }
    messages::load_jobs(c, &[id], AttemptTrigger::Manual)
}

pub fn recover_failed(
    c: &Connection,
    org_id: &str,
    endpoint_id: &str,
    since: i64,
    until: i64,
    now: i64,
) -> Result<u64> {
    let n = c.execute(
        "UPDATE delivery SET status = 1, next_attempt_at = ?5, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?5
         WHERE org_id = ?1 AND endpoint_id = ?2 AND status = 2 AND created_at >= ?3 AND created_at < ?4",
        params![org_id, endpoint_id, since, until, now],
    )?;
    Ok(n as u64)
}

pub fn pending_count(c: &Connection) -> Result<u64> {
    let n: i64 = c.query_row("SELECT COUNT(*) FROM delivery WHERE next_attempt_at IS NOT NULL", [], |r| r.get(0))?;
    Ok(n as u64)
}
