//! The embedded SQLite store.
//!
//! One writer thread owns the only write connection and group-commits
//! ([`writer`]): a write is acknowledged only once durable, and the fsync is
//! shared by everything that arrived together. Reads run on a small pool of
//! connections in blocking tasks; WAL lets them proceed during writes.

mod apps;
mod attempts;
mod audit;
mod checks;
mod connectors;
mod deliveries;
mod endpoints;
mod event_types;
mod fanout;
mod inbound;
mod mcp_tokens;
mod messages;
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
mod writer;

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot, Notify};

use self::fanout::FanOutCache;
use self::writer::{Job, WriteJob};

use crate::{Result, StoreError};

const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_initial", include_str!("../../migrations/sqlite/0001_initial.sql")),
    ("0002_endpoint_owner", include_str!("../../migrations/sqlite/0002_endpoint_owner.sql")),
    ("0003_delivery_state", include_str!("../../migrations/sqlite/0003_delivery_state.sql")),
    ("0004_delivery_control", include_str!("../../migrations/sqlite/0004_delivery_control.sql")),
    ("0005_audit", include_str!("../../migrations/sqlite/0005_audit.sql")),
    ("0006_tenancy", include_str!("../../migrations/sqlite/0006_tenancy.sql")),
    ("0007_inbound", include_str!("../../migrations/sqlite/0007_inbound.sql")),
    ("0008_status_tracking", include_str!("../../migrations/sqlite/0008_status_tracking.sql")),
    ("0009_source_schedule", include_str!("../../migrations/sqlite/0009_source_schedule.sql")),
    ("0010_one_time_token", include_str!("../../migrations/sqlite/0010_one_time_token.sql")),
    ("0011_attempt_headers", include_str!("../../migrations/sqlite/0011_attempt_headers.sql")),
    ("0012_portal_settings", include_str!("../../migrations/sqlite/0012_portal_settings.sql")),
    ("0013_poller", include_str!("../../migrations/sqlite/0013_poller.sql")),
    ("0014_endpoint_auth", include_str!("../../migrations/sqlite/0014_endpoint_auth.sql")),
    ("0015_ordered_delivery", include_str!("../../migrations/sqlite/0015_ordered_delivery.sql")),
    ("0016_templates", include_str!("../../migrations/sqlite/0016_templates.sql")),
    ("0017_schemas", include_str!("../../migrations/sqlite/0017_schemas.sql")),
    ("0018_connectors", include_str!("../../migrations/sqlite/0018_connectors.sql")),
    ("0019_stats", include_str!("../../migrations/sqlite/0019_stats.sql")),
    ("0020_sla", include_str!("../../migrations/sqlite/0020_sla.sql")),
    ("0021_endpoint_check", include_str!("../../migrations/sqlite/0021_endpoint_check.sql")),
    ("0022_endpoint_health_event", include_str!("../../migrations/sqlite/0022_endpoint_health_event.sql")),
    ("0023_alert_state", include_str!("../../migrations/sqlite/0023_alert_state.sql")),
    ("0024_mcp_token", include_str!("../../migrations/sqlite/0024_mcp_token.sql")),
];
/// An existing database without incremental vacuum is converted (a full
/// `VACUUM`) at start only up to this size; a larger one is left as it is.
const MAX_AUTO_CONVERT_BYTES: i64 = 1 << 30;
const MAX_IDLE_READERS: usize = 8;

pub struct SqliteStore {
    writer: mpsc::Sender<WriteJob>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: std::path::PathBuf,
    /// Held for the store's lifetime: the file lock that keeps other processes out.
    _lock: std::fs::File,
    /// Signalled after a commit that left work for the claim loop.
    pub(crate) work: Notify,
    /// The writer's memory of each application's endpoints.
    pub(crate) fanout: Arc<FanOutCache>,
}

impl SqliteStore {
    /// Opens (creating if needed) `hookd.db` in `dir`, runs migrations, and starts the writer.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Unavailable(format!("cannot create data dir {}: {e}", dir.display())))?;
        Self::open(&dir.join("hookd.db"))
    }

    pub fn open(path: &Path) -> Result<Self> {
        // One process per database file: the embedded store is single-node, which
        // is what lets it take back every lease at start (below).
        let lock_path = path.with_extension("db.lock");
        let lock = std::fs::File::create(&lock_path)
            .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", lock_path.display())))?;
        lock.try_lock().map_err(|_| {
            StoreError::Unavailable(format!(
                "{} is in use by another hookd process (one process per data dir; use PostgreSQL for several nodes)",
                path.display()
            ))
        })?;
        let conn = open_connection(path, false)?;
        enable_incremental_vacuum(&conn, path)?;
        migrate(&conn)?;
        // Whatever a previous run of this process held is free now: a crashed
        // run's deliveries are sent at once instead of after their lease.
        conn.execute(
            "UPDATE delivery SET state = 'scheduled', due_at = ?1, lease_owner = NULL, lease_expires_at = NULL
             WHERE state = 'leased'",
            [hookd_core::timefmt::now_millis()],
        )?;
        conn.execute_batch(
            "DELETE FROM endpoint_owner;
             UPDATE background_task SET lease_owner = NULL, lease_expires_at = NULL WHERE status = 'running';",
        )?;
        let (tx, rx) = mpsc::channel::<WriteJob>(8192);
        let fanout = Arc::new(FanOutCache::default());
        let forget = fanout.clone();
        std::thread::Builder::new()
            .name("hookd-sqlite-writer".into())
            .spawn(move || writer::run(conn, rx, move || forget.clear()))
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        Ok(SqliteStore {
            writer: tx,
            readers: Arc::new(Mutex::new(Vec::new())),
            path: path.to_owned(),
            _lock: lock,
            work: Notify::new(),
            fanout,
        })
    }

    /// Runs `f` in the next group commit; returns once committed. `f` may run
    /// twice (see [`writer`]): it must not move what it captures out.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let job: WriteJob = Box::new(Job::new(f, tx));
        self.writer.send(job).await.map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        rx.await.map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?
    }

    /// Rewrites the file to its smallest size (`VACUUM`), with incremental vacuum
    /// on. Runs on a connection of its own: VACUUM cannot run in the writer's
    /// transactions. Meant for when nothing else uses the store.
    pub async fn vacuum(&self) -> Result<()> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = open_connection(&path, false)?;
            conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")?;
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
    }

    /// Copies the WAL into the database file and empties it, so the file shows
    /// its size after the space given back (`PRAGMA wal_checkpoint(TRUNCATE)`).
    pub async fn checkpoint(&self) -> Result<()> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = open_connection(&path, false)?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
    }

    /// Runs `f` on a read connection in a blocking task.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (readers, path) = (self.readers.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || with_reader(&readers, &path, f))
            .await
            .map_err(|e| StoreError::Internal(e.to_string()))?
    }

    /// Runs `f`, a lookup by primary or unique key, on a read connection right
    /// here. Such a lookup takes microseconds (its pages are in the cache, and
    /// WAL readers never wait for the writer), less than handing it to a
    /// blocking thread and back; it is on the path of every request.
    pub(crate) fn read_point<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        with_reader(&self.readers, &self.path, f)
    }
}

/// Runs `f` on a pooled read connection (opening one when none is idle).
fn with_reader<T>(
    readers: &Mutex<Vec<Connection>>,
    path: &Path,
    f: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    let conn = readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let conn = match conn {
        Some(c) => c,
        None => open_connection(path, true)?,
    };
    let result = f(&conn);
    let mut pool = readers.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() < MAX_IDLE_READERS {
        pool.push(conn);
    }
    result
}

/// Writes a consistent copy of the database at `path` to `to` (a new file),
/// while hookd may be running: `VACUUM INTO` reads one snapshot, so the copy
/// holds exactly the transactions committed when it started, every
/// acknowledged message among them. Returns the copy's size in bytes.
pub fn backup(path: &Path, to: &Path) -> Result<u64> {
    if to.exists() {
        return Err(StoreError::Invalid { field: "to", msg: format!("{} exists already", to.display()) });
    }
    let conn = open_connection(path, true)?;
    let target = to.to_str().ok_or_else(|| StoreError::Invalid { field: "to", msg: "not UTF-8".into() })?;
    conn.execute("VACUUM INTO ?1", [target])?;
    Ok(std::fs::metadata(to).map(|m| m.len()).unwrap_or(0))
}

fn open_connection(path: &Path, read_only: bool) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    // WAL with synchronous=FULL: a commit is on disk when it returns (decision 4).
    // The writer checkpoints (SQLite's default, every 1000 pages) right after a
    // commit, so the WAL starts over and stays small: a checkpoint running beside
    // a writer that never pauses would never catch up, and the WAL would grow.
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         PRAGMA synchronous=FULL;
         PRAGMA foreign_keys=ON;
         PRAGMA busy_timeout=5000;
         PRAGMA cache_size=-32000;
         PRAGMA temp_store=MEMORY;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Space freed by the retention sweep goes back to the file system only with
/// `auto_vacuum = INCREMENTAL` (see `reclaim_space`). A new database gets it
/// before its first table; an existing one is converted by a `VACUUM` when it is
/// small enough to do that at start.
fn enable_incremental_vacuum(conn: &Connection, path: &Path) -> Result<()> {
    const INCREMENTAL: i64 = 2;
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if mode == INCREMENTAL {
        return Ok(());
    }
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL")?;
    if pages == 0 {
        return Ok(());
    }
    if pages * page_size > MAX_AUTO_CONVERT_BYTES {
        tracing::warn!(
            path = %path.display(),
            "the database does not return freed space to the file system; stop hookd and run `hookd prune --vacuum` once"
        );
        return Ok(());
    }
    tracing::info!(path = %path.display(), "converting the database to incremental vacuum");
    conn.execute_batch("VACUUM")?;
    Ok(())
}

fn migrate(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migration (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )?;
    for (name, sql) in MIGRATIONS {
        let done: bool =
            conn.query_row("SELECT EXISTS(SELECT 1 FROM schema_migration WHERE name = ?1)", [name], |r| r.get(0))?;
        if done {
            continue;
        }
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migration (name, applied_at) VALUES (?1, ?2)",
            rusqlite::params![name, hookd_core::timefmt::now_millis()],
        )?;
        tx.commit()?;
        tracing::info!(migration = name, "applied migration");
    }
    Ok(())
}
