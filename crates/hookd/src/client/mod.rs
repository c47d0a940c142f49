//! The CLI client: `hookd app|endpoint|event-type|msg|attempt …` against a
//! running server through its API, and what the other client commands
//! (`simulate`, `listen`, `import-svix`) share: where the server is, which
//! token to send, and calls that say what went wrong.
//!
//! The server and token come from `--server` / `--token` (or `HOOKD_URL` /
//! `HOOKD_TOKEN`), else from a profile in `~/.config/hookd/config.toml`:
//!
//! ```toml
//! default_profile = "local"
//!
//! [profiles.local]
//! server = "http://127.0.0.1:8071"
//! token = "sk_…"
//! ```

pub mod output;
pub mod resources;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

/// The server a fresh `hookd serve` listens on.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8071";

/// Most items one list command prints with `--all`.
const MAX_ITEMS: usize = 100_000;

/// Where the server is and how to reach it.
#[derive(Debug, Clone, Args)]
pub struct ConnOptions {
    /// The hookd server's base URL [default: the profile's, else http://127.0.0.1:8071].
    #[arg(long, env = "HOOKD_URL", global = true)]
    pub server: Option<String>,
    /// An API token [default: the profile's].
    #[arg(long, env = "HOOKD_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// A profile of ~/.config/hookd/config.toml [default: its `default_profile`, else `default`].
    #[arg(long, env = "HOOKD_PROFILE", global = true)]
    pub profile: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    default_profile: Option<String>,
    #[serde(default)]
    profiles: std::collections::BTreeMap<String, Profile>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    server: Option<String>,
    token: Option<String>,
}

/// `$XDG_CONFIG_HOME/hookd/config.toml`, else `~/.config/hookd/config.toml`.
pub fn config_path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".config"),
    };
    Some(base.join("hookd").join("config.toml"))
}

impl ConnOptions {
    /// The server and token to use, flags and environment first, then the profile.
    pub fn resolve(&self) -> anyhow::Result<Api> {
        let path = config_path();
        let file = match &path {
            Some(p) if p.exists() => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                toml::from_str::<ConfigFile>(&text)
                    .with_context(|| format!("{} is not a valid profile file", p.display()))?
            }
            _ => ConfigFile::default(),
        };
        let named = self.profile.clone().or(file.default_profile.clone());
        let profile = match &named {
            Some(name) => match file.profiles.get(name) {
                Some(p) => p.clone(),
                None if self.profile.is_some() || file.default_profile.is_some() => bail!(
                    "no profile `{name}` in {}; add a [profiles.{name}] table with `server` and `token`",
                    path.map(|p| p.display().to_string()).unwrap_or_else(|| "the config file".into())
                ),
                None => Profile::default(),
            },
            None => file.profiles.get("default").cloned().unwrap_or_default(),
        };
        let set = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
        let server = set(&self.server).or(profile.server).unwrap_or_else(|| DEFAULT_SERVER.to_string());
        let server = server.trim_end_matches('/').to_string();
        reqwest::Url::parse(&server).with_context(|| format!("--server `{server}` is not a URL"))?;
        let Some(token) = set(&self.token).or(profile.token) else {
            bail!(
                "no API token: pass --token, set HOOKD_TOKEN, or add `token` to a profile in {} \
                 (`hookd token create` makes one; `hookd serve` prints the first on start)",
                path.map(|p| p.display().to_string()).unwrap_or_else(|| "~/.config/hookd/config.toml".into())
            );
        };
        Api::new(&server, &token)
    }
}

/// A hookd (or Svix) server's API, as one token sees it.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    pub base: String,
    token: String,
}

/// An API answer that was not 2xx, with the server's `detail`.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: u16,
    pub detail: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the server answered {}: {}", self.status, self.detail)?;
        match self.status {
            401 => write!(f, " (check --token / HOOKD_TOKEN)"),
            403 => write!(f, " (this token may not do that; an organisation admin token can)"),
            404 => write!(f, " (check the id or uid)"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for ApiFailure {}

/// The readable part of an error body: `detail` as text, or each validation
/// error's location and message.
fn detail_of(body: &Value) -> String {
    match &body["detail"] {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                let loc: Vec<String> = i["loc"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|l| l.to_string().trim_matches('"').to_string())
                    .collect();
                format!("{}: {}", loc.join("."), i["msg"].as_str().unwrap_or_default())
            })
            .collect::<Vec<_>>()
            .join("; "),
        Value::Null => body.as_str().map(str::to_string).unwrap_or_else(|| body.to_string()),
        other => other.to_string(),
    }
}

impl Api {
    pub fn new(server: &str, token: &str) -> anyhow::Result<Api> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("hookd-cli/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Api { client, base: server.trim_end_matches('/').to_string(), token: token.to_string() })
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// One call; any status.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<(u16, Value)> {
        let mut req = self.client.request(method.clone(), format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.with_context(|| {
            format!("{method} {}{path}: is `hookd serve` running there? (--server / HOOKD_URL)", self.base)
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }

    /// One call that must answer 2xx.
    pub async fn ok(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let (status, value) = self.call(method, path, body).await?;
        if !(200..300).contains(&status) {
            return Err(ApiFailure { status, detail: detail_of(&value) }.into());
        }
        Ok(value)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.ok(Method::GET, path, None).await
    }

    /// A list: one page from `iterator` (`limit` items), or with `all` every
    /// page after it. Answers the list's shape (`data`, `iterator`, `done`).
    pub async fn list(&self, path: &str, page: &Page) -> anyhow::Result<Value> {
        let mut items = Vec::new();
        let mut iterator = page.iterator.clone();
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let mut url = format!("{path}{sep}limit={}", page.limit);
            if let Some(it) = &iterator {
                url.push_str(&format!("&iterator={}", urlencode(it)));
            }
            let list = self.get(&url).await?;
            items.extend(list["data"].as_array().cloned().unwrap_or_default());
            let done = list["done"].as_bool().unwrap_or(true);
            let next = list["iterator"].as_str().map(str::to_string);
            if !page.all || done || next.is_none() || items.len() >= MAX_ITEMS {
                return Ok(serde_json::json!({ "data": items, "iterator": next, "done": done }));
            }
            iterator = next;
        }
    }
}

/// Paging of a list command.
#[derive(Debug, Clone, Args)]
pub struct Page {
    /// Items per page (1-250).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=250))]
    pub limit: u32,
    /// Start after this iterator (printed under a page that has more).
    #[arg(long)]
    pub iterator: Option<String>,
    /// Follow the iterators to the end.
    #[arg(long)]
    pub all: bool,
}

/// Percent-encodes a path segment or query value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
