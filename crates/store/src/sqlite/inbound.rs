//! Inbound sources and their request log.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::fanout::FanOutCache;
use super::{apps, messages, rows};
use crate::inbound::app_name;
use crate::inbound::*;
use crate::model::*;
use crate::{codec, crypt, Result, StoreError};

const SOURCE_COLUMNS: &str = "org_id, id, uid, name, kind, config, settings, metadata, app_id, token, token_hash, \
                              prev_token_hash, prev_token_until, created_at, updated_at";

fn decode(e: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.to_string().into())
}

fn source(r: &Row) -> rusqlite::Result<Source> {
    let id: String = r.get(1)?;
    let config = crypt::open(&r.get::<_, String>(5)?, &format!("{id}:config")).map_err(decode)?;
    let token = crypt::open(&r.get::<_, String>(9)?, &format!("{id}:token")).map_err(decode)?;
    Ok(Source {
        org_id: r.get(0)?,
        uid: r.get(2)?,
        name: r.get(3)?,
        kind: r.get(4)?,
        config: serde_json::from_str(&config).map_err(decode)?,
        settings: serde_json::from_str(&r.get::<_, String>(6)?).map_err(decode)?,
        metadata: serde_json::from_str(&r.get::<_, String>(7)?).map_err(decode)?,
        app_id: r.get(8)?,
        token,
        prev_token: None,
        prev_token_until: r.get(12)?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
        id,
    })
}

fn values(s: &Source) -> Vec<rusqlite::types::Value> {
    let sealed_config = crypt::seal(&s.config.to_string(), &format!("{}:config", s.id));
    let sealed_token = crypt::seal(&s.token, &format!("{}:token", s.id));
    vec![
        s.org_id.clone().into(),
        s.id.clone().into(),
        s.uid.clone().into(),
        s.name.clone().into(),
        s.kind.clone().into(),
        sealed_config.into(),
        s.settings.to_string().into(),
        rows::json(&s.metadata).into(),
        s.app_id.clone().into(),
        sealed_token.into(),
        token_hash(&s.token).into(),
        s.prev_token.as_deref().map(token_hash).into(),
        s.prev_token_until.into(),
        s.created_at.into(),
        s.updated_at.into(),
    ]
}

pub fn list(c: &Connection, org_id: &str, page: &Page) -> Result<Vec<Source>> {
    let mut params: Vec<rusqlite::types::Value> = vec![org_id.to_string().into()];
    let sql = format!(
        "SELECT {SOURCE_COLUMNS} FROM ingest_source WHERE org_id = ?{}",
        rows::page_clause(page, "id", &mut params)
    );
    rows::collect(&mut *c.prepare_cached(&sql)?, params, source)
}

pub fn get(c: &Connection, org_id: &str, id_or_uid: &str) -> Result<Source> {
    Ok(c.prepare_cached(&format!(
        "SELECT {SOURCE_COLUMNS} FROM ingest_source WHERE org_id = ?1 AND (id = ?2 OR uid = ?2) ORDER BY id = ?2 DESC LIMIT 1"
    ))?
    .query_row(params![org_id, id_or_uid], source)?)
}

pub fn by_token(c: &Connection, token: &str, now: i64) -> Result<Option<Source>> {
    let hash = token_hash(token);
    Ok(c.prepare_cached(&format!(
        "SELECT {SOURCE_COLUMNS} FROM ingest_source
         WHERE token_hash = ?1 OR (prev_token_hash = ?1 AND prev_token_until > ?2) LIMIT 1"
    ))?
    .query_row(params![hash, now], source)
    .optional()?)
}

fn uid_conflict(c: &Connection, e: rusqlite::Error, s: &Source) -> StoreError {
    match rows::unique_violation(e, "a source with this uid") {
        StoreError::Conflict { what, .. } => {
            let existing_id = s.uid.as_deref().and_then(|uid| get(c, &s.org_id, uid).ok()).map(|x| x.id);
            StoreError::Conflict { what, existing_id }
        }
        other => other,
    }
}

pub fn insert(c: &Connection, s: &Source, app: &Application) -> Result<()> {
    apps::insert(c, app)?;
    c.prepare_cached(&format!(
        "INSERT INTO ingest_source ({SOURCE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
    ))?
    .execute(rusqlite::params_from_iter(values(s)))
    .map_err(|e| uid_conflict(c, e, s))?;
    Ok(())
}

/// Writes everything but the creation time; a `prev_token` of `None` keeps
/// the stored one (only a rotation replaces it).
pub fn update(c: &Connection, s: &Source) -> Result<()> {
    let v = values(s);
    let n = c
        .prepare_cached(
            "UPDATE ingest_source SET uid = ?3, name = ?4, kind = ?5, config = ?6, settings = ?7, metadata = ?8,
                 token = ?10, token_hash = ?11, prev_token_hash = COALESCE(?12, prev_token_hash),
                 prev_token_until = COALESCE(?13, prev_token_until), updated_at = ?15
             WHERE org_id = ?1 AND id = ?2",
        )?
        .execute(rusqlite::params_from_iter(v))
        .map_err(|e| uid_conflict(c, e, s))?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    c.execute(
        "UPDATE application SET name = ?3 WHERE org_id = ?1 AND id = ?2",
        params![s.org_id, s.app_id, app_name(&s.name)],
    )?;
    Ok(())
}

pub fn delete(c: &Connection, org_id: &str, id: &str) -> Result<()> {
    let src = get(c, org_id, id)?;
    c.execute("DELETE FROM ingest_request WHERE org_id = ?1 AND source_id = ?2", params![org_id, src.id])?;
    c.execute("DELETE FROM ingest_object WHERE org_id = ?1 AND source_id = ?2", params![org_id, src.id])?;
    set_schedule(c, org_id, &src.id, None)?;
    c.execute("DELETE FROM ingest_source WHERE org_id = ?1 AND id = ?2", params![org_id, src.id])?;
    match apps::delete(c, org_id, &src.app_id) {
        Ok(()) | Err(StoreError::NotFound) => Ok(()),
        Err(e) => Err(e),
    }
}

const REQUEST_COLUMNS: &str =
    "r.org_id, r.id, r.source_id, r.received_at, r.method, r.remote_addr, r.headers, r.body, \
     r.outcome, r.status_code, r.error, r.event_type, r.event_id, r.msg_id, r.replay_of, r.query, r.object_id, r.object_status, \
     (SELECT COUNT(*) FROM delivery d WHERE d.msg_id = r.msg_id), \
     (SELECT COUNT(*) FROM delivery d WHERE d.msg_id = r.msg_id AND d.state = 'succeeded'), \
     (SELECT COUNT(*) FROM delivery d WHERE d.msg_id = r.msg_id AND d.state = 'failed')";

fn request(r: &Row) -> rusqlite::Result<(InboundRequest, Forwarding)> {
    let headers: Vec<(String, String)> = serde_json::from_str(&r.get::<_, String>(6)?).map_err(decode)?;
    let outcome: String = r.get(8)?;
    Ok((
        InboundRequest {
            org_id: r.get(0)?,
            id: r.get(1)?,
            source_id: r.get(2)?,
            received_at: r.get(3)?,
            method: r.get(4)?,
            remote_addr: r.get(5)?,
            headers,
            body: r.get(7)?,
            outcome: InboundOutcome::parse(&outcome).ok_or_else(|| decode(format!("outcome {outcome:?}")))?,
            status_code: r.get(9)?,
            error: r.get(10)?,
            event_type: r.get(11)?,
            event_id: r.get(12)?,
            msg_id: r.get(13)?,
            replay_of: r.get(14)?,
            query: r.get(15)?,
            object: match (r.get::<_, Option<String>>(16)?, r.get::<_, Option<String>>(17)?) {
                (Some(object_id), Some(status)) => Some(ObjectStatus { object_id, status, rank: 0 }),
                _ => None,
            },
        },
        Forwarding { deliveries: r.get(18)?, succeeded: r.get(19)?, failed: r.get(20)? },
    ))
}

pub fn list_requests(
    c: &Connection,
    org_id: &str,
    source_id: &str,
    filter: &InboundFilter,
    page: &Page,
) -> Result<Vec<(InboundRequest, Forwarding)>> {
    let mut params: Vec<rusqlite::types::Value> = vec![org_id.to_string().into(), source_id.to_string().into()];
    let mut sql = format!("SELECT {REQUEST_COLUMNS} FROM ingest_request r WHERE r.org_id = ?1 AND r.source_id = ?2");
    if let Some(o) = filter.outcome {
        params.push(o.as_str().to_string().into());
        sql.push_str(&format!(" AND r.outcome = ?{}", params.len()));
    }
    if let Some(t) = &filter.event_type {
        params.push(t.clone().into());
        sql.push_str(&format!(" AND r.event_type = ?{}", params.len()));
    }
    if let Some(o) = &filter.object_id {
        params.push(o.clone().into());
        sql.push_str(&format!(" AND r.object_id = ?{}", params.len()));
    }
    if let Some(a) = filter.after {
        params.push(a.into());
        sql.push_str(&format!(" AND r.received_at >= ?{}", params.len()));
    }
    if let Some(b) = filter.before {
        params.push(b.into());
        sql.push_str(&format!(" AND r.received_at < ?{}", params.len()));
    }
    let clause = rows::page_clause(page, "r.id", &mut params);
    sql.push_str(&clause);
    rows::collect(&mut c.prepare(&sql)?, params, request)
}

pub fn get_request(c: &Connection, org_id: &str, source_id: &str, id: &str) -> Result<(InboundRequest, Forwarding)> {
    Ok(c.prepare_cached(&format!(
        "SELECT {REQUEST_COLUMNS} FROM ingest_request r WHERE r.org_id = ?1 AND r.source_id = ?2 AND r.id = ?3"
    ))?
    .query_row(params![org_id, source_id, id], request)?)
}

fn insert_request(c: &Connection, r: &InboundRequest) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO ingest_request (org_id, id, source_id, received_at, method, remote_addr, headers, body, outcome,
             status_code, error, event_type, event_id, msg_id, replay_of, query, object_id, object_status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    )?
    .execute(params![
        r.org_id,
        r.id,
        r.source_id,
        r.received_at,
        r.method,
        r.remote_addr,
        codec::json(&r.headers),
        r.body,
        r.outcome.as_str(),
        r.status_code,
        r.error,
        r.event_type,
        r.event_id,
        r.msg_id,
        r.replay_of,
        r.query,
        r.object.as_ref().map(|o| &o.object_id),
        r.object.as_ref().map(|o| &o.status)
    ])?;
    Ok(())
}

/// Stores the request and, for an accepted one, its message with its fan-out;
/// a message whose event id its application already has is not created again:
/// the request is stored as a duplicate of that message.
pub fn ingest(
    c: &Connection,
    fanout: &FanOutCache,
    req: &InboundRequest,
    msg: Option<&Message>,
    lease: Option<&Lease>,
    now: i64,
) -> Result<(Ingested, usize)> {
    let Some(msg) = msg else {
        insert_request(c, req)?;
        return Ok((Ingested::default(), 0));
    };
    if let Some(event_id) = &msg.event_id {
        let first: Option<String> = c
            .prepare_cached("SELECT id FROM message WHERE app_id = ?1 AND event_id = ?2")?
            .query_row(params![msg.app_id, event_id], |r| r.get(0))
            .optional()?;
        if let Some(first) = first {
            let dup = InboundRequest { outcome: InboundOutcome::Duplicate, msg_id: Some(first.clone()), ..req.clone() };
            insert_request(c, &dup)?;
            return Ok((Ingested { jobs: Vec::new(), duplicate_of: Some(first), ignored: false }, 0));
        }
    }
    if let Some(object) = &req.object {
        if !advance(c, req, object)? {
            insert_request(c, &InboundRequest { outcome: InboundOutcome::Ignored, ..req.clone() })?;
            return Ok((Ingested { ignored: true, ..Ingested::default() }, 0));
        }
    }
    let accepted = InboundRequest { outcome: InboundOutcome::Accepted, msg_id: Some(msg.id.clone()), ..req.clone() };
    insert_request(c, &accepted)?;
    let (jobs, unleased) = messages::create(c, fanout, msg, None, lease, None, now)?;
    Ok((Ingested { jobs, duplicate_of: None, ignored: false }, unleased))
}

/// Moves the object to the request's status if that is a later step than its
/// current one (or the object is new); whether it did.
fn advance(c: &Connection, req: &InboundRequest, o: &ObjectStatus) -> Result<bool> {
    Ok(c.prepare_cached(
        "INSERT INTO ingest_object (org_id, source_id, object_id, status, rank, request_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
         ON CONFLICT (source_id, object_id) DO UPDATE
             SET status = excluded.status, rank = excluded.rank, request_id = excluded.request_id,
                 updated_at = excluded.updated_at
             WHERE ingest_object.rank < excluded.rank
         RETURNING 1",
    )?
    .query_row(params![req.org_id, req.source_id, o.object_id, o.status, o.rank, req.id, req.received_at], |_| Ok(()))
    .optional()?
    .is_some())
}

pub fn get_object(c: &Connection, org_id: &str, source_id: &str, object_id: &str) -> Result<TrackedObject> {
    Ok(c.prepare_cached(
        "SELECT source_id, object_id, status, request_id, created_at, updated_at FROM ingest_object
         WHERE org_id = ?1 AND source_id = ?2 AND object_id = ?3",
    )?
    .query_row(params![org_id, source_id, object_id], |r| {
        Ok(TrackedObject {
            source_id: r.get(0)?,
            object_id: r.get(1)?,
            status: r.get(2)?,
            request_id: r.get(3)?,
            created_at: r.get(4)?,
            updated_at: r.get(5)?,
        })
    })?)
}

pub fn set_schedule(c: &Connection, org_id: &str, source_id: &str, due_at: Option<i64>) -> Result<()> {
    match due_at {
        None => {
            c.execute("DELETE FROM ingest_schedule WHERE org_id = ?1 AND source_id = ?2", params![org_id, source_id])?
        }
        Some(due) => c.execute(
            "INSERT INTO ingest_schedule (org_id, source_id, due_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (source_id) DO UPDATE SET due_at = excluded.due_at",
            params![org_id, source_id, due],
        )?,
    };
    Ok(())
}

pub fn get_schedule(c: &Connection, org_id: &str, source_id: &str) -> Result<Option<SourceSchedule>> {
    let row = c
        .prepare_cached(
            "SELECT due_at, last_run_at, last_result FROM ingest_schedule WHERE org_id = ?1 AND source_id = ?2",
        )?
        .query_row(params![org_id, source_id], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?, r.get::<_, Option<String>>(2)?))
        })
        .optional()?;
    Ok(row.map(|(due_at, last_run_at, last)| SourceSchedule {
        due_at,
        last_run_at,
        last_result: last.and_then(|l| serde_json::from_str(&l).ok()),
    }))
}

pub fn claim_due(c: &Connection, now: i64, lease_until: i64) -> Result<Option<(Source, i64)>> {
    let taken: Option<(String, String, i64)> = c
        .prepare_cached(
            "UPDATE ingest_schedule SET lease_until = ?2
             WHERE source_id = (SELECT source_id FROM ingest_schedule
                                WHERE due_at <= ?1 AND (lease_until IS NULL OR lease_until < ?1)
                                ORDER BY due_at LIMIT 1)
             RETURNING org_id, source_id, due_at",
        )?
        .query_row(params![now, lease_until], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((org_id, source_id, due_at)) = taken else { return Ok(None) };
    match get(c, &org_id, &source_id) {
        Ok(src) => Ok(Some((src, due_at))),
        Err(StoreError::NotFound) => {
            set_schedule(c, &org_id, &source_id, None)?;
            Ok(None)
        }
        Err(e) => {
            let result = serde_json::json!({ "error": format!("the source cannot be read: {e}") });
            finish_run(c, &source_id, due_at, lease_until, now + UNREADABLE_RETRY_MS, now, &result)?;
            Ok(None)
        }
    }
}

/// How long a source that cannot be read is put off.
const UNREADABLE_RETRY_MS: i64 = 60_000;

pub fn finish_run(
    c: &Connection,
    source_id: &str,
    due_at: i64,
    lease_until: i64,
    next_due_at: i64,
    now: i64,
    result: &serde_json::Value,
) -> Result<()> {
    c.prepare_cached(
        "UPDATE ingest_schedule SET due_at = CASE WHEN due_at = ?2 THEN ?3 ELSE due_at END,
             lease_until = NULL, last_run_at = ?4, last_result = ?5
         WHERE source_id = ?1 AND lease_until = ?6",
    )?
    .execute(params![source_id, due_at, next_due_at, now, result.to_string(), lease_until])?;
    Ok(())
}
