//! `hookd org` and `hookd token`: organisations and API tokens, managed on the
//! database directly (no running server needed), like the management API.

use clap::{Args, Subcommand};
use hookd_api::v1::management::new_token;
use hookd_store::{Organization, Page, Store, StoreError, TokenRole};

use crate::config::ServeOptions;
use crate::serve;

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organisation and print its id.
    Create(OrgCreate),
    /// List the organisations.
    List(Box<ServeOptions>),
}

#[derive(Debug, Args)]
pub struct OrgCreate {
    /// The organisation's name.
    pub name: String,
    /// `development` or `production`.
    #[arg(long = "type", default_value = "development", value_parser = ["development", "production"])]
    pub env_type: String,
    #[command(flatten)]
    pub store: Box<ServeOptions>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (only its hash is stored). Without --org, a
    /// server admin token (every organisation; admin of the default one).
    Create(TokenCreate),
    /// List the API tokens (censored), of one organisation or all.
    List(TokenList),
    /// Revoke a token by its id (`tok_…`) at once.
    Revoke(TokenRevoke),
}

#[derive(Debug, Args)]
pub struct TokenCreate {
    /// The organisation (`org_…`) the token belongs to.
    #[arg(long)]
    pub org: Option<String>,
    /// A token that may only read.
    #[arg(long, requires = "org")]
    pub read_only: bool,
    /// A name to tell the token by.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub store: Box<ServeOptions>,
}

#[derive(Debug, Args)]
pub struct TokenList {
    #[arg(long)]
    pub org: Option<String>,
    #[command(flatten)]
    pub store: Box<ServeOptions>,
}

#[derive(Debug, Args)]
pub struct TokenRevoke {
    /// The token's id (`tok_…`), as `hookd token list` shows it.
    pub id: String,
    #[command(flatten)]
    pub store: Box<ServeOptions>,
}

/// Records a change made on the database in the audit trail, as the API's
/// changes are (actor `cli`).
async fn audited(store: &dyn Store, org_id: &str, action: &str, target: &str) -> anyhow::Result<()> {
    let event = hookd_store::AuditEvent {
        org_id: org_id.to_string(),
        at: hookd_core::timefmt::now_millis(),
        actor: "cli".into(),
        action: action.into(),
        target: target.into(),
        status: 0,
        address: None,
    };
    Ok(store.append_audit(vec![event]).await?)
}

async fn open(opts: Box<ServeOptions>) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    serve::open_store(&opts.resolve()?.database).await
}

/// Every row of a paged list.
async fn all<T, F, Fut>(mut list: F, key: impl Fn(&T) -> String) -> anyhow::Result<Vec<T>>
where
    F: FnMut(Page) -> Fut,
    Fut: std::future::Future<Output = hookd_store::Result<Vec<T>>>,
{
    let mut out = Vec::new();
    let mut iterator = None;
    loop {
        let page = Page { limit: 250, iterator: iterator.clone(), backwards: false, descending: false };
        let mut rows = list(page).await?;
        let more = rows.len() > 250;
        rows.truncate(250);
        iterator = rows.last().map(&key);
        out.extend(rows);
        if !more {
            return Ok(out);
        }
    }
}

pub async fn org(command: OrgCommand) -> anyhow::Result<()> {
    match command {
        OrgCommand::Create(c) => {
            let store = open(c.store).await?;
            store.default_org().await?;
            let t = hookd_core::timefmt::now_millis();
            let org = Organization {
                id: hookd_core::new_id(hookd_core::IdPrefix::Organization),
                name: c.name,
                env_type: c.env_type,
                policy: Default::default(),
                encrypt_payloads: false,
                created_at: t,
                updated_at: t,
            };
            store.insert_org(org.clone()).await?;
            audited(&*store, &org.id, "hookd org create", &org.id).await?;
            println!("{}", org.id);
            eprintln!(
                "created organisation {:?}; `hookd token create --org {}` makes its admin token",
                org.name, org.id
            );
            Ok(())
        }
        OrgCommand::List(opts) => {
            let store = open(opts).await?;
            let default = store.default_org().await?;
            let orgs = all(
                |p| {
                    let store = store.clone();
                    async move { store.list_orgs(&p).await }
                },
                |o| o.id.clone(),
            )
            .await?;
            println!("{:<31}  {:<11}  {:<24}  NAME", "ID", "TYPE", "CREATED");
            for o in orgs {
                let mark = if o.id == default { " (default)" } else { "" };
                println!(
                    "{:<31}  {:<11}  {:<24}  {}{mark}",
                    o.id,
                    o.env_type,
                    hookd_core::timefmt::format_millis(o.created_at),
                    o.name
                );
            }
            Ok(())
        }
    }
}

pub async fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(c) => {
            let store = open(c.store).await?;
            let default = store.default_org().await?;
            let (org, role) = match &c.org {
                None => (default, TokenRole::Server),
                Some(id) => match store.get_org(id).await {
                    Ok(o) => (o.id, if c.read_only { TokenRole::ReadOnly } else { TokenRole::Admin }),
                    Err(StoreError::NotFound) => anyhow::bail!("no organisation {id} (`hookd org list` shows them)"),
                    Err(e) => return Err(e.into()),
                },
            };
            let (token, row) = new_token(&org, role, c.name);
            let id = row.id.clone();
            store.insert_token(row).await?;
            audited(&*store, &org, "hookd token create", &id).await?;
            println!("{token}");
            Ok(())
        }
        TokenCommand::List(c) => {
            let store = open(c.store).await?;
            let org = c.org.clone();
            let tokens = all(
                |p| {
                    let (store, org) = (store.clone(), org.clone());
                    async move { store.list_tokens(org.as_deref(), &p).await }
                },
                |t| t.id.clone(),
            )
            .await?;
            let now = hookd_core::timefmt::now_millis();
            println!("{:<31}  {:<31}  {:<9}  {:<11}  {:<24}  NAME", "ID", "ORGANISATION", "ROLE", "TOKEN", "EXPIRES");
            for t in tokens {
                let expires = match t.expires_at {
                    None => "never".to_string(),
                    Some(at) if at <= now => "revoked".to_string(),
                    Some(at) => hookd_core::timefmt::format_millis(at),
                };
                println!(
                    "{:<31}  {:<31}  {:<9}  {:<11}  {:<24}  {}",
                    t.id,
                    t.org_id,
                    t.role.as_str(),
                    format!("sk_****{}", t.tail.as_deref().unwrap_or("")),
                    expires,
                    t.name.as_deref().unwrap_or("")
                );
            }
            Ok(())
        }
        TokenCommand::Revoke(c) => {
            let store = open(c.store).await?;
            let mut t = match store.get_token(&c.id).await {
                Ok(t) => t,
                Err(StoreError::NotFound) => anyhow::bail!("no token {} (`hookd token list` shows them)", c.id),
                Err(e) => return Err(e.into()),
            };
            let now = hookd_core::timefmt::now_millis();
            t.expires_at = Some(t.expires_at.map_or(now, |e| e.min(now)));
            let org = t.org_id.clone();
            store.update_token(t).await?;
            audited(&*store, &org, "hookd token revoke", &c.id).await?;
            println!("revoked {}; running servers stop accepting it within 10 s", c.id);
            Ok(())
        }
    }
}
