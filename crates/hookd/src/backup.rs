//! `hookd backup --to DIR`: a consistent copy of the embedded store, taken
//! while hookd runs, with the key file that unseals its secrets. PostgreSQL is
//! backed up with its own tools (docs/operations.md#backup-and-restore).

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;

use crate::config::{Database, ServeOptions};
use crate::keys::KEY_FILE;

#[derive(Debug, Args)]
pub struct BackupOptions {
    /// A new directory for the copy (`hookd.db`, and `encryption.key` when the
    /// store's key is a key file).
    #[arg(long)]
    pub to: PathBuf,
    #[command(flatten)]
    pub serve: ServeOptions,
}

pub fn run(opts: BackupOptions) -> anyhow::Result<()> {
    let cfg = opts.serve.resolve()?;
    let Database::Sqlite(db) = &cfg.database else {
        bail!(
            "hookd backup copies the embedded store; back PostgreSQL up with pg_dump \
             (see docs/operations.md#backup-and-restore)"
        );
    };
    if !db.exists() {
        bail!("no database at {}: give the server's --data-dir or --database-url", db.display());
    }
    if opts.to.exists() && std::fs::read_dir(&opts.to)?.next().is_some() {
        bail!("{} is not empty: back up into a new directory", opts.to.display());
    }
    std::fs::create_dir_all(&opts.to).with_context(|| format!("cannot make {}", opts.to.display()))?;
    // The copy holds payloads and secrets: for its owner only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&opts.to, std::fs::Permissions::from_mode(0o700))?;
    }
    let copy = opts.to.join("hookd.db");
    let bytes = hookd_store::sqlite::backup(db, &copy).context("backing up the database")?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600))?;
    }
    println!("database: {} ({bytes} bytes), a snapshot of {}", copy.display(), db.display());
    let key = db.parent().map(|d| d.join(KEY_FILE)).filter(|k| k.exists());
    match (&cfg.encryption_key, key) {
        (None, Some(key)) => {
            let to = opts.to.join(KEY_FILE);
            std::fs::copy(&key, &to).with_context(|| format!("copying {}", key.display()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600))?;
            }
            println!("key: {} (it unseals the endpoint secrets: keep it as safe as the database)", to.display());
        }
        (Some(_), _) => println!("key: given by --encryption-key / HOOKD_ENCRYPTION_KEY; keep it with the backup"),
        (None, None) => println!("key: none found beside the database"),
    }
    println!(
        "restore: stop hookd, put these files in an empty --data-dir (no hookd.db-wal or hookd.db-shm), start hookd"
    );
    Ok(())
}
