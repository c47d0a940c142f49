//! Poller sinks, their log, consumers and tokens ([`crate::poller`]).
//!
//! The log is written by the `poller_log_append` trigger (migration 0013) in
//! the writer's transaction that creates a message; one writer commits in
//! order, so an offset is final once it is visible.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::rows::{self, MESSAGE_COLUMNS};
use crate::codec::{self, DecodeError};
use crate::model::{Message, Page};
use crate::poller::*;
use crate::{Result, StoreError};

const SINK_COLUMNS: &str = "org_id, app_id, id, uid, disabled, batch_size, max_wait_secs, event_types, channels, \
                            metadata, start_offset, created_at, updated_at";
const UID_TAKEN: &str = "a sink with this uid";

fn decode_failure(e: DecodeError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e)
}

fn sink(r: &Row) -> rusqlite::Result<PollerSink> {
    Ok(PollerSink {
        org_id: r.get(0)?,
        app_id: r.get(1)?,
        id: r.get(2)?,
        uid: r.get(3)?,
        disabled: r.get(4)?,
        batch_size: r.get(5)?,
        max_wait_secs: r.get(6)?,
        event_types: codec::parse_opt(r.get::<_, Option<String>>(7)?.as_deref()).map_err(decode_failure)?,
        channels: codec::parse_opt(r.get::<_, Option<String>>(8)?.as_deref()).map_err(decode_failure)?,
        metadata: codec::parse(&r.get::<_, String>(9)?).map_err(decode_failure)?,
        start_offset: r.get(10)?,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
    })
}

pub fn list(c: &Connection, org_id: &str, app_id: &str, page: &Page) -> Result<Vec<PollerSink>> {
    let mut params: Vec<rusqlite::types::Value> = vec![org_id.to_string().into(), app_id.to_string().into()];
    let sql = format!(
        "SELECT {SINK_COLUMNS} FROM poller_sink WHERE org_id = ? AND app_id = ?{}",
        rows::page_clause(page, "id", &mut params)
    );
    rows::collect(&mut *c.prepare_cached(&sql)?, params, sink)
}

pub fn get(c: &Connection, org_id: &str, app_id: &str, id_or_uid: &str) -> Result<PollerSink> {
    Ok(c.prepare_cached(&format!(
        "SELECT {SINK_COLUMNS} FROM poller_sink WHERE org_id = ?1 AND app_id = ?2 AND (id = ?3 OR uid = ?3)
         ORDER BY id = ?3 DESC LIMIT 1"
    ))?
    .query_row(params![org_id, app_id, id_or_uid], sink)?)
}

/// Every way a message is made (the API, inbound sources, operational
/// webhooks) logs it here, in the same transaction, without the send path
/// knowing. Made with the first sink, so a store without poller sinks runs no
/// trigger per message; after that, an application without sinks costs one
/// index probe per message.
const LOG_TRIGGER: &str = "CREATE TRIGGER IF NOT EXISTS poller_log_append AFTER INSERT ON message
     WHEN EXISTS (SELECT 1 FROM poller_sink WHERE app_id = NEW.app_id)
     BEGIN
         INSERT INTO poller_log (org_id, app_id, msg_id) VALUES (NEW.org_id, NEW.app_id, NEW.id);
     END";

/// Stores a new sink, starting at the log's end, with its first token.
pub fn insert(c: &Connection, s: &PollerSink, token: &PollerToken) -> Result<PollerSink> {
    c.execute_batch(LOG_TRIGGER)?;
    let mut s = s.clone();
    s.start_offset = log_end(c, &s.org_id, &s.app_id)?;
    c.prepare_cached(&format!(
        "INSERT INTO poller_sink ({SINK_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    ))?
    .execute(params![
        s.org_id,
        s.app_id,
        s.id,
        s.uid,
        s.disabled,
        s.batch_size,
        s.max_wait_secs,
        rows::json_opt(&s.event_types),
        rows::json_opt(&s.channels),
        rows::json(&s.metadata),
        s.start_offset,
        s.created_at,
        s.updated_at
    ])
    .map_err(|e| uid_conflict(c, e, &s))?;
    insert_token(c, token)?;
    Ok(s)
}

/// Stores the sink's settings (not where it starts).
pub fn update(c: &Connection, s: &PollerSink) -> Result<()> {
    let n = c
        .prepare_cached(
            "UPDATE poller_sink SET uid = ?4, disabled = ?5, batch_size = ?6, max_wait_secs = ?7, event_types = ?8,
                 channels = ?9, metadata = ?10, updated_at = ?11
             WHERE org_id = ?1 AND app_id = ?2 AND id = ?3",
        )?
        .execute(params![
            s.org_id,
            s.app_id,
            s.id,
            s.uid,
            s.disabled,
            s.batch_size,
            s.max_wait_secs,
            rows::json_opt(&s.event_types),
            rows::json_opt(&s.channels),
            rows::json(&s.metadata),
            s.updated_at
        ])
        .map_err(|e| uid_conflict(c, e, s))?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

fn uid_conflict(c: &Connection, e: rusqlite::Error, s: &PollerSink) -> StoreError {
    match rows::unique_violation(e, UID_TAKEN) {
        StoreError::Conflict { what, .. } => {
            let existing_id = s.uid.as_deref().and_then(|uid| get(c, &s.org_id, &s.app_id, uid).ok()).map(|x| x.id);
            StoreError::Conflict { what, existing_id }
        }
        other => other,
    }
}

/// Removes the sink with its consumers and tokens (cascaded).
pub fn delete(c: &Connection, org_id: &str, app_id: &str, id: &str) -> Result<()> {
    let n = c.execute(
        "DELETE FROM poller_sink WHERE org_id = ?1 AND app_id = ?2 AND id = ?3",
        params![org_id, app_id, id],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    // Without a sink, the application's messages are no longer logged, and
    // what was is of no use.
    c.execute(
        "DELETE FROM poller_log WHERE org_id = ?1 AND app_id = ?2
         AND NOT EXISTS (SELECT 1 FROM poller_sink WHERE app_id = ?2)",
        params![org_id, app_id],
    )?;
    Ok(())
}

/// The application's last offset (0 when nothing was logged).
pub fn log_end(c: &Connection, org_id: &str, app_id: &str) -> Result<i64> {
    Ok(c.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM poller_log WHERE org_id = ?1 AND app_id = ?2")?
        .query_row(params![org_id, app_id], |r| r.get(0))?)
}

/// A page of what the sink shows after offset `after`.
pub fn read(c: &Connection, sink: &PollerSink, after: i64, only: &PollOnly, limit: usize) -> Result<PollPage> {
    let scan = scan_size(sink, only, limit);
    let window = c
        .prepare_cached(
            "SELECT l.seq, m.id, m.event_type, m.channels FROM poller_log l JOIN message m ON m.id = l.msg_id
             WHERE l.org_id = ?1 AND l.app_id = ?2 AND l.seq > ?3 ORDER BY l.seq LIMIT ?4",
        )?
        .query_map(params![sink.org_id, sink.app_id, after, scan as i64], |r| {
            Ok(LogRow {
                seq: r.get(0)?,
                msg_id: r.get(1)?,
                event_type: r.get(2)?,
                channels: codec::parse_opt(r.get::<_, Option<String>>(3)?.as_deref()).map_err(decode_failure)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let (picked, next, done) = pick(window, sink, only, after, limit, scan);
    let ids: Vec<&str> = picked.iter().map(|(_, id)| id.as_str()).collect();
    let mut found: HashMap<String, Message> = c
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM message m WHERE m.org_id = ?1 AND m.id IN (SELECT value FROM json_each(?2))"
        ))?
        .query_map(params![sink.org_id, rows::json(&ids)], rows::message)?
        .map(|m| m.map(|m| (m.id.clone(), m)))
        .collect::<rusqlite::Result<_>>()?;
    // A message deleted since the window was read is skipped.
    let messages = picked.into_iter().filter_map(|(seq, id)| found.remove(&id).map(|m| (seq, m))).collect();
    Ok(PollPage { messages, next, done })
}

/// The offset just before the first message logged for the application that
/// was created after `after_ms`; the log's end when there is none.
pub fn offset_after(c: &Connection, org_id: &str, app_id: &str, after_ms: i64) -> Result<i64> {
    let floor = hookd_core::id::id_floor_at(hookd_core::IdPrefix::Message, (after_ms + 1).max(0) as u64);
    let first: Option<i64> = c
        .prepare_cached("SELECT MIN(seq) FROM poller_log WHERE org_id = ?1 AND app_id = ?2 AND msg_id >= ?3")?
        .query_row(params![org_id, app_id, floor], |r| r.get(0))?;
    match first {
        Some(seq) => Ok(seq - 1),
        None => log_end(c, org_id, app_id),
    }
}

pub fn consumer(
    c: &Connection,
    org_id: &str,
    sink_id: &str,
    consumer_id: &str,
    now: i64,
) -> Result<Option<PollerConsumer>> {
    Ok(c.prepare_cached(
        "SELECT position, read_end, lease_until FROM poller_consumer
         WHERE sink_id = ?1 AND consumer_id = ?2 AND org_id = ?3",
    )?
    .query_row(params![sink_id, consumer_id, org_id], |r| {
        Ok(PollerConsumer {
            consumer_id: consumer_id.to_string(),
            position: r.get(0)?,
            read_end: r.get(1)?,
            leased: r.get::<_, Option<i64>>(2)?.is_some_and(|until| until > now),
        })
    })
    .optional()?)
}

/// Refuses a new consumer of a sink that has [`MAX_CONSUMERS`].
fn room_for_consumer(c: &Connection, sink_id: &str, consumer_id: &str) -> Result<()> {
    let (exists, count): (bool, i64) = c
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM poller_consumer WHERE sink_id = ?1 AND consumer_id = ?2),
                    (SELECT COUNT(*) FROM poller_consumer WHERE sink_id = ?1)",
        )?
        .query_row(params![sink_id, consumer_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if !exists && count >= MAX_CONSUMERS {
        return Err(StoreError::Invalid {
            field: "consumer_id",
            msg: format!("a sink has at most {MAX_CONSUMERS} consumers"),
        });
    }
    Ok(())
}

/// Makes the consumer at `position` unless it exists; returns it as it is.
pub fn ensure_consumer(
    c: &Connection,
    org_id: &str,
    sink_id: &str,
    consumer_id: &str,
    position: i64,
    now: i64,
) -> Result<PollerConsumer> {
    room_for_consumer(c, sink_id, consumer_id)?;
    c.prepare_cached(
        "INSERT INTO poller_consumer (org_id, sink_id, consumer_id, position, read_end, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5) ON CONFLICT (sink_id, consumer_id) DO NOTHING",
    )?
    .execute(params![org_id, sink_id, consumer_id, position, now])?;
    consumer(c, org_id, sink_id, consumer_id, now)?.ok_or(StoreError::NotFound)
}

/// Puts the consumer at `position` (made there if new), ending its lease.
pub fn move_consumer(
    c: &Connection,
    org_id: &str,
    sink_id: &str,
    consumer_id: &str,
    position: i64,
    now: i64,
) -> Result<()> {
    room_for_consumer(c, sink_id, consumer_id)?;
    c.prepare_cached(
        "INSERT INTO poller_consumer (org_id, sink_id, consumer_id, position, read_end, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5)
         ON CONFLICT (sink_id, consumer_id) DO UPDATE SET position = excluded.position,
             read_end = MAX(read_end, excluded.position), lease_end = NULL, lease_until = NULL,
             updated_at = excluded.updated_at",
    )?
    .execute(params![org_id, sink_id, consumer_id, position, now])?;
    Ok(())
}

/// Takes a batch (or skips what did not match) for a consumer still at
/// `from` and holding no lease; false when it moved or is leased meanwhile.
pub fn claim(
    c: &Connection,
    org_id: &str,
    sink_id: &str,
    consumer_id: &str,
    claim: PollerClaim,
    now: i64,
) -> Result<bool> {
    let n = match claim {
        PollerClaim::Batch { from, end, lease_ms } => c
            .prepare_cached(
                "UPDATE poller_consumer SET read_end = MAX(read_end, ?4), lease_end = ?4,
                     lease_until = CASE WHEN ?5 > 0 THEN ?6 + ?5 END, updated_at = ?6
                 WHERE sink_id = ?1 AND consumer_id = ?2 AND position = ?3 AND org_id = ?7
                   AND (lease_until IS NULL OR lease_until <= ?6)",
            )?
            .execute(params![sink_id, consumer_id, from, end, lease_ms, now, org_id])?,
        PollerClaim::Skip { from, to } => c
            .prepare_cached(
                "UPDATE poller_consumer SET position = ?4, read_end = MAX(read_end, ?4), updated_at = ?5
                 WHERE sink_id = ?1 AND consumer_id = ?2 AND position = ?3 AND org_id = ?6
                   AND (lease_until IS NULL OR lease_until <= ?5)",
            )?
            .execute(params![sink_id, consumer_id, from, to, now, org_id])?,
    };
    Ok(n == 1)
}

/// Records that the consumer is done with every offset up to `offset`; a
/// commit that covers its leased batch ends the lease.
pub fn commit(c: &Connection, org_id: &str, sink_id: &str, consumer_id: &str, offset: i64, now: i64) -> Result<()> {
    let read_end: i64 = c
        .prepare_cached("SELECT read_end FROM poller_consumer WHERE sink_id = ?1 AND consumer_id = ?2 AND org_id = ?3")?
        .query_row(params![sink_id, consumer_id, org_id], |r| r.get(0))?;
    if offset > read_end {
        return Err(beyond_read(read_end));
    }
    c.prepare_cached(
        "UPDATE poller_consumer SET position = MAX(position, ?3),
             lease_until = CASE WHEN lease_end IS NULL OR ?3 >= lease_end THEN NULL ELSE lease_until END,
             lease_end = CASE WHEN lease_end IS NULL OR ?3 >= lease_end THEN NULL ELSE lease_end END,
             updated_at = ?4
         WHERE sink_id = ?1 AND consumer_id = ?2",
    )?
    .execute(params![sink_id, consumer_id, offset, now])?;
    Ok(())
}

const TOKEN_COLUMNS: &str = "org_id, app_id, sink_id, id, token_hash, token, created_at, expires_at";

fn token(r: &Row) -> rusqlite::Result<PollerToken> {
    let id: String = r.get(3)?;
    let sealed: String = r.get(5)?;
    Ok(PollerToken {
        org_id: r.get(0)?,
        app_id: r.get(1)?,
        sink_id: r.get(2)?,
        token: crate::crypt::open(&sealed, &token_context(&id)).map_err(decode_failure)?,
        id,
        token_hash: r.get(4)?,
        created_at: r.get(6)?,
        expires_at: r.get(7)?,
    })
}

pub fn insert_token(c: &Connection, t: &PollerToken) -> Result<()> {
    c.prepare_cached(&format!("INSERT INTO poller_token ({TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"))?
        .execute(params![
        t.org_id,
        t.app_id,
        t.sink_id,
        t.id,
        t.token_hash,
        crate::crypt::seal(&t.token, &token_context(&t.id)),
        t.created_at,
        t.expires_at
    ])?;
    Ok(())
}

/// Stores a new token for its sink; the sink's other tokens expire at
/// `others_expire_at` unless they expire sooner.
pub fn rotate_token(c: &Connection, t: &PollerToken, others_expire_at: i64) -> Result<()> {
    c.prepare_cached(
        "UPDATE poller_token SET expires_at = MIN(COALESCE(expires_at, ?3), ?3) WHERE sink_id = ?1 AND id != ?2",
    )?
    .execute(params![t.sink_id, t.id, others_expire_at])?;
    insert_token(c, t)
}

/// The sink's newest token.
pub fn current_token(c: &Connection, org_id: &str, sink_id: &str) -> Result<Option<PollerToken>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM poller_token WHERE org_id = ?1 AND sink_id = ?2 ORDER BY id DESC LIMIT 1"
    ))?
    .query_row(params![org_id, sink_id], token)
    .optional()?)
}

pub fn token_by_hash(c: &Connection, hash: &str) -> Result<Option<PollerToken>> {
    Ok(c.prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM poller_token WHERE token_hash = ?1"))?
        .query_row(params![hash], token)
        .optional()?)
}
