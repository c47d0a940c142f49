//! The encryption keyring from the configuration (`--encryption-key`,
//! `--previous-encryption-keys`), or, for the embedded store with no key given,
//! a key file next to the database, made on first start. Then every secret not
//! yet sealed under the current key is re-sealed.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use hookd_store::crypt::{self, Key, Keyring};
use hookd_store::Store;

use crate::config::{Config, Database};

/// Name of the key file kept beside an embedded database made without a key.
pub const KEY_FILE: &str = "encryption.key";

/// Installs the process's keyring as the configuration says; returns a line
/// for the operator when a key file was made.
pub fn install(cfg: &Config) -> anyhow::Result<Option<String>> {
    let previous = cfg
        .previous_encryption_keys
        .iter()
        .map(|k| Key::parse(k).context("--previous-encryption-keys"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (current, note) = match (&cfg.encryption_key, &cfg.database) {
        (Some(k), _) => (Key::parse(k).context("--encryption-key")?, None),
        (None, Database::Sqlite(path)) => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            key_file(&dir.join(KEY_FILE))?
        }
        (None, Database::Postgres(_)) => {
            if !previous.is_empty() {
                bail!("--previous-encryption-keys needs --encryption-key");
            }
            tracing::warn!(
                "no --encryption-key: endpoint secrets and headers are stored in plain text in PostgreSQL; \
                 give every node the same key (hookd encryption generate-key)"
            );
            crypt::install(None);
            return Ok(None);
        }
    };
    crypt::install(Some(Keyring::new(current, previous)));
    Ok(note)
}

/// Reads the key file, or makes one (mode 0600).
fn key_file(path: &Path) -> anyhow::Result<(Key, Option<String>)> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((Key::parse(&text).with_context(|| format!("the key file {}", path.display()))?, None)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let written = Key::generate();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).with_context(|| format!("cannot create {}", path.display()))?;
            file.write_all(written.as_bytes())?;
            file.sync_all()?;
            let note = format!(
                "generated an encryption key for secrets at rest in {} (mode 0600); back it up: without it the \
                 endpoint secrets cannot be read",
                path.display()
            );
            Ok((Key::parse(&written)?, Some(note)))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read the key file {}", path.display())),
    }
}

/// Re-seals every endpoint secret not sealed under the current key; returns how many.
pub async fn reseal_all(store: &dyn Store) -> anyhow::Result<u64> {
    let mut total = 0;
    loop {
        let n = store.reseal_secrets(500).await.context("re-sealing secrets")?;
        if n == 0 {
            return Ok(total);
        }
        total += n;
    }
}
