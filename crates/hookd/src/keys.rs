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

/// What the marker is bound to.
const MARKER_CONTEXT: &str = "crypt_marker";

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

/// Reads the key file, or makes one (mode 0600): written to a temporary file,
/// synced, then linked into place (never over an existing one) and the
/// directory synced, so a crash leaves either no key file or a whole one.
fn key_file(path: &Path) -> anyhow::Result<(Key, Option<String>)> {
    let read = |path: &Path| -> anyhow::Result<Key> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read the key file {}", path.display()))?;
        Key::parse(&text).with_context(|| format!("the key file {}", path.display()))
    };
    if path.exists() {
        return Ok((read(path)?, None));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let written = Key::generate();
    let tmp = dir.join(format!(".{KEY_FILE}.{}", std::process::id()));
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        file.write_all(written.as_bytes())?;
        file.sync_all()?;
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).ok();
            let note = format!(
                "generated an encryption key for secrets at rest in {} (mode 0600); back it up: without it the \
                 endpoint secrets cannot be read",
                path.display()
            );
            Ok((Key::parse(&written)?, Some(note)))
        }
        // Another process made it first: use that one.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok((read(path)?, None)),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// Checks that this node can open what the database was sealed with (else it
/// refuses to start, naming the key), re-seals every endpoint secret not sealed
/// under the current key, and records the current key's marker. Returns how
/// many endpoints were found to re-seal.
pub async fn prepare(store: &dyn Store) -> anyhow::Result<u64> {
    let keyring = crypt::keyring();
    if let Some(marker) = store.crypt_marker().await.context("reading the encryption marker")? {
        let key_id = marker.strip_prefix("enc1:").and_then(|r| r.split(':').next()).unwrap_or("?").to_string();
        match &keyring {
            None => bail!(
                "this database's secrets are sealed with encryption key {key_id}: give it as --encryption-key \
                 (HOOKD_ENCRYPTION_KEY)"
            ),
            Some(k) => {
                if k.open(&marker, MARKER_CONTEXT).is_err() {
                    bail!(
                        "this database's secrets are sealed with encryption key {key_id}, which this node was not \
                         given (--encryption-key, or --previous-encryption-keys during a rotation)"
                    );
                }
            }
        }
    }
    let Some(keyring) = keyring else { return Ok(0) };
    let total = reseal_all(store).await?;
    store.set_crypt_marker(keyring.seal("hookd", MARKER_CONTEXT)).await.context("recording the encryption marker")?;
    // Everything is sealed now: a plain-text value from here on was put there
    // behind hookd's back, and is refused.
    keyring.set_strict();
    Ok(total)
}

/// Re-seals every endpoint secret not sealed under the current key; returns how
/// many were found. Fails if some remain after many rounds (another node seals
/// under a different key).
pub async fn reseal_all(store: &dyn Store) -> anyhow::Result<u64> {
    let mut total = 0;
    for _ in 0..10_000 {
        let found = store.reseal_secrets(500).await.context("re-sealing secrets")?;
        if found == 0 {
            return Ok(total);
        }
        total += found;
    }
    bail!("secrets keep appearing under another key: do all nodes have the same --encryption-key?")
}
