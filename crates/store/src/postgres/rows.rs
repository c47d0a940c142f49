//! Row <-> model mapping for PostgreSQL, paging, and how database errors become
//! [`StoreError`]s. Stored forms (JSON text, secrets) come from [`crate::codec`],
//! shared with SQLite; the column lists mirror `sqlite/rows.rs`.

use std::sync::Arc;

use hookd_core::AttemptTrigger;
use serde::de::DeserializeOwned;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use crate::codec::{self, DecodeError};
pub use crate::codec::{headers_to_db, json, json_opt, retired_to_db, secret_to_db};
use crate::model::*;
use crate::task::{BackgroundTask, TaskKind, TaskStatus};
use crate::StoreError;
use hookd_core::{DeliveryState, MessageStatus};

pub type RowResult<T> = Result<T, sqlx::Error>;

fn decoded<T>(r: Result<T, DecodeError>) -> RowResult<T> {
    r.map_err(sqlx::Error::Decode)
}

fn json_at<T: DeserializeOwned>(r: &PgRow, i: usize) -> RowResult<T> {
    decoded(codec::parse(r.try_get::<&str, _>(i)?))
}

fn json_opt_at<T: DeserializeOwned>(r: &PgRow, i: usize) -> RowResult<Option<T>> {
    decoded(codec::parse_opt(r.try_get::<Option<&str>, _>(i)?))
}

/// Rate limits are `u32` in the model and BIGINT in the table (PostgreSQL has no unsigned types).
pub fn rate_limit_to_db(v: Option<u32>) -> Option<i64> {
    v.map(i64::from)
}

fn rate_limit_at(r: &PgRow, i: usize) -> RowResult<Option<u32>> {
    r.try_get::<Option<i64>, _>(i)?.map(u32::try_from).transpose().map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

pub const APP_COLUMNS: &str = "org_id, id, uid, name, rate_limit, metadata, created_at, updated_at";

pub fn app(r: &PgRow) -> RowResult<Application> {
    Ok(Application {
        org_id: r.try_get(0)?,
        id: r.try_get(1)?,
        uid: r.try_get(2)?,
        name: r.try_get(3)?,
        rate_limit: rate_limit_at(r, 4)?,
        metadata: json_at(r, 5)?,
        created_at: r.try_get(6)?,
        updated_at: r.try_get(7)?,
    })
}

pub const EVENT_TYPE_COLUMNS: &str =
    "org_id, name, description, archived, deprecated, schemas, feature_flags, group_name, created_at, updated_at, retry_schedule, validate_payloads";

pub fn event_type(r: &PgRow) -> RowResult<EventType> {
    Ok(EventType {
        org_id: r.try_get(0)?,
        name: r.try_get(1)?,
        description: r.try_get(2)?,
        archived: r.try_get(3)?,
        deprecated: r.try_get(4)?,
        schemas: r.try_get(5)?,
        feature_flags: json_opt_at(r, 6)?,
        group_name: r.try_get(7)?,
        created_at: r.try_get(8)?,
        updated_at: r.try_get(9)?,
        retry_schedule_ms: json_opt_at(r, 10)?,
        validate_payloads: r.try_get(11)?,
    })
}

pub const ENDPOINT_COLUMNS: &str = "e.org_id, e.app_id, e.id, e.uid, e.url, e.description, e.version, e.disabled, \
     e.event_types, e.channels, e.rate_limit, e.metadata, e.headers, e.secret, e.retired_secrets, e.created_at, e.updated_at, e.revision, \
     e.control, e.health, e.auth";
pub const ENDPOINT_COLUMN_COUNT: usize = 21;

/// Maps the endpoint columns starting at `at`.
pub fn endpoint_at(r: &PgRow, at: usize) -> RowResult<Endpoint> {
    Ok(Endpoint {
        org_id: r.try_get(at)?,
        app_id: r.try_get(at + 1)?,
        id: r.try_get(at + 2)?,
        uid: r.try_get(at + 3)?,
        url: r.try_get(at + 4)?,
        description: r.try_get(at + 5)?,
        version: r.try_get(at + 6)?,
        disabled: r.try_get(at + 7)?,
        event_types: json_opt_at(r, at + 8)?,
        channels: json_opt_at(r, at + 9)?,
        rate_limit: rate_limit_at(r, at + 10)?,
        metadata: json_at(r, at + 11)?,
        headers: decoded(codec::headers_from_db(r.try_get(at + 2)?, r.try_get(at + 12)?))?,
        secret: decoded(codec::secret_from_db(r.try_get(at + 2)?, r.try_get(at + 13)?))?,
        retired_secrets: decoded(codec::retired_from_db(r.try_get(at + 2)?, r.try_get(at + 14)?))?,
        created_at: r.try_get(at + 15)?,
        updated_at: r.try_get(at + 16)?,
        revision: r.try_get(at + 17)?,
        control: json_opt_at(r, at + 18)?.unwrap_or_default(),
        health: json_opt_at(r, at + 19)?,
        auth: decoded(codec::auth_from_db(r.try_get(at + 2)?, r.try_get::<Option<&str>, _>(at + 20)?))?,
    })
}

pub fn endpoint(r: &PgRow) -> RowResult<Endpoint> {
    endpoint_at(r, 0)
}

/// Channels and tags are JSONB (so filters can use `?`), read back as JSON text.
pub const MESSAGE_COLUMNS: &str = "m.org_id, m.app_id, m.id, m.event_id, m.event_type, m.channels::text, \
     m.tags::text, m.payload, m.created_at, m.expires_at, m.deliver_at";
pub const MESSAGE_COLUMNS_NO_PAYLOAD: &str = "m.org_id, m.app_id, m.id, m.event_id, m.event_type, m.channels::text, \
     m.tags::text, NULL::bytea, m.created_at, m.expires_at, m.deliver_at";
pub const MESSAGE_COLUMN_COUNT: usize = 11;

pub fn message_at(r: &PgRow, at: usize) -> RowResult<Message> {
    Ok(Message {
        org_id: r.try_get(at)?,
        app_id: r.try_get(at + 1)?,
        id: r.try_get(at + 2)?,
        event_id: r.try_get(at + 3)?,
        event_type: r.try_get(at + 4)?,
        channels: json_opt_at(r, at + 5)?,
        tags: json_opt_at(r, at + 6)?,
        payload: r.try_get::<Option<&[u8]>, _>(at + 7)?.map(Arc::from),
        created_at: r.try_get(at + 8)?,
        expires_at: r.try_get(at + 9)?,
        deliver_at: r.try_get(at + 10)?,
    })
}

pub fn message(r: &PgRow) -> RowResult<Message> {
    message_at(r, 0)
}

pub const DELIVERY_COLUMNS: &str =
    "d.id, d.msg_id, d.endpoint_id, d.state, d.attempts, d.due_at, d.created_at, d.updated_at";
pub const DELIVERY_COLUMN_COUNT: usize = 8;

pub fn delivery(r: &PgRow) -> RowResult<Delivery> {
    Ok(Delivery {
        id: r.try_get(0)?,
        msg_id: r.try_get(1)?,
        endpoint_id: r.try_get(2)?,
        state: state_at(r, 3)?,
        attempts: attempts_at(r, 4)?,
        due_at: r.try_get(5)?,
        created_at: r.try_get(6)?,
        updated_at: r.try_get(7)?,
    })
}

fn unknown(what: String) -> sqlx::Error {
    sqlx::Error::Decode(what.into())
}

pub fn state_at(r: &PgRow, i: usize) -> RowResult<DeliveryState> {
    let s: &str = r.try_get(i)?;
    DeliveryState::parse(s).ok_or_else(|| unknown(format!("unknown delivery state `{s}`")))
}

fn message_status_at(r: &PgRow, i: usize) -> RowResult<MessageStatus> {
    let n: i16 = r.try_get(i)?;
    MessageStatus::from_i64(n.into()).ok_or_else(|| unknown(format!("unknown status {n}")))
}

pub const TASK_COLUMNS: &str = "id, org_id, app_id, endpoint_id, kind, status, since, until, cursor, \
     messages_sent, error, created_at, updated_at, params, result";

pub fn task(r: &PgRow) -> RowResult<BackgroundTask> {
    let kind: &str = r.try_get(4)?;
    let status: &str = r.try_get(5)?;
    Ok(BackgroundTask {
        id: r.try_get(0)?,
        org_id: r.try_get(1)?,
        app_id: r.try_get(2)?,
        endpoint_id: r.try_get(3)?,
        kind: TaskKind::parse(kind).ok_or_else(|| unknown(format!("unknown task kind `{kind}`")))?,
        status: TaskStatus::parse(status).ok_or_else(|| unknown(format!("unknown task status `{status}`")))?,
        since: r.try_get(6)?,
        until: r.try_get(7)?,
        cursor: r.try_get(8)?,
        messages_sent: r.try_get::<i64, _>(9)?.max(0) as u64,
        error: r.try_get(10)?,
        created_at: r.try_get(11)?,
        updated_at: r.try_get(12)?,
        filter: json_opt_at(r, 13)?,
        result: r.try_get(14)?,
    })
}

pub fn attempts_at(r: &PgRow, i: usize) -> RowResult<u32> {
    u32::try_from(r.try_get::<i32, _>(i)?).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

pub const ATTEMPT_COLUMNS: &str =
    "id, org_id, app_id, msg_id, endpoint_id, url, status, response_status_code, response, \
     response_duration_ms, trigger_type, created_at";

pub fn attempt(r: &PgRow) -> RowResult<Attempt> {
    Ok(Attempt {
        id: r.try_get(0)?,
        org_id: r.try_get(1)?,
        app_id: r.try_get(2)?,
        msg_id: r.try_get(3)?,
        endpoint_id: r.try_get(4)?,
        url: r.try_get(5)?,
        status: message_status_at(r, 6)?,
        response_status_code: r.try_get(7)?,
        response: r.try_get(8)?,
        response_duration_ms: r.try_get(9)?,
        trigger: AttemptTrigger::from_i64(r.try_get::<i16, _>(10)?.into()).unwrap_or(AttemptTrigger::Scheduled),
        created_at: r.try_get(11)?,
        headers: None,
        facts: None,
    })
}

/// Appends `AND {column} > $n` (or `<`) and `ORDER BY {column} ASC|DESC LIMIT n+1` for
/// a page, after the WHERE conditions: the same walk as SQLite's `rows::page_clause`.
pub fn push_page(q: &mut QueryBuilder<'_, Postgres>, page: &Page, column: &str) {
    let desc = page.descending ^ page.backwards;
    if let Some(it) = &page.iterator {
        q.push(format_args!(" AND {column} {} ", if desc { "<" } else { ">" })).push_bind(it.clone());
    }
    q.push(format_args!(" ORDER BY {column} {} LIMIT {}", if desc { "DESC" } else { "ASC" }, page.limit + 1));
}

pub fn collect<T>(rows: Vec<PgRow>, map: impl FnMut(&PgRow) -> RowResult<T>) -> Result<Vec<T>, StoreError> {
    Ok(rows.iter().map(map).collect::<RowResult<Vec<T>>>()?)
}

/// SQLSTATE of a database error, if `e` is one.
fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Maps a unique violation (23505) to a conflict on `what`.
pub fn unique_violation(e: sqlx::Error, what: &'static str) -> StoreError {
    match sqlstate(&e).as_deref() {
        Some("23505") => StoreError::Conflict { what, existing_id: None },
        _ => e.into(),
    }
}

/// Whether a SQLSTATE says the database or the connection to it is gone for now,
/// or that the transaction was rolled back and may simply run again: callers
/// answer 503 or retry (the outcome recorder does), rather than fail for good.
fn is_transient(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || matches!(
            code,
            "57P01" // admin_shutdown: the server is stopping
            | "57P02" // crash_shutdown
            | "57P03" // cannot_connect_now: starting up or in recovery
            | "53300" // too_many_connections
            | "40001" // serialization_failure
            | "40P01" // deadlock_detected
        )
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &e {
            E::RowNotFound => StoreError::NotFound,
            E::Io(_) | E::Tls(_) | E::Protocol(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => {
                StoreError::Unavailable(e.to_string())
            }
            E::Database(_) if sqlstate(&e).is_some_and(|c| is_transient(&c)) => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Internal(e.to_string()),
        }
    }
}
