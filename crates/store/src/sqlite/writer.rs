//! The writer thread and its group commit.
//!
//! One thread owns the only write connection. It takes every write that is
//! waiting, runs them all in one transaction, commits once (one fsync with
//! `synchronous=FULL`), and only then answers the callers: a write is
//! acknowledged only once durable, and the fsync is shared by everything that
//! arrived together.
//!
//! Writes run optimistically, one after another with no savepoint between
//! them: a savepoint makes SQLite copy every page a write touches that an
//! earlier write of the group already changed (its statement journal), which
//! is most of them, since writes append to the same b-tree pages. Almost every
//! group succeeds whole. When one write fails (a conflict, a refused value) or
//! panics, the group is rolled back and run again with each write in its own
//! savepoint, so the failure is that write's alone. Writes are therefore
//! closures that can run twice: they read what they capture, and return new
//! values rather than moving captured ones out.

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::{Result, StoreError};

/// Most writes committed together in one transaction.
pub const MAX_GROUP: usize = 512;

/// One queued write: runs (perhaps twice), then answers its caller.
pub trait Write: Send {
    /// Runs the write and keeps its result; true when it succeeded.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller: the kept result once the group committed, or the
    /// group's failure.
    fn answer(self: Box<Self>, committed: Result<()>);
}

pub type WriteJob = Box<dyn Write>;

/// A write whose closure returns a `T` for its caller.
pub struct Job<T, F> {
    f: F,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job<T, F> {
    pub fn new(f: F, reply: oneshot::Sender<Result<T>>) -> Self {
        Job { f, result: None, reply }
    }
}

impl<T, F> Write for Job<T, F>
where
    T: Send,
    F: FnMut(&Connection) -> Result<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = (self.f)(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, committed: Result<()>) {
        let this = *self;
        let result = match (committed, this.result) {
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(StoreError::Internal("a write did not run".into())),
            (Err(e), _) => Err(e),
        };
        let _ = this.reply.send(result);
    }
}

/// Gathers waiting writes, runs them in one transaction, commits, then answers
/// every caller with the commit's outcome. Returns when every sender is gone.
/// `rolled_back` runs whenever writes that ran are undone, so that what was
/// remembered of them is forgotten.
pub fn run(conn: Connection, mut rx: mpsc::Receiver<WriteJob>, rolled_back: impl Fn()) {
    let mut batch: Vec<WriteJob> = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let committed = commit_group(&conn, &mut batch, &rolled_back);
        let shared = |r: &Result<()>| match r {
            Ok(()) => Ok(()),
            Err(e) => Err(StoreError::Unavailable(e.to_string())),
        };
        for job in batch.drain(..) {
            job.answer(shared(&committed));
        }
    }
}

fn exec(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Runs the group and commits it; the jobs keep their own results. Whatever
/// fails on the way, the transaction is rolled back and what was remembered of
/// its writes forgotten before the error is returned.
fn commit_group(conn: &Connection, batch: &mut [WriteJob], rolled_back: &impl Fn()) -> Result<()> {
    exec(conn, "BEGIN IMMEDIATE").map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let committed = run_and_commit(conn, batch, rolled_back);
    if committed.is_err() {
        let _ = exec(conn, "ROLLBACK");
        rolled_back();
    }
    committed
}

fn run_and_commit(conn: &Connection, batch: &mut [WriteJob], rolled_back: &impl Fn()) -> Result<()> {
    let all_ok = batch.iter_mut().all(|job| run_guarded(conn, job) == Ran::Ok);
    if !all_ok {
        // Again, each write in its own savepoint: a failure is its own.
        exec(conn, "ROLLBACK")?;
        rolled_back();
        exec(conn, "BEGIN IMMEDIATE").map_err(|e| StoreError::Unavailable(e.to_string()))?;
        for job in batch.iter_mut() {
            exec(conn, "SAVEPOINT op")?;
            match run_guarded(conn, job) {
                Ran::Ok => exec(conn, "RELEASE op")?,
                Ran::Failed => {
                    exec(conn, "ROLLBACK TO op")?;
                    exec(conn, "RELEASE op")?;
                    rolled_back();
                }
                Ran::Panicked => {
                    // Its state is unknown: nothing of this group may commit.
                    tracing::error!("a write panicked; rolling back its group");
                    return Err(StoreError::Internal("a write in this group failed unexpectedly".into()));
                }
            }
        }
    }
    exec(conn, "COMMIT").map_err(|e| StoreError::Unavailable(e.to_string()))
}

#[derive(PartialEq, Eq)]
enum Ran {
    Ok,
    Failed,
    Panicked,
}

/// A panicking write must not take the only writer down with it.
fn run_guarded(conn: &Connection, job: &mut WriteJob) -> Ran {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(conn))) {
        Ok(true) => Ran::Ok,
        Ok(false) => Ran::Failed,
        Err(_) => Ran::Panicked,
    }
}
