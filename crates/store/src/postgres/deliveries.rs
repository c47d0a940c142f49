//! The delivery queue (claim, record) and the attempt log.
//!
//! Lock order: statements that lock several delivery rows and may wait for them
//! (recording outcomes, renewing leases) lock in ascending id; the claim never
//! waits (`SKIP LOCKED`). So concurrent batches do not deadlock.

use std::collections::HashMap;

use hookd_core::AttemptTrigger;
use sqlx::{Connection, PgConnection, QueryBuilder};

use super::rows::{self, ATTEMPT_COLUMNS, DELIVERY_COLUMNS, MESSAGE_COLUMNS, MESSAGE_COLUMNS_NO_PAYLOAD};
use super::{messages, owners};
use crate::model::*;
use crate::Result;

/// Leases due deliveries to `lease.owner`: unleased ones and those whose lease
/// expired (a dead node's, or one this node lost track of; the dispatcher skips
/// any it still holds), of endpoints whose queue it owns or can take. Only the
/// endpoints of the first `limit` such deliveries are taken, so a node with
/// little room does not take queues it cannot serve.
///
/// `c` must not be in a transaction: the candidates are read on their own (an
/// idle poll costs one query), then one transaction takes the queues, leases
/// the deliveries and loads them.
pub async fn claim_due(
    c: &mut PgConnection,
    lease: &Lease,
    now: i64,
    limit: usize,
    skip_endpoints: &[String],
) -> Result<Vec<DeliveryJob>> {
    let mut candidates: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT endpoint_id FROM (SELECT d.endpoint_id FROM delivery d
           LEFT JOIN endpoint_owner o ON o.endpoint_id = d.endpoint_id
           WHERE d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= $1
             AND (d.lease_owner IS NULL OR d.lease_expires_at < $1)
             AND (o.owner IS NULL OR o.owner = $3 OR o.expires_at < $1)
             AND d.endpoint_id <> ALL($4)
           ORDER BY d.next_attempt_at LIMIT $2) due",
    )
    .bind(now)
    .bind(limit as i64)
    .bind(&lease.owner)
    .bind(skip_endpoints)
    .fetch_all(&mut *c)
    .await?;
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    candidates.sort();

    let mut tx = c.begin().await?;
    let owned = owners::take(&mut tx, &candidates, lease, now).await?;
    if owned.is_empty() {
        tx.commit().await?;
        return Ok(Vec::new());
    }
    // Rows another claimer has locked are skipped, not waited for; a row it
    // leased and committed meanwhile fails the re-checked conditions.
    let mut leased: Vec<(i64, i64)> = sqlx::query_as(
        "UPDATE delivery d SET lease_owner = $2, lease_expires_at = $3
         FROM (SELECT id FROM delivery
               WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= $1
                 AND (lease_owner IS NULL OR lease_expires_at < $1)
                 AND endpoint_id = ANY($4)
               ORDER BY next_attempt_at LIMIT $5
               FOR UPDATE SKIP LOCKED) due
         WHERE d.id = due.id
         RETURNING d.id, d.next_attempt_at",
    )
    .bind(now)
    .bind(&lease.owner)
    .bind(lease.until)
    .bind(&owned)
    .bind(limit as i64)
    .fetch_all(&mut *tx)
    .await?;
    leased.sort_by_key(|&(id, due)| (due, id));
    let ids: Vec<i64> = leased.into_iter().map(|(id, _)| id).collect();
    let jobs =
        if ids.is_empty() { Vec::new() } else { messages::load_jobs(&mut tx, &ids, AttemptTrigger::Scheduled).await? };
    tx.commit().await?;
    Ok(jobs)
}

/// Records outcomes and their attempts in one statement (so one round trip and
/// one commit per batch): an UPDATE over the unnested outcomes, then an INSERT
/// of the attempts whose delivery it updated. A delivery that is gone (its
/// endpoint or message was deleted meanwhile) gets no attempt, as in SQLite. An
/// attempt already stored (a retried batch whose first commit did land) is
/// skipped, so a retry is harmless.
pub async fn record_outcomes(c: &mut PgConnection, outcomes: &[Outcome], held_by: Option<&str>) -> Result<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let now = hookd_core::timefmt::now_millis();
    // One row update per delivery: the last outcome wins, as when applied in turn.
    let mut last: HashMap<i64, &Outcome> = HashMap::with_capacity(outcomes.len());
    for o in outcomes {
        last.insert(o.delivery_id, o);
    }
    let mut latest: Vec<&Outcome> = last.into_values().collect();
    latest.sort_by_key(|o| o.delivery_id);

    let attempts: Vec<(&Attempt, i64)> =
        outcomes.iter().filter_map(|o| o.attempt.as_ref().map(|a| (a, o.delivery_id))).collect();
    let col = |f: fn(&Attempt) -> String| attempts.iter().map(|(a, _)| f(a)).collect::<Vec<String>>();

    sqlx::query(&format!(
        "WITH locked AS (
             SELECT id FROM delivery WHERE id = ANY($1) AND ($19::text IS NULL OR lease_owner = $19) ORDER BY id FOR UPDATE
         ), updated AS (
             UPDATE delivery d SET status = o.status, attempts = o.attempts, next_attempt_at = o.next_attempt_at,
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = $5
             FROM unnest($1::bigint[], $2::smallint[], $3::integer[], $4::bigint[])
                      AS o(id, status, attempts, next_attempt_at)
             JOIN locked ON locked.id = o.id
             WHERE d.id = o.id
             RETURNING d.id
         )
         INSERT INTO attempt ({ATTEMPT_COLUMNS})
         SELECT a.id, a.org_id, a.app_id, a.msg_id, a.endpoint_id, a.url, a.status, a.response_status_code,
                a.response, a.response_duration_ms, a.trigger_type, a.created_at
         FROM unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::smallint[],
                     $13::integer[], $14::text[], $15::bigint[], $16::smallint[], $17::bigint[], $18::bigint[])
                  AS a(id, org_id, app_id, msg_id, endpoint_id, url, status, response_status_code, response,
                       response_duration_ms, trigger_type, created_at, delivery_id)
         WHERE a.delivery_id IN (SELECT id FROM updated)
         ON CONFLICT (id) DO NOTHING"
    ))
    .bind(latest.iter().map(|o| o.delivery_id).collect::<Vec<i64>>())
    .bind(latest.iter().map(|o| rows::small(o.new_status)).collect::<Vec<i16>>())
    .bind(latest.iter().map(|o| i32::try_from(o.attempts).unwrap_or(i32::MAX)).collect::<Vec<i32>>())
    .bind(latest.iter().map(|o| o.next_attempt_at).collect::<Vec<Option<i64>>>())
    .bind(now)
    .bind(col(|a| a.id.clone()))
    .bind(col(|a| a.org_id.clone()))
    .bind(col(|a| a.app_id.clone()))
    .bind(col(|a| a.msg_id.clone()))
    .bind(col(|a| a.endpoint_id.clone()))
    .bind(col(|a| a.url.clone()))
    .bind(attempts.iter().map(|(a, _)| rows::small(a.status)).collect::<Vec<i16>>())
    .bind(attempts.iter().map(|(a, _)| a.response_status_code).collect::<Vec<i32>>())
    .bind(col(|a| a.response.clone()))
    .bind(attempts.iter().map(|(a, _)| a.response_duration_ms).collect::<Vec<i64>>())
    .bind(attempts.iter().map(|(a, _)| a.trigger as i16).collect::<Vec<i16>>())
    .bind(attempts.iter().map(|(a, _)| a.created_at).collect::<Vec<i64>>())
    .bind(attempts.iter().map(|(_, d)| *d).collect::<Vec<i64>>())
    .bind(held_by)
    .execute(c)
    .await?;
    Ok(())
}

pub async fn list_attempts(
    c: &mut PgConnection,
    org_id: &str,
    app_id: &str,
    f: &AttemptFilter,
    page: &Page,
) -> Result<Vec<Attempt>> {
    let mut q = QueryBuilder::new(format!("SELECT {ATTEMPT_COLUMNS} FROM attempt WHERE org_id = "));
    q.push_bind(org_id).push(" AND app_id = ").push_bind(app_id);
    if let Some(m) = &f.msg_id {
        q.push(" AND msg_id = ").push_bind(m.clone());
    }
    if let Some(e) = &f.endpoint_id {
        q.push(" AND endpoint_id = ").push_bind(e.clone());
    }
    if let Some(s) = f.status {
        q.push(" AND status = ").push_bind(s);
    }
    if let Some(class) = f.status_code_class {
        q.push(" AND response_status_code >= ").push_bind(class);
        q.push(" AND response_status_code < ").push_bind(if class == 0 { 1 } else { class + 100 });
    }
    if !messages::filter_is_empty(&f.message) {
        q.push(" AND EXISTS (SELECT 1 FROM message m WHERE m.id = attempt.msg_id");
        messages::push_filter(&mut q, &f.message);
        q.push(")");
    }
    if let Some(b) = f.before {
        q.push(" AND created_at < ").push_bind(b);
    }
    if let Some(a) = f.after {
        q.push(" AND created_at > ").push_bind(a);
    }
    rows::push_page(&mut q, page, "id");
    rows::collect(q.build().fetch_all(c).await?, rows::attempt)
}

pub async fn get_attempt(
    c: &mut PgConnection,
    org_id: &str,
    app_id: &str,
    msg_id: &str,
    attempt_id: &str,
) -> Result<Attempt> {
    let row = sqlx::query(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempt WHERE org_id = $1 AND app_id = $2 AND msg_id = $3 AND id = $4"
    ))
    .bind(org_id)
    .bind(app_id)
    .bind(msg_id)
    .bind(attempt_id)
    .fetch_one(c)
    .await?;
    Ok(rows::attempt(&row)?)
}

pub async fn message_destinations(
    c: &mut PgConnection,
    org_id: &str,
    msg_id: &str,
    page: &Page,
) -> Result<Vec<(Delivery, Endpoint)>> {
    let mut q = QueryBuilder::new(format!(
        "SELECT {DELIVERY_COLUMNS}, {} FROM delivery d JOIN endpoint e ON e.id = d.endpoint_id WHERE d.org_id = ",
        rows::ENDPOINT_COLUMNS
    ));
    q.push_bind(org_id).push(" AND d.msg_id = ").push_bind(msg_id);
    rows::push_page(&mut q, page, "d.endpoint_id");
    rows::collect(q.build().fetch_all(c).await?, |r| {
        Ok((rows::delivery(r)?, rows::endpoint_at(r, rows::DELIVERY_COLUMN_COUNT)?))
    })
}

pub async fn endpoint_messages(
    c: &mut PgConnection,
    org_id: &str,
    endpoint_id: &str,
    status: Option<i64>,
    f: &MessageFilter,
    page: &Page,
) -> Result<Vec<(Delivery, Message)>> {
    let cols = if f.with_content { MESSAGE_COLUMNS } else { MESSAGE_COLUMNS_NO_PAYLOAD };
    let mut q = QueryBuilder::new(format!(
        "SELECT {DELIVERY_COLUMNS}, {cols} FROM delivery d JOIN message m ON m.id = d.msg_id WHERE d.org_id = "
    ));
    q.push_bind(org_id).push(" AND d.endpoint_id = ").push_bind(endpoint_id);
    if let Some(s) = status {
        q.push(" AND d.status = ").push_bind(s);
    }
    messages::push_filter(&mut q, f);
    rows::push_page(&mut q, page, "d.msg_id");
    rows::collect(q.build().fetch_all(c).await?, |r| {
        Ok((rows::delivery(r)?, rows::message_at(r, rows::DELIVERY_COLUMN_COUNT)?))
    })
}

/// Makes the delivery of `msg` to `endpoint_id` due now (creating it when the
/// message never went there) and returns it as a manual job when leased.
pub async fn resend(
    c: &mut PgConnection,
    msg: &Message,
    endpoint_id: &str,
    lease: Option<&Lease>,
    now: i64,
) -> Result<Vec<DeliveryJob>> {
    let lease = match lease {
        Some(l) if !owners::take(c, &[endpoint_id.to_string()], l, now).await?.is_empty() => Some(l),
        _ => None,
    };
    // A delivery that succeeded stays successful; any other is pending again.
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO delivery (org_id, app_id, msg_id, endpoint_id, status, attempts, next_attempt_at,
         lease_owner, lease_expires_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 1, 0, $5, $6, $7, $5, $5)
         ON CONFLICT (msg_id, endpoint_id) DO UPDATE SET
             status = CASE WHEN delivery.status = 0 THEN 0 ELSE 1 END, next_attempt_at = EXCLUDED.next_attempt_at,
             lease_owner = EXCLUDED.lease_owner, lease_expires_at = EXCLUDED.lease_expires_at,
             updated_at = EXCLUDED.updated_at
         RETURNING id",
    )
    .bind(&msg.org_id)
    .bind(&msg.app_id)
    .bind(&msg.id)
    .bind(endpoint_id)
    .bind(now)
    .bind(lease.map(|l| l.owner.as_str()))
    .bind(lease.map(|l| l.until))
    .fetch_one(&mut *c)
    .await?;
    if lease.is_none() {
        return Ok(Vec::new());
    }
    messages::load_jobs(c, &[id], AttemptTrigger::Manual).await
}

pub async fn recover_failed(
    c: &mut PgConnection,
    org_id: &str,
    endpoint_id: &str,
    since: i64,
    until: i64,
    now: i64,
) -> Result<u64> {
    let n = sqlx::query(
        "UPDATE delivery SET status = 1, next_attempt_at = $5, lease_owner = NULL, lease_expires_at = NULL, updated_at = $5
         WHERE org_id = $1 AND endpoint_id = $2 AND status = 2 AND created_at >= $3 AND created_at < $4",
    )
    .bind(org_id)
    .bind(endpoint_id)
    .bind(since)
    .bind(until)
    .bind(now)
    .execute(c)
    .await?;
    Ok(n.rows_affected())
}

pub async fn pending_count(c: &mut PgConnection) -> Result<u64> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM delivery WHERE next_attempt_at IS NOT NULL").fetch_one(c).await?;
    Ok(n as u64)
}
