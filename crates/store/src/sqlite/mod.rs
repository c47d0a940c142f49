//! The embedded SQLite store.
//!
//! One writer thread owns the only write connection and group-commits: it takes
//! every write that is waiting, runs each in its own savepoint inside a single
//! transaction, commits once (one fsync with `synchronous=FULL`), and only then
//! answers the callers. A write is therefore acknowledged only once durable, and
//! the fsync is shared by everything that arrived together. Reads run on a small
//! pool of connections in blocking tasks; WAL lets them proceed during writes.

mod apps;
mod attempts;
mod deliveries;
mod endpoints;
mod event_types;
mod messages;
mod owners;
mod retention;
mod rows;
mod store_impl;
mod tasks;
mod tokens;

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::{Result, StoreError};

const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_initial", include_str!("../../migrations/sqlite/0001_initial.sql")),
    ("0002_endpoint_owner", include_str!("../../migrations/sqlite/0002_endpoint_owner.sql")),
    ("0003_delivery_state", include_str!("../../migrations/sqlite/0003_delivery_state.sql")),
];
/// An existing database without incremental vacuum is converted (a full
/// `VACUUM`) at start only up to this size; a larger one is left as it is.
const MAX_AUTO_CONVERT_BYTES: i64 = 1 << 30;
/// Most writes committed together in one transaction.
const MAX_GROUP: usize = 512;
const MAX_IDLE_READERS: usize = 8;

/// A write to run on the writer thread; it returns the function that answers the caller
/// once the outcome of the commit is known.
type WriteJob = Box<dyn FnOnce(&Connection) -> Box<dyn FnOnce(Result<()>) + Send> + Send>;

pub struct SqliteStore {
    writer: mpsc::Sender<WriteJob>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: std::path::PathBuf,
    /// Held for the store's lifetime: the file lock that keeps other processes out.
    _lock: std::fs::File,
    /// Signalled after a commit that left work for the claim loop.
    pub(crate) work: Notify,
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
        std::thread::Builder::new()
            .name("hookd-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        Ok(SqliteStore {
            writer: tx,
            readers: Arc::new(Mutex::new(Vec::new())),
            path: path.to_owned(),
            _lock: lock,
            work: Notify::new(),
        })
    }

    /// Runs `f` in its own savepoint in the next group commit; returns once committed.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let job: WriteJob = Box::new(move |conn| {
            let result = in_savepoint(conn, f);
            Box::new(move |commit: Result<()>| {
                let _ = tx.send(commit.and(result));
            })
        });
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

    /// Runs `f` on a read connection in a blocking task.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let conn = match conn {
                Some(c) => c,
                None => open_connection(&path, true)?,
            };
            let result = f(&conn);
            let mut pool = readers.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < MAX_IDLE_READERS {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
    }
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
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         PRAGMA synchronous=FULL;
         PRAGMA foreign_keys=ON;
         PRAGMA busy_timeout=5000;
         PRAGMA cache_size=-32000;",
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

fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    conn.execute_batch("SAVEPOINT op")?;
    match f(conn) {
        Ok(v) => {
            conn.execute_batch("RELEASE op")?;
            Ok(v)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO op; RELEASE op")?;
            Err(e)
        }
    }
}

/// The writer thread: gathers waiting writes, runs them in one transaction,
/// commits, then answers every caller with the commit's outcome.
fn writer_loop(conn: Connection, mut rx: mpsc::Receiver<WriteJob>) {
    let mut batch: Vec<WriteJob> = Vec::with_capacity(MAX_GROUP);
    let mut answers: Vec<Box<dyn FnOnce(Result<()>) + Send>> = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut poisoned = false;
        let begun = conn.execute_batch("BEGIN IMMEDIATE").map_err(StoreError::from);
        if let Err(e) = begun {
            for job in batch.drain(..) {
                job(&conn)(Err(StoreError::Unavailable(e.to_string())));
            }
            continue;
        }
        for job in batch.drain(..) {
            // A panicking write must not take the only writer down with it: its
            // caller gets an error (its savepoint is left open and rolled back
            // with the transaction), the others in the group are unaffected.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&conn))) {
                Ok(answer) => answers.push(answer),
                Err(_) => {
                    tracing::error!("a write panicked; rolling back its group");
                    poisoned = true;
                }
            }
        }
        let committed = if poisoned {
            Err(StoreError::Internal("a write in this group failed unexpectedly".into()))
        } else {
            conn.execute_batch("COMMIT").map_err(|e| StoreError::Unavailable(e.to_string()))
        };
        if committed.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for answer in answers.drain(..) {
            answer(committed.as_ref().map(|_| ()).map_err(|e| StoreError::Unavailable(e.to_string())));
        }
    }
}
