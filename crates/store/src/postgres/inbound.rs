//! Inbound sources and their request log.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, QueryBuilder, Row};

use super::rows::{self, RowResult};
use super::{apps, messages};
use crate::inbound::app_name;
use crate::inbound::*;
use crate::model::*;
use crate::{codec, crypt, Result, StoreError};

const SOURCE_COLUMNS: &str = "org_id, id, uid, name, kind, config, settings, metadata, app_id, token, token_hash, \
                              prev_token_hash, prev_token_until, created_at, updated_at";

fn decode(e: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(e.to_string().into())
}

fn source(r: &PgRow) -> RowResult<Source> {
    let id: String = r.try_get(1)?;
    let config = crypt::open(&r.try_get::<String, _>(5)?, &format!("{id}:config")).map_err(decode)?;
    let token = crypt::open(&r.try_get::<String, _>(9)?, &format!("{id}:token")).map_err(decode)?;
    Ok(Source {
        org_id: r.try_get(0)?,
        uid: r.try_get(2)?,
        name: r.try_get(3)?,
        kind: r.try_get(4)?,
        config: serde_json::from_str(&config).map_err(decode)?,
        settings: serde_json::from_str(&r.try_get::<String, _>(6)?).map_err(decode)?,
        metadata: serde_json::from_str(&r.try_get::<String, _>(7)?).map_err(decode)?,
        app_id: r.try_get(8)?,
        token,
        prev_token: None,
        prev_token_until: r.try_get(12)?,
        created_at: r.try_get(13)?,
        updated_at: r.try_get(14)?,
        id,
    })
}

pub async fn list(c: &mut PgConnection, org_id: &str, page: &Page) -> Result<Vec<Source>> {
    let mut q = QueryBuilder::new(format!("SELECT {SOURCE_COLUMNS} FROM ingest_source WHERE org_id = "));
    q.push_bind(org_id);
    rows::push_page(&mut q, page, "id");
    rows::collect(q.build().fetch_all(c).await?, source)
}

pub async fn get(c: &mut PgConnection, org_id: &str, id_or_uid: &str) -> Result<Source> {
    let row = sqlx::query(&format!(
        "SELECT {SOURCE_COLUMNS} FROM ingest_source WHERE org_id = $1 AND (id = $2 OR uid = $2)
         ORDER BY id = $2 DESC LIMIT 1"
    ))
    .bind(org_id)
    .bind(id_or_uid)
    .fetch_one(c)
    .await?;
    Ok(source(&row)?)
}

pub async fn by_token(c: &mut PgConnection, token: &str, now: i64) -> Result<Option<Source>> {
    let row = sqlx::query(&format!(
        "SELECT {SOURCE_COLUMNS} FROM ingest_source
         WHERE token_hash = $1 OR (prev_token_hash = $1 AND prev_token_until > $2) LIMIT 1"
    ))
    .bind(token_hash(token))
    .bind(now)
    .fetch_optional(c)
    .await?;
    Ok(row.as_ref().map(source).transpose()?)
}

const UID_TAKEN: &str = "a source with this uid";

pub async fn insert(c: &mut PgConnection, s: &Source, app: &Application) -> Result<()> {
    apps::insert(&mut *c, app).await?;
    sqlx::query(&format!(
        "INSERT INTO ingest_source ({SOURCE_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    ))
    .bind(&s.org_id)
    .bind(&s.id)
    .bind(&s.uid)
    .bind(&s.name)
    .bind(&s.kind)
    .bind(crypt::seal(&s.config.to_string(), &format!("{}:config", s.id)))
    .bind(s.settings.to_string())
    .bind(codec::json(&s.metadata))
    .bind(&s.app_id)
    .bind(crypt::seal(&s.token, &format!("{}:token", s.id)))
    .bind(token_hash(&s.token))
    .bind(s.prev_token.as_deref().map(token_hash))
    .bind(s.prev_token_until)
    .bind(s.created_at)
    .bind(s.updated_at)
    .execute(c)
    .await
    .map_err(|e| rows::unique_violation(e, UID_TAKEN))?;
    Ok(())
}

/// As the SQLite backend: a `prev_token` of `None` keeps the stored one.
pub async fn update(c: &mut PgConnection, s: &Source) -> Result<()> {
    let n = sqlx::query(
        "UPDATE ingest_source SET uid = $3, name = $4, kind = $5, config = $6, settings = $7, metadata = $8,
             token = $9, token_hash = $10, prev_token_hash = COALESCE($11, prev_token_hash),
             prev_token_until = COALESCE($12, prev_token_until), updated_at = $13
         WHERE org_id = $1 AND id = $2",
    )
    .bind(&s.org_id)
    .bind(&s.id)
    .bind(&s.uid)
    .bind(&s.name)
    .bind(&s.kind)
    .bind(crypt::seal(&s.config.to_string(), &format!("{}:config", s.id)))
    .bind(s.settings.to_string())
    .bind(codec::json(&s.metadata))
    .bind(crypt::seal(&s.token, &format!("{}:token", s.id)))
    .bind(token_hash(&s.token))
    .bind(s.prev_token.as_deref().map(token_hash))
    .bind(s.prev_token_until)
    .bind(s.updated_at)
    .execute(&mut *c)
    .await
    .map_err(|e| rows::unique_violation(e, UID_TAKEN))?;
    if n.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    sqlx::query("UPDATE application SET name = $3 WHERE org_id = $1 AND id = $2")
        .bind(&s.org_id)
        .bind(&s.app_id)
        .bind(app_name(&s.name))
        .execute(c)
        .await?;
    Ok(())
}

pub async fn delete(c: &mut PgConnection, org_id: &str, id: &str) -> Result<()> {
    let src = get(&mut *c, org_id, id).await?;
    sqlx::query("DELETE FROM ingest_request WHERE org_id = $1 AND source_id = $2")
        .bind(org_id)
        .bind(&src.id)
        .execute(&mut *c)
        .await?;
    sqlx::query("DELETE FROM ingest_object WHERE org_id = $1 AND source_id = $2")
        .bind(org_id)
        .bind(&src.id)
        .execute(&mut *c)
        .await?;
    set_schedule(&mut *c, org_id, &src.id, None).await?;
    sqlx::query("DELETE FROM ingest_source WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(&src.id)
        .execute(&mut *c)
        .await?;
    match apps::delete(c, org_id, &src.app_id).await {
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

fn request(r: &PgRow) -> RowResult<(InboundRequest, Forwarding)> {
    let headers: Vec<(String, String)> = serde_json::from_str(&r.try_get::<String, _>(6)?).map_err(decode)?;
    let outcome: String = r.try_get(8)?;
    let count = |i: usize| -> RowResult<u64> { Ok(r.try_get::<i64, _>(i)?.max(0) as u64) };
    Ok((
        InboundRequest {
            org_id: r.try_get(0)?,
            id: r.try_get(1)?,
            source_id: r.try_get(2)?,
            received_at: r.try_get(3)?,
            method: r.try_get(4)?,
            remote_addr: r.try_get(5)?,
            headers,
            body: r.try_get(7)?,
            outcome: InboundOutcome::parse(&outcome).ok_or_else(|| decode(format!("outcome {outcome:?}")))?,
            status_code: r.try_get::<i64, _>(9)?.clamp(0, 999) as u16,
            error: r.try_get(10)?,
            event_type: r.try_get(11)?,
            event_id: r.try_get(12)?,
            msg_id: r.try_get(13)?,
            replay_of: r.try_get(14)?,
            query: r.try_get(15)?,
            object: match (r.try_get::<Option<String>, _>(16)?, r.try_get::<Option<String>, _>(17)?) {
                (Some(object_id), Some(status)) => Some(ObjectStatus { object_id, status, rank: 0 }),
                _ => None,
            },
        },
        Forwarding { deliveries: count(18)?, succeeded: count(19)?, failed: count(20)? },
    ))
}

pub async fn list_requests(
    c: &mut PgConnection,
    org_id: &str,
    source_id: &str,
    filter: &InboundFilter,
    page: &Page,
) -> Result<Vec<(InboundRequest, Forwarding)>> {
    let mut q = QueryBuilder::new(format!("SELECT {REQUEST_COLUMNS} FROM ingest_request r WHERE r.org_id = "));
    q.push_bind(org_id).push(" AND r.source_id = ").push_bind(source_id);
    if let Some(o) = filter.outcome {
        q.push(" AND r.outcome = ").push_bind(o.as_str());
    }
    if let Some(t) = &filter.event_type {
        q.push(" AND r.event_type = ").push_bind(t.clone());
    }
    if let Some(o) = &filter.object_id {
        q.push(" AND r.object_id = ").push_bind(o.clone());
    }
    if let Some(a) = filter.after {
        q.push(" AND r.received_at >= ").push_bind(a);
    }
    if let Some(b) = filter.before {
        q.push(" AND r.received_at < ").push_bind(b);
    }
    rows::push_page(&mut q, page, "r.id");
    rows::collect(q.build().fetch_all(c).await?, request)
}

pub async fn get_request(
    c: &mut PgConnection,
    org_id: &str,
    source_id: &str,
    id: &str,
) -> Result<(InboundRequest, Forwarding)> {
    let row = sqlx::query(&format!(
        "SELECT {REQUEST_COLUMNS} FROM ingest_request r WHERE r.org_id = $1 AND r.source_id = $2 AND r.id = $3"
    ))
    .bind(org_id)
    .bind(source_id)
    .bind(id)
    .fetch_one(c)
    .await?;
    Ok(request(&row)?)
}

async fn insert_request(c: &mut PgConnection, r: &InboundRequest) -> Result<()> {
    sqlx::query(
        "INSERT INTO ingest_request (org_id, id, source_id, received_at, method, remote_addr, headers, body, outcome,
             status_code, error, event_type, event_id, msg_id, replay_of, query, object_id, object_status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind(&r.org_id)
    .bind(&r.id)
    .bind(&r.source_id)
    .bind(r.received_at)
    .bind(&r.method)
    .bind(&r.remote_addr)
    .bind(codec::json(&r.headers))
    .bind(&r.body)
    .bind(r.outcome.as_str())
    .bind(i64::from(r.status_code))
    .bind(&r.error)
    .bind(&r.event_type)
    .bind(&r.event_id)
    .bind(&r.msg_id)
    .bind(&r.replay_of)
    .bind(&r.query)
    .bind(r.object.as_ref().map(|o| &o.object_id))
    .bind(r.object.as_ref().map(|o| &o.status))
    .execute(c)
    .await?;
    Ok(())
}

/// Run inside a transaction. See `Queue::ingest`.
pub async fn ingest(
    c: &mut PgConnection,
    req: &InboundRequest,
    msg: Option<&Message>,
    lease: Option<&Lease>,
) -> Result<(Ingested, usize)> {
    let Some(msg) = msg else {
        insert_request(c, req).await?;
        return Ok((Ingested::default(), 0));
    };
    let duplicate =
        |first: String| InboundRequest { outcome: InboundOutcome::Duplicate, msg_id: Some(first), ..req.clone() };
    if let Some(object) = &req.object {
        // Dedupe comes first: a provider's repeat is a duplicate, not an ignored status.
        if let Some(first) = first_with_event_id(c, msg).await? {
            insert_request(c, &duplicate(first.clone())).await?;
            return Ok((Ingested { duplicate_of: Some(first), ..Ingested::default() }, 0));
        }
        // The object's move and the message stand or fall together.
        sqlx::query("SAVEPOINT tracking").execute(&mut *c).await?;
        if !advance(&mut *c, req, object).await? {
            // A repeat racing the first waited on the object's row; now it
            // sees the first's message.
            if let Some(first) = first_with_event_id(c, msg).await? {
                insert_request(c, &duplicate(first.clone())).await?;
                return Ok((Ingested { duplicate_of: Some(first), ..Ingested::default() }, 0));
            }
            insert_request(c, &InboundRequest { outcome: InboundOutcome::Ignored, ..req.clone() }).await?;
            return Ok((Ingested { ignored: true, ..Ingested::default() }, 0));
        }
    }
    match messages::create(&mut *c, msg, None, lease, None).await {
        Ok((jobs, unleased)) => {
            let accepted =
                InboundRequest { outcome: InboundOutcome::Accepted, msg_id: Some(msg.id.clone()), ..req.clone() };
            insert_request(c, &accepted).await?;
            Ok((Ingested { jobs, duplicate_of: None, ignored: false }, unleased))
        }
        Err(StoreError::Conflict { existing_id: Some(first), .. }) => {
            if req.object.is_some() {
                sqlx::query("ROLLBACK TO SAVEPOINT tracking").execute(&mut *c).await?;
            }
            insert_request(c, &duplicate(first.clone())).await?;
            Ok((Ingested { duplicate_of: Some(first), ..Ingested::default() }, 0))
        }
        Err(e) => Err(e),
    }
}

/// The message of the application that already has `msg`'s event id.
async fn first_with_event_id(c: &mut PgConnection, msg: &Message) -> Result<Option<String>> {
    let Some(event_id) = &msg.event_id else { return Ok(None) };
    Ok(sqlx::query_scalar("SELECT id FROM message WHERE app_id = $1 AND event_id = $2")
        .bind(&msg.app_id)
        .bind(event_id)
        .fetch_optional(&mut *c)
        .await?)
}

/// Moves the object to the request's status if that is a later step than its
/// current one (or the object is new); whether it did. A concurrent request
/// for the same object waits on the row and is judged against its outcome.
async fn advance(c: &mut PgConnection, req: &InboundRequest, o: &ObjectStatus) -> Result<bool> {
    Ok(sqlx::query(
        "INSERT INTO ingest_object (org_id, source_id, object_id, status, rank, request_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
         ON CONFLICT (source_id, object_id) DO UPDATE
             SET status = excluded.status, rank = excluded.rank, request_id = excluded.request_id,
                 updated_at = excluded.updated_at
             WHERE ingest_object.rank < excluded.rank
         RETURNING 1",
    )
    .bind(&req.org_id)
    .bind(&req.source_id)
    .bind(&o.object_id)
    .bind(&o.status)
    .bind(i64::from(o.rank))
    .bind(&req.id)
    .bind(req.received_at)
    .fetch_optional(c)
    .await?
    .is_some())
}

pub async fn get_object(c: &mut PgConnection, org_id: &str, source_id: &str, object_id: &str) -> Result<TrackedObject> {
    let r = sqlx::query(
        "SELECT source_id, object_id, status, request_id, created_at, updated_at FROM ingest_object
         WHERE org_id = $1 AND source_id = $2 AND object_id = $3",
    )
    .bind(org_id)
    .bind(source_id)
    .bind(object_id)
    .fetch_one(c)
    .await?;
    Ok(TrackedObject {
        source_id: r.try_get(0)?,
        object_id: r.try_get(1)?,
        status: r.try_get(2)?,
        request_id: r.try_get(3)?,
        created_at: r.try_get(4)?,
        updated_at: r.try_get(5)?,
    })
}

pub async fn set_schedule(c: &mut PgConnection, org_id: &str, source_id: &str, due_at: Option<i64>) -> Result<()> {
    match due_at {
        None => {
            sqlx::query("DELETE FROM ingest_schedule WHERE org_id = $1 AND source_id = $2")
                .bind(org_id)
                .bind(source_id)
                .execute(c)
                .await?
        }
        Some(due) => {
            sqlx::query(
                "INSERT INTO ingest_schedule (org_id, source_id, due_at) VALUES ($1, $2, $3)
                 ON CONFLICT (source_id) DO UPDATE SET due_at = excluded.due_at",
            )
            .bind(org_id)
            .bind(source_id)
            .bind(due)
            .execute(c)
            .await?
        }
    };
    Ok(())
}

pub async fn get_schedule(c: &mut PgConnection, org_id: &str, source_id: &str) -> Result<Option<SourceSchedule>> {
    let row = sqlx::query(
        "SELECT due_at, last_run_at, last_result FROM ingest_schedule WHERE org_id = $1 AND source_id = $2",
    )
    .bind(org_id)
    .bind(source_id)
    .fetch_optional(c)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let last: Option<String> = r.try_get(2)?;
    Ok(Some(SourceSchedule {
        due_at: r.try_get(0)?,
        last_run_at: r.try_get(1)?,
        last_result: last.and_then(|l| serde_json::from_str(&l).ok()),
    }))
}

/// `SKIP LOCKED`: nodes claiming at once take different sources.
pub async fn claim_due(c: &mut PgConnection, now: i64, lease_until: i64) -> Result<Option<(Source, i64)>> {
    let taken = sqlx::query(
        "UPDATE ingest_schedule SET lease_until = $2
         WHERE source_id = (SELECT source_id FROM ingest_schedule
                            WHERE due_at <= $1 AND (lease_until IS NULL OR lease_until < $1)
                            ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING org_id, source_id, due_at",
    )
    .bind(now)
    .bind(lease_until)
    .fetch_optional(&mut *c)
    .await?;
    let Some(r) = taken else { return Ok(None) };
    let (org_id, source_id, due_at): (String, String, i64) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
    match get(&mut *c, &org_id, &source_id).await {
        Ok(src) => Ok(Some((src, due_at))),
        Err(StoreError::NotFound) => {
            set_schedule(c, &org_id, &source_id, None).await?;
            Ok(None)
        }
        Err(e) => {
            let result = serde_json::json!({ "error": format!("the source cannot be read: {e}") });
            finish_run(c, &source_id, due_at, lease_until, now + UNREADABLE_RETRY_MS, now, &result).await?;
            Ok(None)
        }
    }
}

/// How long a source that cannot be read is put off.
const UNREADABLE_RETRY_MS: i64 = 60_000;

pub async fn finish_run(
    c: &mut PgConnection,
    source_id: &str,
    due_at: i64,
    lease_until: i64,
    next_due_at: i64,
    now: i64,
    result: &serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "UPDATE ingest_schedule SET due_at = CASE WHEN due_at = $2 THEN $3 ELSE due_at END,
             lease_until = NULL, last_run_at = $4, last_result = $5
         WHERE source_id = $1 AND lease_until = $6",
    )
    .bind(source_id)
    .bind(due_at)
    .bind(next_due_at)
    .bind(now)
    .bind(result.to_string())
    .bind(lease_until)
    .execute(c)
    .await?;
    Ok(())
}
