//! Poller sinks, their log, consumers and tokens ([`crate::poller`]).
//!
//! The `poller_log_append` trigger (migration 0013) logs a message in the
//! transaction that creates it, without an offset: transactions on several
//! nodes commit in any order, so an offset taken at insert could land behind
//! one a reader already passed. [`settle`] numbers rows once they are
//! committed, and readers settle before they read.

use std::collections::HashMap;

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, QueryBuilder, Row};

use super::rows::{self, RowResult, MESSAGE_COLUMNS};
use crate::codec::{self, DecodeError};
use crate::model::{Message, Page};
use crate::poller::*;
use crate::{Result, StoreError};

const SINK_COLUMNS: &str = "org_id, app_id, id, uid, disabled, batch_size, max_wait_secs, event_types, channels, \
                            metadata, start_offset, created_at, updated_at";
const UID_TAKEN: &str = "a sink with this uid";
/// Most rows one settle gives offsets to; the rest wait for the next read.
const SETTLE_BATCH: i64 = 10_000;

fn decoded<T>(r: std::result::Result<T, DecodeError>) -> RowResult<T> {
    r.map_err(sqlx::Error::Decode)
}

fn sink(r: &PgRow) -> RowResult<PollerSink> {
    Ok(PollerSink {
        org_id: r.try_get(0)?,
        app_id: r.try_get(1)?,
        id: r.try_get(2)?,
        uid: r.try_get(3)?,
        disabled: r.try_get(4)?,
        batch_size: r.try_get(5)?,
        max_wait_secs: r.try_get(6)?,
        event_types: decoded(codec::parse_opt(r.try_get::<Option<&str>, _>(7)?))?,
        channels: decoded(codec::parse_opt(r.try_get::<Option<&str>, _>(8)?))?,
        metadata: decoded(codec::parse(r.try_get::<&str, _>(9)?))?,
        start_offset: r.try_get(10)?,
        created_at: r.try_get(11)?,
        updated_at: r.try_get(12)?,
    })
}

/// Numbers the log rows committed so far, one settler at a time (a
/// transaction-level advisory lock per schema, so one settle's numbers are
/// all above the previous one's): a row committed later is numbered by a
/// later settle, above every offset a reader could have passed. A message is
/// thus readable as soon as it is committed.
pub async fn settle(pool: &PgPool) -> Result<()> {
    let pending: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM poller_log WHERE seq IS NULL)").fetch_one(pool).await?;
    if !pending {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('hookd:poller_log:' || current_schema()))")
        .execute(&mut *tx)
        .await?;
    // In insert order within one settle (a subquery with a LIMIT is run,
    // sorted, before the outer projection takes numbers from the sequence).
    sqlx::query(
        "UPDATE poller_log l SET seq = s.seq
         FROM (SELECT id, nextval('poller_offset') AS seq
               FROM (SELECT id FROM poller_log WHERE seq IS NULL ORDER BY id LIMIT $1) ready) s
         WHERE l.id = s.id AND l.seq IS NULL",
    )
    .bind(SETTLE_BATCH)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn list(c: &mut PgConnection, org_id: &str, app_id: &str, page: &Page) -> Result<Vec<PollerSink>> {
    let mut q = QueryBuilder::new(format!("SELECT {SINK_COLUMNS} FROM poller_sink WHERE org_id = "));
    q.push_bind(org_id).push(" AND app_id = ").push_bind(app_id);
    rows::push_page(&mut q, page, "id");
    rows::collect(q.build().fetch_all(c).await?, sink)
}

pub async fn get(c: &mut PgConnection, org_id: &str, app_id: &str, id_or_uid: &str) -> Result<PollerSink> {
    let row = sqlx::query(&format!(
        "SELECT {SINK_COLUMNS} FROM poller_sink WHERE org_id = $1 AND app_id = $2 AND (id = $3 OR uid = $3)
         ORDER BY id = $3 DESC LIMIT 1"
    ))
    .bind(org_id)
    .bind(app_id)
    .bind(id_or_uid)
    .fetch_one(c)
    .await?;
    Ok(sink(&row)?)
}

/// Run inside a transaction: stores a new sink, starting at the log's end,
/// with its first token.
pub async fn insert(c: &mut PgConnection, s: &PollerSink, token: &PollerToken) -> Result<PollerSink> {
    let mut s = s.clone();
    s.start_offset = log_end(c, &s.org_id, &s.app_id).await?;
    sqlx::query(&format!(
        "INSERT INTO poller_sink ({SINK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(&s.org_id)
    .bind(&s.app_id)
    .bind(&s.id)
    .bind(&s.uid)
    .bind(s.disabled)
    .bind(s.batch_size)
    .bind(s.max_wait_secs)
    .bind(rows::json_opt(&s.event_types))
    .bind(rows::json_opt(&s.channels))
    .bind(rows::json(&s.metadata))
    .bind(s.start_offset)
    .bind(s.created_at)
    .bind(s.updated_at)
    .execute(&mut *c)
    .await
    .map_err(|e| rows::unique_violation(e, UID_TAKEN))?;
    insert_token(c, token).await?;
    Ok(s)
}

/// Stores the sink's settings (not where it starts).
pub async fn update(c: &mut PgConnection, s: &PollerSink) -> Result<()> {
    let n = sqlx::query(
        "UPDATE poller_sink SET uid = $4, disabled = $5, batch_size = $6, max_wait_secs = $7, event_types = $8,
             channels = $9, metadata = $10, updated_at = $11
         WHERE org_id = $1 AND app_id = $2 AND id = $3",
    )
    .bind(&s.org_id)
    .bind(&s.app_id)
    .bind(&s.id)
    .bind(&s.uid)
    .bind(s.disabled)
    .bind(s.batch_size)
    .bind(s.max_wait_secs)
    .bind(rows::json_opt(&s.event_types))
    .bind(rows::json_opt(&s.channels))
    .bind(rows::json(&s.metadata))
    .bind(s.updated_at)
    .execute(c)
    .await
    .map_err(|e| rows::unique_violation(e, UID_TAKEN))?;
    if n.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// A uid conflict, with the id of the sink that holds the uid.
pub async fn uid_conflict(pool: &PgPool, e: StoreError, s: &PollerSink) -> StoreError {
    match e {
        StoreError::Conflict { what, .. } => {
            let existing_id = match s.uid.as_deref() {
                Some(uid) => match pool.acquire().await {
                    Ok(mut c) => get(&mut c, &s.org_id, &s.app_id, uid).await.ok().map(|x| x.id),
                    Err(_) => None,
                },
                None => None,
            };
            StoreError::Conflict { what, existing_id }
        }
        other => other,
    }
}

/// Run inside a transaction: removes the sink with its consumers and tokens
/// (cascaded), and the application's log once no sink is left to read it.
pub async fn delete(c: &mut PgConnection, org_id: &str, app_id: &str, id: &str) -> Result<()> {
    let n = sqlx::query("DELETE FROM poller_sink WHERE org_id = $1 AND app_id = $2 AND id = $3")
        .bind(org_id)
        .bind(app_id)
        .bind(id)
        .execute(&mut *c)
        .await?;
    if n.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    sqlx::query(
        "DELETE FROM poller_log WHERE org_id = $1 AND app_id = $2
         AND NOT EXISTS (SELECT 1 FROM poller_sink WHERE app_id = $2)",
    )
    .bind(org_id)
    .bind(app_id)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// The application's last settled offset (0 when nothing was logged).
pub async fn log_end(c: &mut PgConnection, org_id: &str, app_id: &str) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM poller_log WHERE org_id = $1 AND app_id = $2")
        .bind(org_id)
        .bind(app_id)
        .fetch_one(c)
        .await?)
}

/// A page of what the sink shows after offset `after` (settled rows only).
pub async fn read(
    c: &mut PgConnection,
    sink: &PollerSink,
    after: i64,
    only: &PollOnly,
    limit: usize,
) -> Result<PollPage> {
    let scan = scan_size(sink, only, limit);
    let window = sqlx::query(
        "SELECT l.seq, m.id, m.event_type, m.channels::text FROM poller_log l JOIN message m ON m.id = l.msg_id
         WHERE l.org_id = $1 AND l.app_id = $2 AND l.seq > $3 ORDER BY l.seq LIMIT $4",
    )
    .bind(&sink.org_id)
    .bind(&sink.app_id)
    .bind(after)
    .bind(scan as i64)
    .fetch_all(&mut *c)
    .await?;
    let window = rows::collect(window, |r| {
        Ok(LogRow {
            seq: r.try_get(0)?,
            msg_id: r.try_get(1)?,
            event_type: r.try_get(2)?,
            channels: decoded(codec::parse_opt(r.try_get::<Option<&str>, _>(3)?))?,
        })
    })?;
    let (picked, next, done) = pick(window, sink, only, after, limit, scan);
    let ids: Vec<&str> = picked.iter().map(|(_, id)| id.as_str()).collect();
    let found = sqlx::query(&format!("SELECT {MESSAGE_COLUMNS} FROM message m WHERE m.org_id = $1 AND m.id = ANY($2)"))
        .bind(&sink.org_id)
        .bind(&ids)
        .fetch_all(&mut *c)
        .await?;
    let mut found: HashMap<String, Message> =
        rows::collect(found, rows::message)?.into_iter().map(|m| (m.id.clone(), m)).collect();
    // A message deleted since the window was read is skipped.
    let messages = picked.into_iter().filter_map(|(seq, id)| found.remove(&id).map(|m| (seq, m))).collect();
    Ok(PollPage { messages, next, done })
}

/// The offset just before the first message logged for the application that
/// was created after `after_ms`; the log's end when there is none.
pub async fn offset_after(c: &mut PgConnection, org_id: &str, app_id: &str, after_ms: i64) -> Result<i64> {
    let floor = hookd_core::id::id_floor_at(hookd_core::IdPrefix::Message, (after_ms + 1).max(0) as u64);
    let first: Option<i64> =
        sqlx::query_scalar("SELECT MIN(seq) FROM poller_log WHERE org_id = $1 AND app_id = $2 AND msg_id >= $3")
            .bind(org_id)
            .bind(app_id)
            .bind(floor)
            .fetch_one(&mut *c)
            .await?;
    match first {
        Some(seq) => Ok(seq - 1),
        None => log_end(c, org_id, app_id).await,
    }
}

pub async fn consumer(
    c: &mut PgConnection,
    org_id: &str,
    sink_id: &str,
    consumer_id: &str,
) -> Result<Option<PollerConsumer>> {
    let row = sqlx::query(
        "SELECT position, read_end, COALESCE(lease_until > hookd_now_ms(), FALSE) FROM poller_consumer
         WHERE sink_id = $1 AND consumer_id = $2 AND org_id = $3",
    )
    .bind(sink_id)
    .bind(consumer_id)
    .bind(org_id)
    .fetch_optional(c)
    .await?;
    Ok(row
        .map(|r| -> RowResult<PollerConsumer> {
            Ok(PollerConsumer {
                consumer_id: consumer_id.to_string(),
                position: r.try_get(0)?,
                read_end: r.try_get(1)?,
                leased: r.try_get(2)?,
            })
        })
        .transpose()?)
}

/// Refuses a new consumer of a sink that has [`MAX_CONSUMERS`].
async fn room_for_consumer(c: &mut PgConnection, sink_id: &str, consumer_id: &str) -> Result<()> {
    let (exists, count): (bool, i64) = sqlx::query_as(
        "SELECT EXISTS(SELECT 1 FROM poller_consumer WHERE sink_id = $1 AND consumer_id = $2),
                (SELECT COUNT(*) FROM poller_consumer WHERE sink_id = $1)",
    )
    .bind(sink_id)
    .bind(consumer_id)
    .fetch_one(c)
    .await?;
    if !exists && count >= MAX_CONSUMERS {
        return Err(StoreError::Invalid {
            field: "consumer_id",
            msg: format!("a sink has at most {MAX_CONSUMERS} consumers"),
        });
    }
    Ok(())
}

/// Makes the consumer at `position` unless it exists; returns it as it is.
pub async fn ensure_consumer(
    c: &mut PgConnection,
    org_id: &str,
    sink_id: &str,
    consumer_id: &str,
    position: i64,
) -> Result<PollerConsumer> {
    room_for_consumer(c, sink_id, consumer_id).await?;
    sqlx::query(
        "INSERT INTO poller_consumer (org_id, sink_id, consumer_id, position, read_end, updated_at)
         VALUES ($1, $2, $3, $4, $4, hookd_now_ms()) ON CONFLICT (sink_id, consumer_id) DO NOTHING",
    )
    .bind(org_id)
    .bind(sink_id)
    .bind(consumer_id)
    .bind(position)
    .execute(&mut *c)
    .await?;
    consumer(c, org_id, sink_id, consumer_id).await?.ok_or(StoreError::NotFound)
}

/// Puts the consumer at `position` (made there if new), ending its lease.
pub async fn move_consumer(
    c: &mut PgConnection,
    org_id: &str,
    sink_id: &str,
    consumer_id: &str,
    position: i64,
) -> Result<()> {
    room_for_consumer(c, sink_id, consumer_id).await?;
    sqlx::query(
        "INSERT INTO poller_consumer AS p (org_id, sink_id, consumer_id, position, read_end, updated_at)
         VALUES ($1, $2, $3, $4, $4, hookd_now_ms())
         ON CONFLICT (sink_id, consumer_id) DO UPDATE SET position = excluded.position,
             read_end = GREATEST(p.read_end, excluded.position), lease_end = NULL, lease_until = NULL,
             updated_at = excluded.updated_at",
    )
    .bind(org_id)
    .bind(sink_id)
    .bind(consumer_id)
    .bind(position)
    .execute(c)
    .await?;
    Ok(())
}

/// Takes a batch (or skips what did not match) for a consumer still at
/// `from` and holding no live lease; false when it moved or is leased meanwhile.
pub async fn claim(
    c: &mut PgConnection,
    org_id: &str,
    sink_id: &str,
    consumer_id: &str,
    claim: PollerClaim,
) -> Result<bool> {
    let done = match claim {
        PollerClaim::Batch { from, end, lease_ms } => {
            sqlx::query(
                "UPDATE poller_consumer SET read_end = GREATEST(read_end, $4), lease_end = $4,
                     lease_until = CASE WHEN $5 > 0 THEN hookd_now_ms() + $5 END, updated_at = hookd_now_ms()
                 WHERE sink_id = $1 AND consumer_id = $2 AND position = $3 AND org_id = $6
                   AND (lease_until IS NULL OR lease_until <= hookd_now_ms())",
            )
            .bind(sink_id)
            .bind(consumer_id)
            .bind(from)
            .bind(end)
            .bind(lease_ms)
            .bind(org_id)
            .execute(c)
            .await?
        }
        PollerClaim::Skip { from, to } => sqlx::query(
            "UPDATE poller_consumer SET position = $4, read_end = GREATEST(read_end, $4), updated_at = hookd_now_ms()
                 WHERE sink_id = $1 AND consumer_id = $2 AND position = $3 AND org_id = $5
                   AND (lease_until IS NULL OR lease_until <= hookd_now_ms())",
        )
        .bind(sink_id)
        .bind(consumer_id)
        .bind(from)
        .bind(to)
        .bind(org_id)
        .execute(c)
        .await?,
    };
    Ok(done.rows_affected() == 1)
}

/// Run inside a transaction: records that the consumer is done with every
/// offset up to `offset`; a commit that covers its leased batch ends the lease.
pub async fn commit(c: &mut PgConnection, org_id: &str, sink_id: &str, consumer_id: &str, offset: i64) -> Result<()> {
    let read_end: i64 = sqlx::query_scalar(
        "SELECT read_end FROM poller_consumer WHERE sink_id = $1 AND consumer_id = $2 AND org_id = $3 FOR UPDATE",
    )
    .bind(sink_id)
    .bind(consumer_id)
    .bind(org_id)
    .fetch_one(&mut *c)
    .await?;
    if offset > read_end {
        return Err(beyond_read(read_end));
    }
    sqlx::query(
        "UPDATE poller_consumer SET position = GREATEST(position, $3),
             lease_until = CASE WHEN lease_end IS NULL OR $3 >= lease_end THEN NULL ELSE lease_until END,
             lease_end = CASE WHEN lease_end IS NULL OR $3 >= lease_end THEN NULL ELSE lease_end END,
             updated_at = hookd_now_ms()
         WHERE sink_id = $1 AND consumer_id = $2",
    )
    .bind(sink_id)
    .bind(consumer_id)
    .bind(offset)
    .execute(c)
    .await?;
    Ok(())
}

const TOKEN_COLUMNS: &str = "org_id, app_id, sink_id, id, token_hash, token, created_at, expires_at";

fn token(r: &PgRow) -> RowResult<PollerToken> {
    let id: String = r.try_get(3)?;
    let sealed: &str = r.try_get(5)?;
    Ok(PollerToken {
        org_id: r.try_get(0)?,
        app_id: r.try_get(1)?,
        sink_id: r.try_get(2)?,
        token: decoded(crate::crypt::open(sealed, &token_context(&id)))?,
        id,
        token_hash: r.try_get(4)?,
        created_at: r.try_get(6)?,
        expires_at: r.try_get(7)?,
    })
}

pub async fn insert_token(c: &mut PgConnection, t: &PollerToken) -> Result<()> {
    sqlx::query(&format!("INSERT INTO poller_token ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
        .bind(&t.org_id)
        .bind(&t.app_id)
        .bind(&t.sink_id)
        .bind(&t.id)
        .bind(&t.token_hash)
        .bind(crate::crypt::seal(&t.token, &token_context(&t.id)))
        .bind(t.created_at)
        .bind(t.expires_at)
        .execute(c)
        .await?;
    Ok(())
}

/// Run inside a transaction: stores a new token for its sink; the sink's other
/// tokens expire at `others_expire_at` unless they expire sooner.
pub async fn rotate_token(c: &mut PgConnection, t: &PollerToken, others_expire_at: i64) -> Result<()> {
    sqlx::query(
        "UPDATE poller_token SET expires_at = LEAST(COALESCE(expires_at, $3), $3) WHERE sink_id = $1 AND id <> $2",
    )
    .bind(&t.sink_id)
    .bind(&t.id)
    .bind(others_expire_at)
    .execute(&mut *c)
    .await?;
    insert_token(c, t).await
}

/// The sink's newest token.
pub async fn current_token(c: &mut PgConnection, org_id: &str, sink_id: &str) -> Result<Option<PollerToken>> {
    let row = sqlx::query(&format!(
        "SELECT {TOKEN_COLUMNS} FROM poller_token WHERE org_id = $1 AND sink_id = $2 ORDER BY id DESC LIMIT 1"
    ))
    .bind(org_id)
    .bind(sink_id)
    .fetch_optional(c)
    .await?;
    Ok(row.as_ref().map(token).transpose()?)
}

pub async fn token_by_hash(c: &mut PgConnection, hash: &str) -> Result<Option<PollerToken>> {
    let row = sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM poller_token WHERE token_hash = $1"))
        .bind(hash)
        .fetch_optional(c)
        .await?;
    Ok(row.as_ref().map(token).transpose()?)
}
