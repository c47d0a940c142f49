//! Messages and their fan-out into deliveries.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use hookd_core::AttemptTrigger;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::owners::{self, Standing};
use super::rows::{self, ENDPOINT_COLUMNS, MESSAGE_COLUMNS, MESSAGE_COLUMNS_NO_PAYLOAD, MESSAGE_COLUMN_COUNT};
use super::{endpoints, ordering, tokens};
use crate::model::*;
use crate::recipients::Recipients;
use crate::{Result, StoreError};

const EVENT_ID_TAKEN: &str = "a message with this eventId";

/// Inserts the message and one delivery per endpoint that accepts it (in one
/// multi-row insert); returns the deliveries ready to send and how many were
/// left scheduled for their owners. Run inside a transaction.
pub async fn create(
    c: &mut PgConnection,
    msg: &Message,
    only_endpoint: Option<&str>,
    lease: Option<&Lease>,
    idem: Option<&IdempotencyRecord>,
) -> Result<(Vec<DeliveryJob>, usize)> {
    tokens::maybe_idempotency(c, idem).await?;
    // A repeated eventId is an ordinary request, not an error: DO NOTHING keeps
    // the transaction usable to name the message that has it (and the server log
    // free of unique violations). A concurrent insert of the same eventId is
    // waited for, then seen.
    let inserted = sqlx::query(
        "INSERT INTO message (org_id, app_id, id, event_id, event_type, channels, tags, payload, created_at, expires_at,
             deliver_at)
         VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10, $11)
         ON CONFLICT (app_id, event_id) WHERE event_id IS NOT NULL DO NOTHING
         RETURNING 1",
    )
    .bind(&msg.org_id)
    .bind(&msg.app_id)
    .bind(&msg.id)
    .bind(&msg.event_id)
    .bind(&msg.event_type)
    .bind(rows::json_opt(&msg.channels))
    .bind(rows::json_opt(&msg.tags))
    .bind(msg.payload.as_deref())
    .bind(msg.created_at)
    .bind(msg.expires_at)
    .bind(msg.deliver_at)
    .fetch_optional(&mut *c)
    .await
    .map_err(|e| rows::unique_violation(e, EVENT_ID_TAKEN))?;
    if inserted.is_none() {
        let existing_id = sqlx::query_scalar("SELECT id FROM message WHERE app_id = $1 AND event_id = $2")
            .bind(&msg.app_id)
            .bind(&msg.event_id)
            .fetch_optional(&mut *c)
            .await?;
        return Err(StoreError::Conflict { what: EVENT_ID_TAKEN, existing_id });
    }

    let (endpoints, now) = endpoints::all_of_app(c, &msg.org_id, &msg.app_id).await?;
    let recipients = Recipients::new(msg);
    let wanted: Vec<_> = endpoints
        .into_iter()
        .filter(|(ep, _)| match only_endpoint {
            Some(only) => ep.id == only,
            None => recipients.wants(ep),
        })
        .collect();
    if wanted.is_empty() {
        return Ok((Vec::new(), 0));
    }

    // Lease only what goes to endpoints this node owns; the rest is the owner's.
    let mut owned: HashSet<String> = HashSet::new();
    if let Some(lease) = lease {
        let mut to_take = Vec::new();
        for (ep, holder) in wanted.iter().filter(|(ep, _)| !ep.disabled) {
            match owners::standing(holder.as_ref(), lease, now) {
                Standing::Holds => {
                    owned.insert(ep.id.clone());
                }
                Standing::Take => to_take.push(ep.id.clone()),
                Standing::Other => {}
            }
        }
        if !to_take.is_empty() {
            to_take.sort();
            owned.extend(owners::take(c, &to_take, lease).await?);
        }
    }

    // To an ordered endpoint, behind a delivery of the same key still waiting:
    // parked until that one is done. Decided under the keys' locks (after the
    // queues above, as everywhere), so concurrent enqueues to a key keep their
    // order.
    let keys: Vec<Option<String>> = wanted.iter().map(|(ep, _)| crate::ordering::key_for(ep, msg)).collect();
    let ordered: Vec<ordering::OrderKey> =
        wanted.iter().zip(&keys).filter_map(|((ep, _), key)| Some((ep.id.clone(), key.clone()?))).collect();
    let mut parked: HashSet<String> = HashSet::new();
    if !ordered.is_empty() {
        let behind = ordering::parked_behind(c, &ordered).await?;
        parked.extend(ordered.into_iter().zip(behind).filter(|(_, behind)| *behind).map(|((ep, _), _)| ep));
    }
    // A parked delivery is not leased, nor is a test send to a disabled endpoint
    // (never owned above): that is scheduled, the node that claims it pauses it
    // (only an outcome decides a pause, against the endpoint as it is then), and
    // an enable sends it.
    owned.retain(|ep| !parked.contains(ep));
    let endpoint_ids: Vec<&str> = wanted.iter().map(|(ep, _)| ep.id.as_str()).collect();
    let states: Vec<&str> =
        wanted.iter().map(|(ep, _)| if owned.contains(&ep.id) { "leased" } else { "scheduled" }).collect();
    let placed: Vec<Placement> = wanted
        .iter()
        .zip(&keys)
        .map(|((ep, _), key)| Placement { order_key: key.as_deref(), parked: parked.contains(&ep.id) })
        .collect();
    let ids = insert_deliveries(c, msg, &endpoint_ids, &states, &placed, lease).await?;

    let unleased = states.iter().filter(|s| **s == "scheduled").count();
    let mut jobs = Vec::with_capacity(owned.len());
    for (ep, _) in wanted.into_iter().filter(|(ep, _)| owned.contains(&ep.id)) {
        let delivery_id = *ids.get(&ep.id).ok_or_else(|| StoreError::Internal("a delivery was not inserted".into()))?;
        jobs.push(DeliveryJob {
            delivery_id,
            lease_token: 1,
            org_id: msg.org_id.clone(),
            app_id: msg.app_id.clone(),
            msg_id: msg.id.clone(),
            event_type: msg.event_type.clone(),
            msg_created_at: msg.created_at,
            payload: msg.payload.clone(),
            endpoint: Arc::new(ep),
            attempts: 0,
            trigger: AttemptTrigger::Scheduled,
        });
    }
    Ok((jobs, unleased))
}

/// Where a new delivery goes in its endpoint's order: its ordering key (an
/// ordered endpoint's), and whether it waits parked behind another.
#[derive(Debug, Clone, Copy, Default)]
pub struct Placement<'a> {
    pub order_key: Option<&'a str>,
    pub parked: bool,
}

/// One delivery of `msg` per endpoint, in the state given for it (leased ones to
/// `lease` under token 1, scheduled ones due now or at the message's
/// `deliver_at`, or parked: not due until released), in one statement. Returns
/// the new ids by endpoint id.
async fn insert_deliveries(
    c: &mut PgConnection,
    msg: &Message,
    endpoint_ids: &[&str],
    states: &[&str],
    placed: &[Placement<'_>],
    lease: Option<&Lease>,
) -> Result<HashMap<String, i64>> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "INSERT INTO delivery (org_id, app_id, msg_id, endpoint_id, state, attempts, due_at,
             lease_owner, lease_expires_at, lease_token, created_at, updated_at, order_key)
         SELECT $1, $2, $3, t.endpoint_id, t.state, 0,
                CASE WHEN t.state = 'scheduled' AND NOT t.parked THEN COALESCE($8::bigint, hookd_now_ms()) END,
                CASE WHEN t.state = 'leased' THEN $4 END,
                CASE WHEN t.state = 'leased' THEN hookd_now_ms() + $5::bigint END,
                CASE WHEN t.state = 'leased' THEN 1 ELSE 0 END,
                hookd_now_ms(), hookd_now_ms(), t.order_key
         FROM unnest($6::text[], $7::text[], $9::text[], $10::boolean[]) AS t(endpoint_id, state, order_key, parked)
         RETURNING id, endpoint_id",
    )
    .bind(&msg.org_id)
    .bind(&msg.app_id)
    .bind(&msg.id)
    .bind(lease.map(|l| l.owner.as_str()))
    .bind(lease.map(|l| l.duration_ms))
    .bind(endpoint_ids)
    .bind(states)
    .bind(msg.deliver_at)
    .bind(placed.iter().map(|p| p.order_key).collect::<Vec<Option<&str>>>())
    .bind(placed.iter().map(|p| p.parked).collect::<Vec<bool>>())
    .fetch_all(c)
    .await?;
    Ok(rows.into_iter().map(|(id, ep)| (ep, id)).collect())
}

/// A new delivery of `msg` to the endpoint in `state` (scheduled: due now;
/// parked: not due until released); `None` when the message already has one
/// there.
pub async fn insert_delivery(
    c: &mut PgConnection,
    msg: &Message,
    endpoint_id: &str,
    state: &str,
    placed: Placement<'_>,
) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "INSERT INTO delivery (org_id, app_id, msg_id, endpoint_id, state, attempts, due_at, created_at, updated_at,
             order_key)
         VALUES ($1, $2, $3, $4, $5, 0, CASE WHEN $5 = 'scheduled' AND NOT $7 THEN hookd_now_ms() END,
                 hookd_now_ms(), hookd_now_ms(), $6)
         ON CONFLICT (msg_id, endpoint_id) DO NOTHING
         RETURNING id",
    )
    .bind(&msg.org_id)
    .bind(&msg.app_id)
    .bind(&msg.id)
    .bind(endpoint_id)
    .bind(state)
    .bind(placed.order_key)
    .bind(placed.parked)
    .fetch_optional(c)
    .await?)
}

pub async fn list(
    c: &mut PgConnection,
    org_id: &str,
    app_id: &str,
    f: &MessageFilter,
    page: &Page,
) -> Result<Vec<Message>> {
    let cols = if f.with_content { MESSAGE_COLUMNS } else { MESSAGE_COLUMNS_NO_PAYLOAD };
    let mut q = QueryBuilder::new(format!("SELECT {cols} FROM message m WHERE m.org_id = "));
    q.push_bind(org_id).push(" AND m.app_id = ").push_bind(app_id);
    push_filter(&mut q, f);
    rows::push_page(&mut q, page, "m.id");
    rows::collect(q.build().fetch_all(c).await?, rows::message)
}

/// Whether the filter has any condition on the message (`with_content` is not one).
pub fn filter_is_empty(f: &MessageFilter) -> bool {
    f.event_types.is_empty() && f.channel.is_none() && f.tag.is_none() && f.before.is_none() && f.after.is_none()
}

/// Appends the filter's conditions on the message aliased `m`.
pub fn push_filter(q: &mut QueryBuilder<'_, Postgres>, f: &MessageFilter) {
    if !f.event_types.is_empty() {
        q.push(" AND m.event_type = ANY(").push_bind(f.event_types.clone()).push(")");
    }
    if let Some(ch) = &f.channel {
        q.push(" AND m.channels ? ").push_bind(ch.clone());
    }
    if let Some(tag) = &f.tag {
        q.push(" AND m.tags ? ").push_bind(tag.clone());
    }
    if let Some(before) = f.before {
        q.push(" AND m.created_at < ").push_bind(before);
    }
    if let Some(after) = f.after {
        q.push(" AND m.created_at > ").push_bind(after);
    }
}

pub async fn get(c: &mut PgConnection, org_id: &str, app_id: &str, id_or_event_id: &str) -> Result<Message> {
    let row = sqlx::query(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM message m WHERE m.org_id = $1 AND m.app_id = $2 AND (m.id = $3 OR m.event_id = $3)
         ORDER BY m.id = $3 DESC LIMIT 1"
    ))
    .bind(org_id)
    .bind(app_id)
    .bind(id_or_event_id)
    .fetch_one(c)
    .await?;
    Ok(rows::message(&row)?)
}

/// Removes the payload; deliveries that wait for it are canceled (a leased one
/// is canceled when its node next claims it and finds no payload), and the
/// deliveries of ordered endpoints parked behind them move up. Returns how many
/// parked deliveries were made due. Run inside a transaction.
pub async fn expunge_content(c: &mut PgConnection, org_id: &str, app_id: &str, msg_id: &str) -> Result<u64> {
    let n = sqlx::query("UPDATE message SET payload = NULL WHERE org_id = $1 AND app_id = $2 AND id = $3")
        .bind(org_id)
        .bind(app_id)
        .bind(msg_id)
        .execute(&mut *c)
        .await?;
    if n.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    let (_, released) = cancel_waiting(c, msg_id).await?;
    Ok(released)
}

/// Cancels the message's deliveries that wait (scheduled, paused); returns how
/// many, and how many deliveries parked behind them were made due. One in
/// flight finishes its attempt. Run inside a transaction.
pub async fn cancel(c: &mut PgConnection, org_id: &str, app_id: &str, msg_id: &str) -> Result<(u64, u64)> {
    get(&mut *c, org_id, app_id, msg_id).await?;
    cancel_waiting(c, msg_id).await
}

/// Cancels the message's deliveries that wait, then releases the next of each
/// ordering key they are in, under the keys' locks (taken before any delivery
/// row, see `ordering`). Returns (canceled, released).
async fn cancel_waiting(c: &mut PgConnection, msg_id: &str) -> Result<(u64, u64)> {
    let keys = ordering::keys_of_msgs(&mut *c, &[msg_id.to_string()]).await?;
    ordering::lock(&mut *c, &keys).await?;
    let n = sqlx::query(
        "UPDATE delivery SET state = 'canceled', due_at = NULL, updated_at = hookd_now_ms()
         WHERE msg_id = $1 AND state IN ('scheduled', 'paused')",
    )
    .bind(msg_id)
    .execute(&mut *c)
    .await?;
    let released = ordering::release_heads(c, &keys).await?;
    Ok((n.rows_affected(), released))
}

/// Loads what is needed to send deliveries leased under the given tokens, in
/// one query; jobs come back in the order given, endpoints and payloads shared
/// per batch. Ids whose delivery is gone are skipped.
pub async fn load_jobs(c: &mut PgConnection, leased: &[(i64, i64)]) -> Result<Vec<DeliveryJob>> {
    let ids: Vec<i64> = leased.iter().map(|(id, _)| *id).collect();
    let rows = sqlx::query(&format!(
        "SELECT d.id, d.attempts, d.next_trigger, {MESSAGE_COLUMNS}, {ENDPOINT_COLUMNS} FROM delivery d
         JOIN message m ON m.id = d.msg_id JOIN endpoint e ON e.id = d.endpoint_id WHERE d.id = ANY($1)"
    ))
    .bind(&ids)
    .fetch_all(c)
    .await?;
    let position: HashMap<i64, (usize, i64)> =
        leased.iter().enumerate().map(|(i, (id, token))| (*id, (i, *token))).collect();
    const MSG_AT: usize = 3;
    let mut endpoints: HashMap<String, Arc<Endpoint>> = HashMap::new();
    // One payload in memory per message, however many of its deliveries are loaded.
    let mut payloads: HashMap<String, Arc<[u8]>> = HashMap::new();
    let mut jobs = Vec::with_capacity(rows.len());
    for r in &rows {
        let msg = rows::message_at(r, MSG_AT)?;
        let endpoint_at = MSG_AT + MESSAGE_COLUMN_COUNT;
        let ep_id: String = r.try_get(endpoint_at + 2)?;
        let endpoint = match endpoints.get(&ep_id) {
            Some(ep) => ep.clone(),
            None => {
                let ep = Arc::new(rows::endpoint_at(r, endpoint_at)?);
                endpoints.insert(ep_id, ep.clone());
                ep
            }
        };
        let payload = msg.payload.map(|p| payloads.entry(msg.id.clone()).or_insert(p).clone());
        let delivery_id: i64 = r.try_get(0)?;
        let trigger: i16 = r.try_get(2)?;
        jobs.push(DeliveryJob {
            delivery_id,
            lease_token: position.get(&delivery_id).map_or(0, |p| p.1),
            org_id: msg.org_id,
            app_id: msg.app_id,
            msg_id: msg.id,
            event_type: msg.event_type,
            msg_created_at: msg.created_at,
            payload,
            endpoint,
            attempts: rows::attempts_at(r, 1)?,
            trigger: AttemptTrigger::from_i64(trigger.into()).unwrap_or(AttemptTrigger::Scheduled),
        });
    }
    jobs.sort_by_key(|j| position.get(&j.delivery_id).map(|p| p.0));
    Ok(jobs)
}
