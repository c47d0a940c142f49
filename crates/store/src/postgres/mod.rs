//! The PostgreSQL store, shared by many hookd nodes.
//!
//! Every call runs on a connection from one pool; what SQLite does in one write
//! closure is one PostgreSQL transaction here (or one statement, where a single
//! statement does it all). Several nodes can use the same database at once:
//! workers claim due deliveries with `FOR UPDATE SKIP LOCKED` under per-endpoint
//! queue ownership (decision 1), and `LISTEN/NOTIFY` wakes idle workers when a
//! commit leaves unleased work ([`notify`]). Queries are checked at run time
//! (no build-time database); the per-resource modules mirror `sqlite/`.
//!
//! Connection-level failures map to [`StoreError::Unavailable`] (the API answers
//! 503), and the pool reconnects by itself once the server is back.

mod apps;
mod attempts;
mod audit;
mod batch;
mod checks;
mod connectors;
mod deliveries;
mod endpoints;
mod event_types;
mod inbound;
mod mcp_tokens;
mod messages;
mod notify;
mod ordering;
mod owners;
mod poller;
mod retention;
mod rows;
mod slas;
mod stats;
mod store_impl;
mod tasks;
mod templates;
mod tokens;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool};

use self::notify::WorkSignal;
use crate::{Result, StoreError};

const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_initial", include_str!("../../migrations/postgres/0001_initial.sql")),
    ("0003_delivery_state", include_str!("../../migrations/postgres/0003_delivery_state.sql")),
    ("0004_delivery_control", include_str!("../../migrations/postgres/0004_delivery_control.sql")),
    ("0005_audit", include_str!("../../migrations/postgres/0005_audit.sql")),
    ("0006_tenancy", include_str!("../../migrations/postgres/0006_tenancy.sql")),
    ("0007_inbound", include_str!("../../migrations/postgres/0007_inbound.sql")),
    ("0008_status_tracking", include_str!("../../migrations/postgres/0008_status_tracking.sql")),
    ("0009_source_schedule", include_str!("../../migrations/postgres/0009_source_schedule.sql")),
    ("0010_one_time_token", include_str!("../../migrations/postgres/0010_one_time_token.sql")),
    ("0011_attempt_headers", include_str!("../../migrations/postgres/0011_attempt_headers.sql")),
    ("0012_portal_settings", include_str!("../../migrations/postgres/0012_portal_settings.sql")),
    ("0013_poller", include_str!("../../migrations/postgres/0013_poller.sql")),
    ("0014_endpoint_auth", include_str!("../../migrations/postgres/0014_endpoint_auth.sql")),
    ("0015_ordered_delivery", include_str!("../../migrations/postgres/0015_ordered_delivery.sql")),
    ("0016_templates", include_str!("../../migrations/postgres/0016_templates.sql")),
    ("0017_schemas", include_str!("../../migrations/postgres/0017_schemas.sql")),
    ("0018_connectors", include_str!("../../migrations/postgres/0018_connectors.sql")),
    ("0019_stats", include_str!("../../migrations/postgres/0019_stats.sql")),
    ("0020_sla", include_str!("../../migrations/postgres/0020_sla.sql")),
    ("0021_endpoint_check", include_str!("../../migrations/postgres/0021_endpoint_check.sql")),
    ("0022_endpoint_health_event", include_str!("../../migrations/postgres/0022_endpoint_health_event.sql")),
    ("0023_alert_state", include_str!("../../migrations/postgres/0023_alert_state.sql")),
    ("0024_mcp_token", include_str!("../../migrations/postgres/0024_mcp_token.sql")),
];

/// Connections per node. PostgreSQL's default `max_connections` is 100, shared
/// by every node (each also holds one for `LISTEN`).
const MAX_CONNECTIONS: u32 = 16;
/// How long a call waits for a connection: while the database is down, callers
/// get `Unavailable` (the API a 503) after this, not after a TCP timeout.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// A pooled connection idle for longer is pinged before use, so a server restart
/// costs no failed call. Connections in steady use skip the round trip (sqlx
/// also pings each connection when it is returned, off the caller's path).
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

pub struct PostgresStore {
    pub(crate) pool: PgPool,
    pub(crate) work: WorkSignal,
    /// Enqueues, committed in groups ([`batch`]).
    pub(crate) enqueues: tokio::sync::mpsc::Sender<batch::Request>,
}

impl PostgresStore {
    /// Connects a pool, runs migrations (under a `pg_advisory_lock` so several
    /// nodes can start at once), and starts listening for work notifications.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::open(url, None).await
    }

    /// The same in a given schema (created if missing; every connection's
    /// `search_path` set to it): each test gets its own schema. The name must be
    /// a plain lower-case identifier (`[a-z_][a-z0-9_]*`).
    pub async fn connect_in_schema(url: &str, schema: &str) -> Result<Self> {
        let plain = schema.len() <= 63
            && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && schema.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !plain {
            return Err(StoreError::Internal(format!("schema name {schema:?} is not a plain lower-case identifier")));
        }
        Self::open(url, Some(schema)).await
    }

    async fn open(url: &str, schema: Option<&str>) -> Result<Self> {
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("invalid database URL: {e}")))?
            .application_name("hookd");
        if let Some(schema) = schema {
            options = options.options([("search_path", schema)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for < PING_IF_IDLE_FOR {
                        return Ok(true);
                    }
                    // A failed ping discards the connection and the pool opens another.
                    Ok(conn.ping().await.is_ok())
                })
            })
            .connect_lazy_with(options.clone());
        migrate(&pool, schema).await?;
        // LISTEN holds its connection for good: give it a pool of its own.
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(options);
        let work = WorkSignal::start(pool.clone(), listen_pool);
        let enqueues = batch::start(pool.clone());
        Ok(PostgresStore { pool, work, enqueues })
    }

    /// Bytes on disk of the tables that grow with traffic, indexes and TOAST
    /// included (for `hookd bench-retention` and operators' checks).
    pub async fn table_sizes(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT t, pg_total_relation_size(to_regclass(t)) FROM unnest(ARRAY['message', 'delivery', 'attempt']) AS t",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}

/// Applies the migrations not yet recorded in `schema_migration`, each in its own
/// transaction. Every transaction first takes a transaction-level advisory lock
/// (per schema), so of several nodes starting at once one migrates while the
/// others wait and then find the work done; the lock goes with the transaction,
/// whatever happens to the connection.
async fn migrate(pool: &PgPool, schema: Option<&str>) -> Result<()> {
    let lock_key = advisory_key(&format!("hookd:migrate:{}", schema.unwrap_or("")));
    let mut conn = pool.acquire().await?;
    prepare_schema(&mut conn, lock_key, schema).await?;
    for &(name, sql) in MIGRATIONS {
        if apply_migration(&mut conn, lock_key, name, sql).await? {
            tracing::info!(migration = name, "applied migration");
        }
    }
    Ok(())
}

/// Creates the schema (if given) and the migration log.
async fn prepare_schema(c: &mut PgConnection, lock_key: i64, schema: Option<&str>) -> Result<()> {
    let mut tx = c.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(lock_key).execute(&mut *tx).await?;
    if let Some(schema) = schema {
        let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
        tx.execute(create.as_str()).await?;
    }
    tx.execute("CREATE TABLE IF NOT EXISTS schema_migration (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)")
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Applies one migration unless the log has it; true when it applied it.
async fn apply_migration(c: &mut PgConnection, lock_key: i64, name: &str, sql: &str) -> Result<bool> {
    let mut tx = c.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(lock_key).execute(&mut *tx).await?;
    let done: bool = sqlx::query_scalar("SELECT EXISTS(SELECT 1 FROM schema_migration WHERE name = $1)")
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
    if done {
        return Ok(false);
    }
    // Without arguments, the simple query protocol: a file of several statements runs as is.
    tx.execute(sql).await?;
    sqlx::query("INSERT INTO schema_migration (name, applied_at) VALUES ($1, $2)")
        .bind(name)
        .bind(hookd_core::timefmt::now_millis())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// A stable 64-bit advisory lock key for `name` (FNV-1a): every node computes
/// the same key, whatever its build.
pub(crate) fn advisory_key(name: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}
