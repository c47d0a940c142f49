//! `hookd import-svix`: copies applications and their endpoints (with their
//! signing secrets and custom headers) from a running Svix server, through the
//! Svix API, into a hookd server, through the same API.
//!
//! Each object keeps its uid; one without a uid gets its Svix id as uid, so the
//! old ids keep working in API calls (`/api/v1/app/app_2a…`) and running the
//! import again updates rather than duplicates. Event types, settings and
//! connectors move with `POST /api/v1/environment/export` and `…/import`.

use anyhow::{bail, Context};
use clap::Args;
use reqwest::{Client, Method};
use serde_json::{json, Value};

#[derive(Debug, Args)]
pub struct ImportSvixOptions {
    /// The Svix server's base URL (e.g. https://api.eu.svix.com).
    #[arg(long, env = "SVIX_SERVER_URL")]
    pub from: String,
    /// A Svix API token of the environment to copy.
    #[arg(long, env = "SVIX_TOKEN", hide_env_values = true)]
    pub from_token: String,
    /// The hookd server's base URL.
    #[arg(long, env = "HOOKD_URL", default_value = "http://127.0.0.1:8071")]
    pub to: String,
    /// A hookd organisation admin token.
    #[arg(long, env = "HOOKD_TOKEN", hide_env_values = true)]
    pub to_token: String,
    /// Only these applications (ids or uids; repeatable).
    #[arg(long = "app")]
    pub apps: Vec<String>,
    /// Say what would be copied, copy nothing.
    #[arg(long)]
    pub dry_run: bool,
}

struct Api {
    client: Client,
    base: String,
    token: String,
    name: &'static str,
}

impl Api {
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<(u16, Value)> {
        let mut req = self.client.request(method.clone(), format!("{}{path}", self.base.trim_end_matches('/')));
        req = req.bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.with_context(|| format!("{} {method} {path}", self.name))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }

    async fn ok(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let (status, value) = self.call(method.clone(), path, body).await?;
        if !(200..300).contains(&status) {
            bail!("{} answered {status} to {method} {path}: {value}", self.name);
        }
        Ok(value)
    }

    /// Every item of a Svix list, following its iterators.
    async fn all(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut iterator: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let page = match &iterator {
                Some(it) => format!("{path}{sep}limit=250&iterator={it}"),
                None => format!("{path}{sep}limit=250"),
            };
            let list = self.ok(Method::GET, &page, None).await?;
            out.extend(list["data"].as_array().cloned().unwrap_or_default());
            match (list["done"].as_bool(), list["iterator"].as_str()) {
                (Some(false), Some(it)) => iterator = Some(it.to_string()),
                _ => return Ok(out),
            }
        }
    }
}

/// The uid an object keeps in hookd: its own, else its Svix id.
fn uid_of(v: &Value) -> String {
    v["uid"].as_str().filter(|u| !u.is_empty()).unwrap_or_else(|| v["id"].as_str().unwrap_or_default()).to_string()
}

pub async fn run(opts: ImportSvixOptions) -> anyhow::Result<()> {
    let client = Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
    let from = Api { client: client.clone(), base: opts.from, token: opts.from_token, name: "Svix" };
    let to = Api { client, base: opts.to, token: opts.to_token, name: "hookd" };
    let mut apps = from.all("/api/v1/app").await.context("listing the Svix applications")?;
    if !opts.apps.is_empty() {
        apps.retain(|a| opts.apps.iter().any(|w| a["id"] == w.as_str() || a["uid"] == w.as_str()));
    }
    let (mut n_apps, mut n_eps) = (0, 0);
    for app in &apps {
        let app_id = app["id"].as_str().unwrap_or_default();
        let app_uid = uid_of(app);
        let endpoints = from.all(&format!("/api/v1/app/{app_id}/endpoint")).await?;
        println!("{} {app_id} → uid {app_uid}: {} endpoint(s)", app["name"].as_str().unwrap_or(""), endpoints.len());
        if opts.dry_run {
            continue;
        }
        let body = json!({
            "name": app["name"],
            "uid": app_uid,
            "rateLimit": app["rateLimit"],
            "metadata": app["metadata"].as_object().cloned().unwrap_or_default(),
        });
        to.ok(Method::PUT, &format!("/api/v1/app/{app_uid}"), Some(&body)).await?;
        n_apps += 1;
        for ep in &endpoints {
            let ep_id = ep["id"].as_str().unwrap_or_default();
            let ep_uid = uid_of(ep);
            let secret = from.ok(Method::GET, &format!("/api/v1/app/{app_id}/endpoint/{ep_id}/secret"), None).await?;
            let headers = from.ok(Method::GET, &format!("/api/v1/app/{app_id}/endpoint/{ep_id}/headers"), None).await?;
            let mut body = json!({
                "url": ep["url"],
                "uid": ep_uid,
                "description": ep["description"],
                "version": ep["version"],
                "disabled": ep["disabled"],
                "filterTypes": ep["filterTypes"],
                "channels": ep["channels"],
                "rateLimit": ep["rateLimit"],
                "metadata": ep["metadata"].as_object().cloned().unwrap_or_default(),
            });
            let fields = body.as_object_mut().expect("an object");
            fields.retain(|_, v| !v.is_null());
            let path = format!("/api/v1/app/{app_uid}/endpoint/{ep_uid}");
            let (status, _) = to.call(Method::GET, &path, None).await?;
            if status == 404 {
                // A new endpoint takes the secret as it is made.
                fields.insert("secret".into(), secret["key"].clone());
                to.ok(Method::POST, &format!("/api/v1/app/{app_uid}/endpoint"), Some(&body)).await?;
            } else {
                to.ok(Method::PUT, &path, Some(&body)).await?;
                let current = to.ok(Method::GET, &format!("{path}/secret"), None).await?;
                if current["key"] != secret["key"] {
                    to.ok(Method::POST, &format!("{path}/secret/rotate"), Some(&json!({"key": secret["key"]}))).await?;
                }
            }
            let mut custom = headers["headers"].as_object().cloned().unwrap_or_default();
            // Svix lists sensitive headers by name only: their values stay behind.
            let hidden: Vec<String> = headers["sensitive"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|h| h.as_str().map(String::from))
                .collect();
            custom.retain(|k, _| !hidden.iter().any(|h| h.eq_ignore_ascii_case(k)));
            if !custom.is_empty() {
                to.ok(Method::PATCH, &format!("{path}/headers"), Some(&json!({"headers": custom}))).await?;
            }
            if !hidden.is_empty() {
                println!("  {ep_id}: sensitive headers {hidden:?} are not readable through the API; set them again");
            }
            n_eps += 1;
        }
    }
    if opts.dry_run {
        println!("dry run: nothing copied");
    } else {
        println!("copied {n_apps} application(s) and {n_eps} endpoint(s) (with their secrets)");
    }
    Ok(())
}
