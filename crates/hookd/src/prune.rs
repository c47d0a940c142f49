//! `hookd prune`: runs the retention sweep now (the server also runs it every
//! `--prune-interval`) and prints what it did; `--vacuum` then rewrites an
//! embedded store's file to its smallest size.

use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use hookd_delivery::retention::sweep;
use hookd_store::sqlite::SqliteStore;
use hookd_store::Store;

use crate::config::{Database, ServeOptions};

#[derive(Debug, Args)]
pub struct PruneOptions {
    #[command(flatten)]
    pub serve: ServeOptions,
    /// Afterwards, rewrite the embedded store's file (SQLite `VACUUM`): gives back
    /// every free page and turns on incremental vacuum for a store made before
    /// it existed. Needs the server stopped and free disk space the size of the
    /// file. PostgreSQL's autovacuum does this work there.
    #[arg(long)]
    pub vacuum: bool,
}

pub async fn run(opts: PruneOptions) -> anyhow::Result<()> {
    let vacuum = opts.vacuum;
    let cfg = opts.serve.resolve()?;
    let sqlite_path = match &cfg.database {
        Database::Sqlite(path) => Some(path.clone()),
        Database::Postgres(_) => None,
    };
    let (store, sqlite): (Arc<dyn Store>, Option<Arc<SqliteStore>>) = match &sqlite_path {
        Some(path) => {
            let s = Arc::new(
                SqliteStore::open(path).with_context(|| format!("cannot open the store at {}", path.display()))?,
            );
            (s.clone(), Some(s))
        }
        None => (crate::serve::open_store(&cfg.database).await?, None),
    };
    let before = sqlite_path.as_deref().and_then(file_size);
    let swept = sweep(&*store, &crate::serve::retention_config(&cfg)).await?;
    let p = swept.pruned;
    println!(
        "expunged {} payloads, cleared {} response bodies, canceled {} deliveries, deleted {} messages, \
         removed {} old keys and tasks",
        p.messages, p.attempts, p.canceled, p.deleted, p.housekeeping
    );
    if sqlite_path.is_some() {
        println!("gave back {} pages", swept.pages_freed);
    }
    if vacuum {
        match &sqlite {
            Some(s) => s.vacuum().await?,
            None => println!("--vacuum applies to the embedded store; PostgreSQL's autovacuum reclaims space"),
        }
    }
    if let (Some(path), Some(before)) = (&sqlite_path, before) {
        let after = file_size(path).unwrap_or(before);
        println!("{}: {} bytes before, {} bytes after", path.display(), before, after);
    }
    Ok(())
}

fn file_size(path: &std::path::Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}
