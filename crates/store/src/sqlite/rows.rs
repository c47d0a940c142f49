//! Row <-> model mapping for SQLite. Stored forms (JSON text, secrets) come from
//! [`crate::codec`], shared with the other backends.

use std::sync::Arc;

use hookd_core::Secret;
use rusqlite::Row;
use serde::de::DeserializeOwned;

use crate::codec::{self, DecodeError};
pub use crate::codec::{headers_to_db, json, json_opt, retired_to_db, secret_to_db};
use crate::model::*;
use crate::task::{BackgroundTask, TaskKind, TaskStatus};
use crate::{Page, StoreError};
use hookd_core::{DeliveryState, MessageStatus};

fn decode_failure(e: DecodeError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e)
}

fn parse<T: DeserializeOwned>(s: &str) -> rusqlite::Result<T> {
    codec::parse(s).map_err(decode_failure)
}

fn parse_opt<T: DeserializeOwned>(s: Option<String>) -> rusqlite::Result<Option<T>> {
    codec::parse_opt(s.as_deref()).map_err(decode_failure)
}

pub fn secret_from_db(id: &str, s: &str) -> rusqlite::Result<Secret> {
    codec::secret_from_db(id, s).map_err(decode_failure)
}

fn retired_from_db(id: &str, s: &str) -> rusqlite::Result<Vec<RetiredSecret>> {
    codec::retired_from_db(id, s).map_err(decode_failure)
}

pub const APP_COLUMNS: &str = "org_id, id, uid, name, rate_limit, metadata, created_at, updated_at";

pub fn app(r: &Row) -> rusqlite::Result<Application> {
    Ok(Application {
        org_id: r.get(0)?,
        id: r.get(1)?,
        uid: r.get(2)?,
        name: r.get(3)?,
        rate_limit: r.get(4)?,
        metadata: parse(&r.get::<_, String>(5)?)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

pub const EVENT_TYPE_COLUMNS: &str =
    "org_id, name, description, archived, deprecated, schemas, feature_flags, group_name, created_at, updated_at, retry_schedule, validate_payloads";

pub fn event_type(r: &Row) -> rusqlite::Result<EventType> {
    Ok(EventType {
        org_id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        archived: r.get(3)?,
        deprecated: r.get(4)?,
        schemas: r.get(5)?,
        feature_flags: parse_opt(r.get(6)?)?,
        group_name: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        retry_schedule_ms: parse_opt(r.get(10)?)?,
        validate_payloads: r.get(11)?,
    })
}

pub const ENDPOINT_COLUMNS: &str = "e.org_id, e.app_id, e.id, e.uid, e.url, e.description, e.version, e.disabled, \
     e.event_types, e.channels, e.rate_limit, e.metadata, e.headers, e.secret, e.retired_secrets, e.created_at, e.updated_at, e.revision, \
     e.control, e.health, e.auth";

/// Maps the endpoint columns starting at `at`.
pub fn endpoint_at(r: &Row, at: usize) -> rusqlite::Result<Endpoint> {
    Ok(Endpoint {
        org_id: r.get(at)?,
        app_id: r.get(at + 1)?,
        id: r.get(at + 2)?,
        uid: r.get(at + 3)?,
        url: r.get(at + 4)?,
        description: r.get(at + 5)?,
        version: r.get(at + 6)?,
        disabled: r.get(at + 7)?,
        event_types: parse_opt(r.get(at + 8)?)?,
        channels: parse_opt(r.get(at + 9)?)?,
        rate_limit: r.get(at + 10)?,
        metadata: parse(&r.get::<_, String>(at + 11)?)?,
        headers: codec::headers_from_db(&r.get::<_, String>(at + 2)?, &r.get::<_, String>(at + 12)?)
            .map_err(decode_failure)?,
        secret: secret_from_db(&r.get::<_, String>(at + 2)?, &r.get::<_, String>(at + 13)?)?,
        retired_secrets: retired_from_db(&r.get::<_, String>(at + 2)?, &r.get::<_, String>(at + 14)?)?,
        created_at: r.get(at + 15)?,
        updated_at: r.get(at + 16)?,
        revision: r.get(at + 17)?,
        control: parse_opt(r.get(at + 18)?)?.unwrap_or_default(),
        health: parse_opt(r.get(at + 19)?)?,
        auth: codec::auth_from_db(&r.get::<_, String>(at + 2)?, r.get::<_, Option<String>>(at + 20)?.as_deref())
            .map_err(decode_failure)?,
    })
}

pub fn endpoint(r: &Row) -> rusqlite::Result<Endpoint> {
    endpoint_at(r, 0)
}

pub const MESSAGE_COLUMNS: &str =
    "m.org_id, m.app_id, m.id, m.event_id, m.event_type, m.channels, m.tags, m.payload, m.created_at, m.expires_at, m.deliver_at";
pub const MESSAGE_COLUMNS_NO_PAYLOAD: &str =
    "m.org_id, m.app_id, m.id, m.event_id, m.event_type, m.channels, m.tags, NULL, m.created_at, m.expires_at, m.deliver_at";
pub const MESSAGE_COLUMN_COUNT: usize = 11;

pub fn message_at(r: &Row, at: usize) -> rusqlite::Result<Message> {
    Ok(Message {
        org_id: r.get(at)?,
        app_id: r.get(at + 1)?,
        id: r.get(at + 2)?,
        event_id: r.get(at + 3)?,
        event_type: r.get(at + 4)?,
        channels: parse_opt(r.get(at + 5)?)?,
        tags: parse_opt(r.get(at + 6)?)?,
        payload: r.get::<_, Option<Vec<u8>>>(at + 7)?.map(Arc::from),
        created_at: r.get(at + 8)?,
        expires_at: r.get(at + 9)?,
        deliver_at: r.get(at + 10)?,
    })
}

pub fn message(r: &Row) -> rusqlite::Result<Message> {
    message_at(r, 0)
}

pub const DELIVERY_COLUMNS: &str =
    "d.id, d.msg_id, d.endpoint_id, d.state, d.attempts, d.due_at, d.created_at, d.updated_at";
pub const DELIVERY_COLUMN_COUNT: usize = 8;

pub fn delivery(r: &Row) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        msg_id: r.get(1)?,
        endpoint_id: r.get(2)?,
        state: state_at(r, 3)?,
        attempts: r.get(4)?,
        due_at: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

pub fn state_at(r: &Row, i: usize) -> rusqlite::Result<DeliveryState> {
    let s: String = r.get(i)?;
    DeliveryState::parse(&s).ok_or_else(|| decode_failure(format!("unknown delivery state `{s}`").into()))
}

/// The attempt's status as stored: Svix's number.
fn message_status_at(r: &Row, i: usize) -> rusqlite::Result<MessageStatus> {
    let n: i64 = r.get(i)?;
    MessageStatus::from_i64(n).ok_or_else(|| decode_failure(format!("unknown status {n}").into()))
}

pub const TASK_COLUMNS: &str = "id, org_id, app_id, endpoint_id, kind, status, since, until, cursor, \
     messages_sent, error, created_at, updated_at, params, result";

pub fn task(r: &Row) -> rusqlite::Result<BackgroundTask> {
    let kind: String = r.get(4)?;
    let status: String = r.get(5)?;
    Ok(BackgroundTask {
        id: r.get(0)?,
        org_id: r.get(1)?,
        app_id: r.get(2)?,
        endpoint_id: r.get(3)?,
        kind: TaskKind::parse(&kind).ok_or_else(|| decode_failure(format!("unknown task kind `{kind}`").into()))?,
        status: TaskStatus::parse(&status)
            .ok_or_else(|| decode_failure(format!("unknown task status `{status}`").into()))?,
        since: r.get(6)?,
        until: r.get(7)?,
        cursor: r.get(8)?,
        messages_sent: r.get::<_, i64>(9)?.max(0) as u64,
        error: r.get(10)?,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
        filter: parse_opt(r.get(13)?)?,
        result: r.get(14)?,
    })
}

pub const ATTEMPT_COLUMNS: &str =
    "id, org_id, app_id, msg_id, endpoint_id, url, status, response_status_code, response, \
     response_duration_ms, trigger_type, created_at";

pub fn attempt(r: &Row) -> rusqlite::Result<Attempt> {
    Ok(Attempt {
        id: r.get(0)?,
        org_id: r.get(1)?,
        app_id: r.get(2)?,
        msg_id: r.get(3)?,
        endpoint_id: r.get(4)?,
        url: r.get(5)?,
        status: message_status_at(r, 6)?,
        response_status_code: r.get(7)?,
        response: r.get(8)?,
        response_duration_ms: r.get(9)?,
        trigger: hookd_core::AttemptTrigger::from_i64(r.get(10)?).unwrap_or(hookd_core::AttemptTrigger::Scheduled),
        created_at: r.get(11)?,
        headers: None,
        facts: None,
    })
}

/// `AND {column} > ?` (or `<`) and `ORDER BY {column} ASC|DESC LIMIT n+1` for a page.
/// Returns the clause to append after the WHERE conditions.
pub fn page_clause(page: &Page, column: &str, params: &mut Vec<rusqlite::types::Value>) -> String {
    let desc = page.descending ^ page.backwards;
    let mut sql = String::new();
    if let Some(it) = &page.iterator {
        sql.push_str(&format!(" AND {column} {} ?", if desc { "<" } else { ">" }));
        params.push(it.clone().into());
    }
    sql.push_str(&format!(" ORDER BY {column} {} LIMIT {}", if desc { "DESC" } else { "ASC" }, page.limit + 1));
    sql
}

pub fn collect<T>(
    stmt: &mut rusqlite::Statement,
    params: Vec<rusqlite::types::Value>,
    map: impl FnMut(&Row) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let rows = stmt.query_map(rusqlite::params_from_iter(params), map)?;
    Ok(rows.collect::<rusqlite::Result<Vec<T>>>()?)
}

/// Maps a UNIQUE (or PRIMARY KEY: event types are keyed by name) violation to a
/// conflict on `what`.
pub fn unique_violation(e: rusqlite::Error, what: &'static str) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::Conflict { what, existing_id: None }
        }
        _ => e.into(),
    }
}
