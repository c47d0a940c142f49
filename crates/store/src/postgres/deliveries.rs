//! The delivery queue: claims, rescue, outcomes, resend. Every transition is one
//! conditional UPDATE naming the state it leaves (and, for a leased delivery, its
//! fencing token), and every time is the database's (`hookd_now_ms()`).
//!
//! Lock order: statements that lock several delivery rows and may wait for them
//! (recording outcomes, renewing leases, pausing and resuming an endpoint,
//! recover) lock them in ascending id; the claim and the rescue never wait
//! (`SKIP LOCKED`). Queue ownership rows are taken before delivery rows. An
//! endpoint edit locks its endpoint row, then only rows that wait (never a
//! leased one), while recording an outcome locks leased rows, then the endpoint
//! row only to decide a pause; so the two wait for each other but do not
//! deadlock. What remains possible (a retention delete meeting an outcome of
//! the same message) PostgreSQL detects and rolls back one side, which retries.
//! An ordering key's advisory lock (`ordering`) is taken after the queue
//! ownership rows and before any existing delivery row, and its holders never
//! wait for a delivery row.

use std::collections::HashMap;

use hookd_core::text::storable_str;
use hookd_core::AttemptTrigger;
use sqlx::{Connection, PgConnection};

use super::ordering::{self, head_only};
use super::stats::MERGE;
use super::{messages, owners};
use crate::model::*;
use crate::stats::{AttemptFacts, Sketch};
use crate::Result;

/// Leases due scheduled deliveries to `lease.owner`, of endpoints whose queue
/// it owns or can take. Only the endpoints of the first `limit` due deliveries
/// are taken, so a node with little room does not take queues it cannot serve.
///
/// `c` must not be in a transaction: the candidates are read on their own (an
/// idle poll costs one query), then one transaction takes the queues, leases
/// the deliveries and loads them.
pub async fn claim_due(
    c: &mut PgConnection,
    lease: &Lease,
    limit: usize,
    skip_endpoints: &[String],
) -> Result<Vec<DeliveryJob>> {
    // Of an ordered endpoint, only the first waiting delivery of each key, and
    // none of a key in flight (`head_only`).
    let mut candidates: Vec<String> = sqlx::query_scalar(concat!(
        "SELECT DISTINCT endpoint_id FROM (SELECT d.endpoint_id FROM delivery d
           LEFT JOIN endpoint_owner o ON o.endpoint_id = d.endpoint_id
           WHERE d.state = 'scheduled' AND d.due_at <= hookd_now_ms()
             AND (o.owner IS NULL OR o.owner = $2 OR o.expires_at < hookd_now_ms())
             AND d.endpoint_id <> ALL($3) AND ",
        head_only!(),
        " ORDER BY d.due_at LIMIT $1) due"
    ))
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
    let owned = owners::take(&mut tx, &candidates, lease).await?;
    if owned.is_empty() {
        tx.commit().await?;
        return Ok(Vec::new());
    }
    // Rows another claimer has locked are skipped, not waited for; a row it
    // leased and committed meanwhile fails the re-checked state. The locking
    // scan is MATERIALIZED so it runs once: re-run inside a join, SKIP LOCKED
    // would hand out different (more) rows each time.
    // Of a key, at most one delivery passes `head_only` (the first waiting,
    // when none is in flight), so one claim never leases two of a key.
    let mut leased: Vec<(i64, i64, Option<i64>)> = sqlx::query_as(concat!(
        "WITH due AS MATERIALIZED (
             SELECT d.id FROM delivery d
             WHERE d.state = 'scheduled' AND d.due_at <= hookd_now_ms() AND d.endpoint_id = ANY($3) AND ",
        head_only!(),
        " ORDER BY d.due_at LIMIT $4
             FOR UPDATE OF d SKIP LOCKED
         )
         UPDATE delivery d SET state = 'leased', lease_owner = $1, lease_expires_at = hookd_now_ms() + $2,
             lease_token = d.lease_token + 1, updated_at = hookd_now_ms()
         FROM due
         WHERE d.id = due.id AND d.state = 'scheduled'
         RETURNING d.id, d.lease_token, d.due_at"
    ))
    .bind(&lease.owner)
    .bind(lease.duration_ms)
    .bind(&owned)
    .bind(limit as i64)
    .fetch_all(&mut *tx)
    .await?;
    leased.sort_by_key(|&(id, _, due)| (due, id));
    let ids: Vec<(i64, i64)> = leased.into_iter().map(|(id, token, _)| (id, token)).collect();
    let jobs = if ids.is_empty() { Vec::new() } else { messages::load_jobs(&mut tx, &ids).await? };
    tx.commit().await?;
    Ok(jobs)
}

/// Leased deliveries whose lease ran out (by the database's clock) become
/// scheduled, due now.
pub async fn rescue_expired(c: &mut PgConnection, limit: usize) -> Result<u64> {
    let n = sqlx::query(
        "WITH expired AS MATERIALIZED (
             SELECT id FROM delivery WHERE state = 'leased' AND lease_expires_at < hookd_now_ms()
             ORDER BY lease_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
         )
         UPDATE delivery d SET state = 'scheduled', due_at = hookd_now_ms(), lease_owner = NULL,
             lease_expires_at = NULL, updated_at = hookd_now_ms()
         FROM expired
         WHERE d.id = expired.id AND d.state = 'leased'",
    )
    .bind(limit as i64)
    .execute(c)
    .await?;
    Ok(n.rows_affected())
}

/// Records outcomes and their attempts in one statement (so one round trip and
/// one commit per batch): an UPDATE of the deliveries still leased under the
/// outcomes' tokens, then an INSERT of the attempts whose delivery it updated.
/// An attempt already stored (a retried batch whose first commit did land) is
/// skipped, so a retry is harmless. A delivery asked to be resent while leased
/// is due again now, as a manual attempt; a pause holds only while the
/// endpoint is still disabled.
///
/// A delivery of an ordered endpoint done with (whatever its outcome), the
/// next of its key is released: in a transaction of its own after that
/// statement, under the keys' locks (see `ordering`), so the unordered path
/// stays one statement. The keys are those of the outcomes' deliveries, not
/// only of the ones the statement updated: a batch retried after its outcomes
/// landed but its release failed (its statement then updates nothing) still
/// releases them. Returns how many parked deliveries were made due.
///
/// `c` must not be in a transaction.
pub async fn record_outcomes(c: &mut PgConnection, outcomes: &[Outcome]) -> Result<u64> {
    if outcomes.is_empty() {
        return Ok(0);
    }
    // One row update per delivery: the last outcome wins, as when applied in turn.
    let mut last: HashMap<i64, &Outcome> = HashMap::with_capacity(outcomes.len());
    for o in outcomes {
        last.insert(o.delivery_id, o);
    }
    let mut latest: Vec<&Outcome> = last.into_values().collect();
    latest.sort_by_key(|o| o.delivery_id);

    // Each attempt with the lease it was made under: it is stored only if that
    // lease's outcome landed.
    let attempts: Vec<(&Attempt, i64, i64)> =
        outcomes.iter().filter_map(|o| o.attempt.as_ref().map(|a| (a, o.delivery_id, o.lease_token))).collect();
    let col =
        |f: fn(&Attempt) -> &str| attempts.iter().map(|(a, _, _)| storable_str(f(a)).into_owned()).collect::<Vec<_>>();
    let header_col = |f: fn(&AttemptHeaders) -> Option<&str>| {
        let text =
            |(a, _, _): &(&Attempt, i64, i64)| a.headers.as_ref().and_then(f).map(|t| storable_str(t).into_owned());
        attempts.iter().map(text).collect::<Vec<Option<String>>>()
    };

    let facts_col = |f: fn(&AttemptFacts) -> Option<&str>| {
        let text =
            |(a, _, _): &(&Attempt, i64, i64)| a.facts.as_ref().and_then(f).map(|t| storable_str(t).into_owned());
        attempts.iter().map(text).collect::<Vec<Option<String>>>()
    };

    let done: Vec<ordering::OrderKey> = sqlx::query_as(&format!(
        "WITH o AS (
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::integer[], $5::bigint[], $6::boolean[])
                 AS o(id, token, state, attempts, after_ms, attempted)
         ), locked AS MATERIALIZED (
             SELECT d.id FROM delivery d JOIN o ON o.id = d.id
             WHERE d.state = 'leased' AND d.lease_token = o.token
             ORDER BY d.id FOR UPDATE OF d
         ), endpoints AS MATERIALIZED (
             -- A pause is decided against the endpoint as committed: FOR SHARE
             -- waits for an enable (or disable) in progress, so a pause cannot
             -- land on a delivery that enable's resume did not see.
             SELECT e.id, e.disabled FROM endpoint e
             WHERE e.id IN (SELECT d.endpoint_id FROM delivery d JOIN o ON o.id = d.id WHERE o.state = 'paused')
             ORDER BY e.id FOR SHARE OF e
         ), updated AS (
             UPDATE delivery d SET
                 state = CASE WHEN d.resend_pending THEN 'scheduled'
                              WHEN o.state = 'paused' THEN
                                  CASE WHEN (SELECT disabled FROM endpoints e WHERE e.id = d.endpoint_id)
                                       THEN 'paused' ELSE 'scheduled' END
                              ELSE o.state END,
                 due_at = CASE WHEN d.resend_pending THEN hookd_now_ms()
                               WHEN o.state = 'scheduled' THEN hookd_now_ms() + o.after_ms
                               WHEN o.state = 'paused' THEN
                                   CASE WHEN (SELECT disabled FROM endpoints e WHERE e.id = d.endpoint_id)
                                        THEN NULL ELSE hookd_now_ms() END
                               ELSE NULL END,
                 attempts = o.attempts,
                 -- The next attempt is manual after a resend; after an attempt it is
                 -- scheduled; a delivery given back unsent keeps what it had.
                 next_trigger = CASE WHEN d.resend_pending THEN 1 WHEN o.attempted THEN 0 ELSE d.next_trigger END,
                 resend_pending = FALSE,
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = hookd_now_ms()
             FROM o JOIN locked ON locked.id = o.id
             WHERE d.id = o.id
             RETURNING d.id, o.token, d.endpoint_id, d.order_key
         ), att AS MATERIALIZED (
             SELECT * FROM unnest($7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                         $13::smallint[], $14::integer[], $15::text[], $16::bigint[], $17::smallint[], $18::bigint[],
                         $19::bigint[], $20::bigint[], $21::text[], $22::text[], $23::text[], $24::smallint[],
                         $25::bigint[], $26::integer[], $27::integer[])
                      AS a(id, org_id, app_id, msg_id, endpoint_id, url, status, response_status_code, response,
                           response_duration_ms, trigger_type, created_at, delivery_id, token, sent_headers,
                           response_headers, event_type, class, bytes, lat_idx, del_idx)
             WHERE (a.delivery_id, a.token) IN (SELECT id, token FROM updated)
         ), stored AS (
             INSERT INTO attempt (id, org_id, app_id, msg_id, endpoint_id, url, status, response_status_code,
                 response, response_duration_ms, trigger_type, created_at, sent_headers, response_headers)
             SELECT a.id, a.org_id, a.app_id, a.msg_id, a.endpoint_id, a.url, a.status, a.response_status_code,
                    a.response, a.response_duration_ms, a.trigger_type, a.created_at, a.sent_headers,
                    a.response_headers
             FROM att a
             ON CONFLICT (id) DO NOTHING
             RETURNING id
         ), counted AS MATERIALIZED (
             -- Statistics (crate::stats): attempts stored now, with facts (a
             -- NULL event type: statistics off), by minute.
             SELECT a.*, (a.created_at / 60000) * 60000 AS bucket FROM att a
             WHERE a.event_type IS NOT NULL AND a.id IN (SELECT id FROM stored)
         ), sums AS (
             SELECT org_id, app_id, endpoint_id, event_type, bucket, COUNT(*) AS attempts,
                    COUNT(*) FILTER (WHERE class = 0) AS success, COUNT(*) FILTER (WHERE class = 1) AS fail_4xx,
                    COUNT(*) FILTER (WHERE class = 2) AS fail_5xx, COUNT(*) FILTER (WHERE class = 3) AS fail_timeout,
                    COUNT(*) FILTER (WHERE class = 4) AS fail_connection,
                    COUNT(*) FILTER (WHERE class = 5) AS fail_tls, COUNT(*) FILTER (WHERE class = 6) AS fail_other,
                    SUM(bytes)::bigint AS bytes, SUM(GREATEST(response_duration_ms, 0))::bigint AS latency_sum_ms,
                    MAX(GREATEST(response_duration_ms, 0)) AS latency_max_ms
             FROM counted GROUP BY 1, 2, 3, 4, 5
         ), lat AS (
             SELECT org_id, app_id, endpoint_id, event_type, bucket, jsonb_object_agg(i::text, n) AS sketch
             FROM (SELECT org_id, app_id, endpoint_id, event_type, bucket, lat_idx AS i, COUNT(*) AS n
                   FROM counted GROUP BY 1, 2, 3, 4, 5, 6) x
             GROUP BY 1, 2, 3, 4, 5
         ), del AS (
             SELECT org_id, app_id, endpoint_id, event_type, bucket, jsonb_object_agg(i::text, n) AS sketch
             FROM (SELECT org_id, app_id, endpoint_id, event_type, bucket, del_idx AS i, COUNT(*) AS n
                   FROM counted WHERE del_idx >= 0 GROUP BY 1, 2, 3, 4, 5, 6) x
             GROUP BY 1, 2, 3, 4, 5
         ), rolled AS (
             INSERT INTO stats_rollup (org_id, app_id, endpoint_id, event_type, width_ms, bucket_start, attempts,
                 success, fail_4xx, fail_5xx, fail_timeout, fail_connection, fail_tls, fail_other, bytes,
                 latency_sum_ms, latency_max_ms, latency, delivery)
             SELECT s.org_id, s.app_id, s.endpoint_id, s.event_type, 60000, s.bucket, s.attempts, s.success,
                    s.fail_4xx, s.fail_5xx, s.fail_timeout, s.fail_connection, s.fail_tls, s.fail_other, s.bytes,
                    s.latency_sum_ms, s.latency_max_ms, COALESCE(lat.sketch, '{{}}'::jsonb),
                    COALESCE(del.sketch, '{{}}'::jsonb)
             FROM sums s
             LEFT JOIN lat USING (org_id, app_id, endpoint_id, event_type, bucket)
             LEFT JOIN del USING (org_id, app_id, endpoint_id, event_type, bucket)
             ORDER BY 1, 2, 3, 4, 6
             {MERGE}
         )
         -- The ordering keys of the outcomes' deliveries, whether updated now or
         -- by an earlier try of this batch (none for unordered endpoints; a
         -- probe by id each, of rows just read).
         SELECT DISTINCT d.endpoint_id, d.order_key FROM delivery d
         WHERE d.id = ANY($1) AND d.order_key IS NOT NULL"
    ))
    .bind(latest.iter().map(|o| o.delivery_id).collect::<Vec<i64>>())
    .bind(latest.iter().map(|o| o.lease_token).collect::<Vec<i64>>())
    .bind(latest.iter().map(|o| o.next.state().as_str()).collect::<Vec<&str>>())
    .bind(latest.iter().map(|o| i32::try_from(o.attempts).unwrap_or(i32::MAX)).collect::<Vec<i32>>())
    .bind(latest.iter().map(|o| o.next.due_after_ms().unwrap_or(0)).collect::<Vec<i64>>())
    .bind(latest.iter().map(|o| o.attempt.is_some()).collect::<Vec<bool>>())
    .bind(col(|a| &a.id))
    .bind(col(|a| &a.org_id))
    .bind(col(|a| &a.app_id))
    .bind(col(|a| &a.msg_id))
    .bind(col(|a| &a.endpoint_id))
    .bind(col(|a| &a.url))
    .bind(attempts.iter().map(|(a, _, _)| a.status as i16).collect::<Vec<i16>>())
    .bind(attempts.iter().map(|(a, _, _)| a.response_status_code).collect::<Vec<i32>>())
    .bind(col(|a| &a.response))
    .bind(attempts.iter().map(|(a, _, _)| a.response_duration_ms).collect::<Vec<i64>>())
    .bind(attempts.iter().map(|(a, _, _)| a.trigger as i16).collect::<Vec<i16>>())
    .bind(attempts.iter().map(|(a, _, _)| a.created_at).collect::<Vec<i64>>())
    .bind(attempts.iter().map(|(_, d, _)| *d).collect::<Vec<i64>>())
    .bind(attempts.iter().map(|(_, _, t)| *t).collect::<Vec<i64>>())
    .bind(header_col(|h| h.sent.as_deref()))
    .bind(header_col(|h| h.received.as_deref()))
    .bind(facts_col(|f| Some(f.event_type.as_str())))
    .bind(attempts.iter().map(|(a, _, _)| a.facts.as_ref().map_or(0, |f| f.class.code())).collect::<Vec<i16>>())
    .bind(attempts.iter().map(|(a, _, _)| a.facts.as_ref().map_or(0, |f| f.bytes)).collect::<Vec<i64>>())
    .bind(attempts.iter().map(|(a, _, _)| Sketch::index(a.response_duration_ms) as i32).collect::<Vec<i32>>())
    .bind(
        attempts
            .iter()
            .map(|(a, _, _)| {
                a.facts.as_ref().and_then(|f| f.delivered_after_ms).map_or(-1, |ms| Sketch::index(ms) as i32)
            })
            .collect::<Vec<i32>>(),
    )
    .fetch_all(&mut *c)
    .await?;
    if done.is_empty() {
        return Ok(0);
    }
    // Committed: a delivery parked behind one of these is released now, or,
    // should this fail (the outcomes stand), when the batch is retried, or by
    // the retention sweep.
    let mut tx = c.begin().await?;
    ordering::lock(&mut tx, &done).await?;
    let released = ordering::release_heads(&mut tx, &done).await?;
    tx.commit().await?;
    Ok(released)
}

/// `from` → leased to `lease.owner` under a new token; `None` when the delivery
/// is no longer in `from`.
async fn lease_one(c: &mut PgConnection, id: i64, from: &str, lease: &Lease) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "UPDATE delivery SET state = 'leased', lease_owner = $3, lease_expires_at = hookd_now_ms() + $4,
             lease_token = lease_token + 1, updated_at = hookd_now_ms()
         WHERE id = $1 AND state = $2 RETURNING lease_token",
    )
    .bind(id)
    .bind(from)
    .bind(&lease.owner)
    .bind(lease.duration_ms)
    .fetch_optional(c)
    .await?)
}

/// See `Queue::resend`. Run inside a transaction.
pub async fn resend(
    c: &mut PgConnection,
    msg: &Message,
    ep: &Endpoint,
    lease: Option<&Lease>,
) -> Result<Vec<DeliveryJob>> {
    let endpoint_id = ep.id.as_str();
    let lease = match lease {
        Some(l) if !owners::take(c, &[endpoint_id.to_string()], l).await?.is_empty() => Some(l),
        _ => None,
    };
    const EXISTING: &str =
        "SELECT id, state, order_key FROM delivery WHERE msg_id = $1 AND endpoint_id = $2 FOR UPDATE";
    // A delivery with a key made waiting again takes the key's lock first
    // (before its row, see `ordering`): an enqueue of that key that found
    // nothing waiting (and may have leased its delivery) commits first, and the
    // claim then sees it in flight; a later one sees this one waiting.
    let found: Option<Option<String>> =
        sqlx::query_scalar("SELECT order_key FROM delivery WHERE msg_id = $1 AND endpoint_id = $2")
            .bind(&msg.id)
            .bind(endpoint_id)
            .fetch_optional(&mut *c)
            .await?;
    let mut existing: Option<(i64, String, Option<String>)> = None;
    if let Some(key) = found {
        if let Some(k) = key {
            ordering::lock(&mut *c, &[(ep.id.clone(), k)]).await?;
        }
        existing = sqlx::query_as(EXISTING).bind(&msg.id).bind(endpoint_id).fetch_optional(&mut *c).await?;
    }
    if existing.is_none() {
        // The message never went there: create the delivery, in its key's order
        // when the endpoint is ordered (parked behind another of its key still
        // waiting, decided under the key's lock). A concurrent resend may create
        // it first; then it is read (and locked) instead.
        let key = crate::ordering::key_for(ep, msg);
        let parked = match &key {
            Some(k) => ordering::parked_behind(c, &[(ep.id.clone(), k.clone())]).await?.contains(&true),
            None => false,
        };
        let placed = messages::Placement { order_key: key.as_deref(), parked };
        let inserted = messages::insert_delivery(c, msg, endpoint_id, "scheduled", placed).await?;
        existing = match inserted {
            Some(id) if parked => {
                // Manual, and due when its turn comes.
                sqlx::query("UPDATE delivery SET next_trigger = $2 WHERE id = $1")
                    .bind(id)
                    .bind(AttemptTrigger::Manual as i16)
                    .execute(&mut *c)
                    .await?;
                return Ok(Vec::new());
            }
            Some(id) => Some((id, "scheduled".to_string(), key)),
            None => sqlx::query_as(EXISTING).bind(&msg.id).bind(endpoint_id).fetch_optional(&mut *c).await?,
        };
    }
    let Some((id, from, order_key)) = existing else { return Ok(Vec::new()) };
    // An ordered endpoint's delivery goes when it is the first of its key; the
    // claim sees to that, so it is not leased here.
    let lease = lease.filter(|_| order_key.is_none());
    match from.as_str() {
        "leased" => {
            sqlx::query("UPDATE delivery SET resend_pending = TRUE WHERE id = $1 AND state = 'leased'")
                .bind(id)
                .execute(&mut *c)
                .await?;
            return Ok(Vec::new());
        }
        "paused" => return Ok(Vec::new()),
        _ => {}
    }
    sqlx::query(
        "UPDATE delivery SET state = 'scheduled', due_at = hookd_now_ms(), next_trigger = $3,
             updated_at = hookd_now_ms()
         WHERE id = $1 AND state = $2",
    )
    .bind(id)
    .bind(&from)
    .bind(AttemptTrigger::Manual as i16)
    .execute(&mut *c)
    .await?;
    let Some(lease) = lease else { return Ok(Vec::new()) };
    match lease_one(c, id, "scheduled", lease).await? {
        Some(token) => messages::load_jobs(c, &[(id, token)]).await,
        None => Ok(Vec::new()),
    }
}

/// Disabling an endpoint pauses what is due for it; enabling makes that due
/// now. Parked deliveries of an ordered endpoint stay parked through both
/// (only the first of each key waits paused, so neither touches a long queue
/// row by row); what was paused of it waits parked again, and the first
/// waiting of each key is due.
pub async fn pause_endpoint(c: &mut PgConnection, endpoint_id: &str) -> Result<u64> {
    let n = sqlx::query(
        "WITH waiting AS MATERIALIZED (
             SELECT id FROM delivery
             WHERE endpoint_id = $1 AND state = 'scheduled' AND (order_key IS NULL OR due_at IS NOT NULL)
             ORDER BY id FOR UPDATE
         )
         UPDATE delivery d SET state = 'paused', due_at = NULL, updated_at = hookd_now_ms()
         FROM waiting WHERE d.id = waiting.id AND d.state = 'scheduled'",
    )
    .bind(endpoint_id)
    .execute(c)
    .await?;
    Ok(n.rows_affected())
}

/// See [`pause_endpoint`]. The keys' locks are taken before any delivery row
/// (see `ordering`); the endpoint's row, locked by the caller, keeps new paused
/// deliveries (and so new keys to lock) out meanwhile.
pub async fn resume_endpoint(c: &mut PgConnection, endpoint_id: &str) -> Result<u64> {
    let keys = ordering::keys_of_endpoint(&mut *c, endpoint_id).await?;
    ordering::lock(&mut *c, &keys).await?;
    let n = sqlx::query(
        "WITH paused AS MATERIALIZED (
             SELECT id FROM delivery WHERE endpoint_id = $1 AND state = 'paused' ORDER BY id FOR UPDATE
         )
         UPDATE delivery d SET state = 'scheduled',
             due_at = CASE WHEN d.order_key IS NULL THEN hookd_now_ms() END, updated_at = hookd_now_ms()
         FROM paused WHERE d.id = paused.id AND d.state = 'paused'",
    )
    .bind(endpoint_id)
    .execute(&mut *c)
    .await?;
    ordering::release_heads(c, &keys).await?;
    Ok(n.rows_affected())
}

/// See `Queue::oldest_due`.
pub async fn oldest_due(c: &mut PgConnection) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar("SELECT MIN(due_at) FROM delivery WHERE state = 'scheduled'").fetch_one(c).await?)
}

pub async fn pending_count(c: &mut PgConnection) -> Result<u64> {
    // Two counts, each over its partial index.
    let n: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM delivery WHERE state = 'scheduled')
              + (SELECT COUNT(*) FROM delivery WHERE state = 'leased')",
    )
    .fetch_one(c)
    .await?;
    Ok(n as u64)
}
