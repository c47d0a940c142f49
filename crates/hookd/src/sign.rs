//! `hookd sign` and `hookd verify`: Standard Webhooks signatures in the shell.
//!
//! `hookd sign --secret whsec_… [--id msg_…] [--timestamp SECS] < body` prints
//! the three `webhook-*` headers (`v1` for an HMAC secret, `v1a` for an Ed25519
//! `whsk_…` one). `hookd verify --secret whsec_…|--public-key whpk_… --header
//! 'webhook-id: …' … < body` checks them: exit status 0 when one signature
//! matches in full (constant time; a truncated signature never does) and the
//! timestamp is within five minutes, 1 otherwise, saying why.

use std::io::Read;

use anyhow::{bail, Context};
use clap::Args;
use hookd_core::id::{new_id, IdPrefix};
use hookd_core::signing::{PublicKey, Secret};

/// The largest body read from stdin.
const MAX_BODY: u64 = 64 * 1024 * 1024;

#[derive(Debug, Args)]
pub struct SignOptions {
    /// The endpoint's signing secret (`whsec_…`, or `whsk_…` for Ed25519).
    #[arg(long, env = "HOOKD_SIGNING_SECRET", hide_env_values = true)]
    pub secret: String,
    /// The message id [default: a new `msg_…`].
    #[arg(long)]
    pub id: Option<String>,
    /// Unix seconds [default: now].
    #[arg(long, allow_hyphen_values = true)]
    pub timestamp: Option<i64>,
}

#[derive(Debug, Args)]
pub struct VerifyOptions {
    /// The signing secret (`whsec_…` or `whsk_…`).
    #[arg(long, env = "HOOKD_SIGNING_SECRET", hide_env_values = true, conflicts_with = "public_key")]
    pub secret: Option<String>,
    /// An Ed25519 endpoint's public key (`whpk_…`), for `v1a`.
    #[arg(long)]
    pub public_key: Option<String>,
    /// A header as received (`name: value`); give `webhook-id`,
    /// `webhook-timestamp` and `webhook-signature` (or their `svix-` names).
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// Check the timestamp against this time (Unix seconds) instead of now.
    #[arg(long)]
    pub now: Option<i64>,
}

fn read_body() -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    std::io::stdin().take(MAX_BODY + 1).read_to_end(&mut body).context("reading the body from stdin")?;
    if body.len() as u64 > MAX_BODY {
        bail!("the body is over {MAX_BODY} bytes");
    }
    Ok(body)
}

fn now_secs() -> i64 {
    hookd_core::timefmt::now_millis() / 1000
}

pub fn sign(opts: SignOptions) -> anyhow::Result<()> {
    let secret = Secret::parse(opts.secret.trim()).map_err(|e| anyhow::anyhow!("--secret: {e}"))?;
    let body = read_body()?;
    let id = opts.id.unwrap_or_else(|| new_id(IdPrefix::Message));
    let ts = opts.timestamp.unwrap_or_else(now_secs);
    println!("webhook-id: {id}");
    println!("webhook-timestamp: {ts}");
    println!("webhook-signature: {}", secret.sign(&id, ts, &body));
    Ok(())
}

pub fn verify(opts: VerifyOptions) -> anyhow::Result<()> {
    let mut id = None;
    let mut ts = None;
    let mut sig = None;
    for h in &opts.headers {
        let Some((name, value)) = h.split_once(':') else { bail!("--header `{h}`: expected `name: value`") };
        let value = value.trim().to_string();
        match name.trim().to_ascii_lowercase().as_str() {
            "webhook-id" | "svix-id" => id = Some(value),
            "webhook-timestamp" | "svix-timestamp" => ts = Some(value),
            "webhook-signature" | "svix-signature" => sig = Some(value),
            _ => {}
        }
    }
    let (Some(id), Some(ts), Some(sig)) = (id, ts, sig) else {
        bail!("give the webhook-id, webhook-timestamp and webhook-signature headers with --header 'name: value'");
    };
    let body = read_body()?;
    let now = opts.now.unwrap_or_else(now_secs);
    let checked = match (&opts.secret, &opts.public_key) {
        (Some(s), _) => {
            Secret::parse(s.trim()).map_err(|e| anyhow::anyhow!("--secret: {e}"))?.verify(&id, &ts, &sig, &body, now)
        }
        (None, Some(k)) => PublicKey::parse(k.trim())
            .map_err(|e| anyhow::anyhow!("--public-key: {e}"))?
            .verify(&id, &ts, &sig, &body, now),
        (None, None) => bail!("give --secret (whsec_…/whsk_…) or --public-key (whpk_…)"),
    };
    match checked {
        Ok(()) => {
            println!("valid: {id} signed at {ts}");
            Ok(())
        }
        Err(e) => bail!("not valid: {e}"),
    }
}
