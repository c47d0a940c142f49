//! `hookd app|endpoint|event-type|msg|attempt …`: the API's resources from the
//! shell. Lists print a table (with the iterator of the next page) or, with
//! `--json`, the API's own list shape; single objects print as `key value`
//! lines or JSON.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::output::{self, Cell, Style};
use super::{urlencode, ConnOptions, Page};

/// Options every resource command takes.
#[derive(Debug, Args)]
pub struct Common {
    #[command(flatten)]
    pub conn: ConnOptions,
    /// Print JSON (the API's shapes) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// List applications.
    List(Page),
    /// Show one application (id or uid).
    Get { app: String },
    /// Create an application.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        uid: Option<String>,
        /// Messages per second the application may send.
        #[arg(long)]
        rate_limit: Option<u32>,
        /// `key=value` metadata (repeatable).
        #[arg(long = "metadata", value_name = "KEY=VALUE")]
        metadata: Vec<String>,
    },
    /// Delete an application and everything in it.
    Delete { app: String },
}

#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// List an application's endpoints.
    List {
        #[arg(long)]
        app: String,
        #[command(flatten)]
        page: Page,
    },
    /// Show one endpoint.
    Get {
        #[arg(long)]
        app: String,
        endpoint: String,
    },
    /// Create an endpoint.
    Create {
        #[arg(long)]
        app: String,
        #[arg(long)]
        url: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        uid: Option<String>,
        /// Only these event types (repeatable) [default: every type].
        #[arg(long = "event-type")]
        event_types: Vec<String>,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Delete an endpoint.
    Delete {
        #[arg(long)]
        app: String,
        endpoint: String,
    },
    /// Print the endpoint's signing secret.
    Secret {
        #[arg(long)]
        app: String,
        endpoint: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventTypeCommand {
    /// List event types.
    List {
        /// Include archived ones.
        #[arg(long)]
        archived: bool,
        #[command(flatten)]
        page: Page,
    },
    /// Show one event type with its schemas.
    Get { name: String },
    /// Create an event type.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// A JSON Schema file for version 1 of its payload.
        #[arg(long)]
        schema: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MsgCommand {
    /// List an application's messages, newest first.
    List {
        #[arg(long)]
        app: String,
        /// Only these event types (repeatable).
        #[arg(long = "event-type")]
        event_types: Vec<String>,
        #[command(flatten)]
        page: Page,
    },
    /// Show one message with its payload.
    Get {
        #[arg(long)]
        app: String,
        msg: String,
    },
    /// Send a message.
    Create {
        #[arg(long)]
        app: String,
        #[arg(long)]
        event_type: String,
        /// The payload: JSON, `@FILE`, or `-` for stdin.
        #[arg(long, default_value = "{}")]
        payload: String,
        /// An idempotency id (`eventId`).
        #[arg(long)]
        event_id: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AttemptCommand {
    /// List delivery attempts of a message or of an endpoint.
    List {
        #[arg(long)]
        app: String,
        #[arg(long, required_unless_present = "endpoint", conflicts_with = "endpoint")]
        msg: Option<String>,
        #[arg(long)]
        endpoint: Option<String>,
        /// Only `success`, `pending`, `fail` or `sending` attempts.
        #[arg(long)]
        status: Option<AttemptStatus>,
        #[command(flatten)]
        page: Page,
    },
    /// Show one attempt with the receiver's response.
    Get {
        #[arg(long)]
        app: String,
        #[arg(long)]
        msg: String,
        attempt: String,
    },
    /// Send a message to an endpoint again.
    Resend {
        #[arg(long)]
        app: String,
        #[arg(long)]
        msg: String,
        #[arg(long)]
        endpoint: String,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum AttemptStatus {
    Success,
    Pending,
    Fail,
    Sending,
}

impl AttemptStatus {
    fn code(self) -> u8 {
        match self {
            AttemptStatus::Success => 0,
            AttemptStatus::Pending => 1,
            AttemptStatus::Fail => 2,
            AttemptStatus::Sending => 3,
        }
    }
}

fn seg(s: &str) -> String {
    urlencode(s)
}

/// Prints a list as a table (or JSON), with the next page's iterator.
fn print_list(list: &Value, common: &Common, header: &[&str], row: impl Fn(&Value) -> Vec<Cell>) {
    if common.json {
        return output::print_json(list);
    }
    let items = list["data"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("(none)");
        return;
    }
    let colour = output::colour();
    print!("{}", output::table(header, items.iter().map(row).collect(), colour));
    if let Some(more) = output::more(list) {
        eprintln!("{more}");
    }
}

fn print_one(value: &Value, common: &Common) {
    if common.json {
        output::print_json(value);
    } else {
        print!("{}", output::fields(value, output::colour()));
    }
}

fn attempt_status(code: &Value) -> Cell {
    match code.as_i64() {
        Some(0) => Cell::styled("success", Style::Good),
        Some(1) => Cell::plain("pending"),
        Some(2) => Cell::styled("fail", Style::Bad),
        Some(3) => Cell::plain("sending"),
        _ => Cell::plain(output::text(code)),
    }
}

/// A payload argument: inline JSON, `@FILE`, or `-` for stdin.
pub fn read_payload(arg: &str) -> anyhow::Result<Value> {
    let text = if arg == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the payload from stdin")?
    } else if let Some(path) = arg.strip_prefix('@') {
        std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?
    } else {
        arg.to_string()
    };
    serde_json::from_str(&text).context("the payload is not JSON")
}

pub async fn app(command: AppCommand, common: Common) -> anyhow::Result<()> {
    let api = common.conn.resolve()?;
    match command {
        AppCommand::List(page) => {
            let list = api.list("/api/v1/app", &page).await?;
            print_list(&list, &common, &["id", "uid", "name", "created"], |a| {
                vec![
                    Cell::plain(output::text(&a["id"])),
                    Cell::plain(output::text(&a["uid"])),
                    Cell::plain(output::text(&a["name"])),
                    Cell::styled(output::text(&a["createdAt"]), Style::Dim),
                ]
            });
        }
        AppCommand::Get { app } => print_one(&api.get(&format!("/api/v1/app/{}", seg(&app))).await?, &common),
        AppCommand::Create { name, uid, rate_limit, metadata } => {
            let mut meta = Map::new();
            for kv in metadata {
                let Some((k, v)) = kv.split_once('=') else { bail!("--metadata `{kv}`: expected KEY=VALUE") };
                meta.insert(k.to_string(), json!(v));
            }
            let body = json!({ "name": name, "uid": uid, "rateLimit": rate_limit, "metadata": meta });
            print_one(&api.ok(Method::POST, "/api/v1/app", Some(&body)).await?, &common);
        }
        AppCommand::Delete { app } => {
            api.ok(Method::DELETE, &format!("/api/v1/app/{}", seg(&app)), None).await?;
            if !common.json {
                println!("deleted {app}");
            }
        }
    }
    Ok(())
}

pub async fn endpoint(command: EndpointCommand, common: Common) -> anyhow::Result<()> {
    let api = common.conn.resolve()?;
    match command {
        EndpointCommand::List { app, page } => {
            let list = api.list(&format!("/api/v1/app/{}/endpoint", seg(&app)), &page).await?;
            print_list(&list, &common, &["id", "url", "health", "disabled", "event types"], |e| {
                let health = output::text(&e["healthState"]);
                let style = match health.as_str() {
                    "healthy" => Style::Good,
                    "failing" | "disabled" => Style::Bad,
                    _ => Style::Plain,
                };
                vec![
                    Cell::plain(output::text(&e["id"])),
                    Cell::plain(output::text(&e["url"])),
                    Cell::styled(health, style),
                    Cell::plain(output::text(&e["disabled"])),
                    Cell::plain(output::text(&e["filterTypes"])),
                ]
            });
        }
        EndpointCommand::Get { app, endpoint } => {
            let path = format!("/api/v1/app/{}/endpoint/{}", seg(&app), seg(&endpoint));
            print_one(&api.get(&path).await?, &common);
        }
        EndpointCommand::Create { app, url, description, uid, event_types, disabled } => {
            let mut body = json!({ "url": url, "description": description.unwrap_or_default(), "uid": uid });
            if !event_types.is_empty() {
                body["filterTypes"] = json!(event_types);
            }
            if disabled {
                body["disabled"] = json!(true);
            }
            let path = format!("/api/v1/app/{}/endpoint", seg(&app));
            print_one(&api.ok(Method::POST, &path, Some(&body)).await?, &common);
        }
        EndpointCommand::Delete { app, endpoint } => {
            api.ok(Method::DELETE, &format!("/api/v1/app/{}/endpoint/{}", seg(&app), seg(&endpoint)), None).await?;
            if !common.json {
                println!("deleted {endpoint}");
            }
        }
        EndpointCommand::Secret { app, endpoint } => {
            let out = api.get(&format!("/api/v1/app/{}/endpoint/{}/secret", seg(&app), seg(&endpoint))).await?;
            if common.json {
                output::print_json(&out);
            } else {
                println!("{}", output::text(&out["key"]));
            }
        }
    }
    Ok(())
}

pub async fn event_type(command: EventTypeCommand, common: Common) -> anyhow::Result<()> {
    let api = common.conn.resolve()?;
    match command {
        EventTypeCommand::List { archived, page } => {
            let list =
                api.list(&format!("/api/v1/event-type?include_archived={archived}&with_content=true"), &page).await?;
            print_list(&list, &common, &["name", "description", "schema", "archived"], |t| {
                let has_schema = t["schemas"].as_object().is_some_and(|s| !s.is_empty());
                vec![
                    Cell::plain(output::text(&t["name"])),
                    Cell::plain(output::text(&t["description"])),
                    Cell::plain(if has_schema { "yes" } else { "-" }),
                    Cell::plain(output::text(&t["archived"])),
                ]
            });
        }
        EventTypeCommand::Get { name } => {
            print_one(&api.get(&format!("/api/v1/event-type/{}", seg(&name))).await?, &common)
        }
        EventTypeCommand::Create { name, description, schema } => {
            let mut body = json!({ "name": name, "description": description });
            if let Some(path) = schema {
                let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                let schema: Value =
                    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
                body["schemas"] = json!({ "1": schema });
            }
            print_one(&api.ok(Method::POST, "/api/v1/event-type", Some(&body)).await?, &common);
        }
    }
    Ok(())
}

pub async fn msg(command: MsgCommand, common: Common) -> anyhow::Result<()> {
    let api = common.conn.resolve()?;
    match command {
        MsgCommand::List { app, event_types, page } => {
            let mut path = format!("/api/v1/app/{}/msg?with_content=false", seg(&app));
            for t in &event_types {
                path.push_str(&format!("&event_types={}", urlencode(t)));
            }
            let list = api.list(&path, &page).await?;
            print_list(&list, &common, &["id", "event type", "event id", "timestamp"], |m| {
                vec![
                    Cell::plain(output::text(&m["id"])),
                    Cell::plain(output::text(&m["eventType"])),
                    Cell::plain(output::text(&m["eventId"])),
                    Cell::styled(output::text(&m["timestamp"]), Style::Dim),
                ]
            });
        }
        MsgCommand::Get { app, msg } => {
            print_one(&api.get(&format!("/api/v1/app/{}/msg/{}", seg(&app), seg(&msg))).await?, &common)
        }
        MsgCommand::Create { app, event_type, payload, event_id } => {
            let body = json!({ "eventType": event_type, "payload": read_payload(&payload)?, "eventId": event_id });
            let path = format!("/api/v1/app/{}/msg", seg(&app));
            print_one(&api.ok(Method::POST, &path, Some(&body)).await?, &common);
        }
    }
    Ok(())
}

pub async fn attempt(command: AttemptCommand, common: Common) -> anyhow::Result<()> {
    let api = common.conn.resolve()?;
    match command {
        AttemptCommand::List { app, msg, endpoint, status, page } => {
            let mut path = match (&msg, &endpoint) {
                (Some(m), _) => format!("/api/v1/app/{}/attempt/msg/{}", seg(&app), seg(m)),
                (None, Some(e)) => format!("/api/v1/app/{}/attempt/endpoint/{}", seg(&app), seg(e)),
                (None, None) => bail!("give --msg or --endpoint"),
            };
            if let Some(s) = status {
                path.push_str(&format!("?status={}", s.code()));
            }
            let list = api.list(&path, &page).await?;
            print_list(&list, &common, &["id", "msg", "endpoint", "status", "code", "ms", "timestamp"], |a| {
                vec![
                    Cell::plain(output::text(&a["id"])),
                    Cell::plain(output::text(&a["msgId"])),
                    Cell::plain(output::text(&a["endpointId"])),
                    attempt_status(&a["status"]),
                    Cell::status(a["responseStatusCode"].as_i64()),
                    Cell::plain(output::text(&a["responseDurationMs"])),
                    Cell::styled(output::text(&a["timestamp"]), Style::Dim),
                ]
            });
        }
        AttemptCommand::Get { app, msg, attempt } => {
            let path = format!("/api/v1/app/{}/msg/{}/attempt/{}", seg(&app), seg(&msg), seg(&attempt));
            print_one(&api.get(&path).await?, &common);
        }
        AttemptCommand::Resend { app, msg, endpoint } => {
            let path = format!("/api/v1/app/{}/msg/{}/endpoint/{}/resend", seg(&app), seg(&msg), seg(&endpoint));
            api.ok(Method::POST, &path, None).await?;
            if common.json {
                output::print_json(&json!({ "resent": true }));
            } else {
                println!("resending {msg} to {endpoint}");
            }
        }
    }
    Ok(())
}
