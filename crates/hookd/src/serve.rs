//! `hookd serve`: opens the store, starts the dispatcher and the HTTP server,
//! and shuts both down in order on SIGTERM or SIGINT.

use std::sync::Arc;

use anyhow::Context;
use axum::extract::Request;
use hookd_api::auth::hash_token;
use hookd_api::{ApiConfig, AppState, State};
use hookd_core::id::{new_id, IdPrefix};
use hookd_delivery::{Deliveries, DispatcherConfig, HttpSender, Metrics, RetentionConfig, SenderConfig};
use hookd_store::postgres::PostgresStore;
use hookd_store::sqlite::SqliteStore;
use hookd_store::{Queue, Resources, Store};
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;
use tower_http::trace::TraceLayer;

use crate::config::{Config, Database};

pub async fn open_store(database: &Database) -> anyhow::Result<Arc<dyn Store>> {
    match database {
        Database::Postgres(url) => {
            let store = PostgresStore::connect(url).await.context("cannot connect to PostgreSQL")?;
            Ok(Arc::new(store))
        }
        Database::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let store =
                SqliteStore::open(path).with_context(|| format!("cannot open the store at {}", path.display()))?;
            Ok(Arc::new(store))
        }
    }
}

/// The retention sweep's settings from the configuration.
pub fn retention_config(cfg: &Config) -> RetentionConfig {
    RetentionConfig {
        interval: cfg.prune_interval,
        message_retention: cfg.message_retention,
        rollups: hookd_store::RollupRetention {
            days_ms: cfg.stats_retention.as_millis() as i64,
            ..hookd_store::RollupRetention::default()
        },
        ..RetentionConfig::default()
    }
}

/// Creates and stores (hashed) a new server admin token; returns the token.
pub async fn create_admin_token(store: &dyn Resources, org_id: &str) -> anyhow::Result<String> {
    let (token, row) = hookd_api::v1::management::new_token(org_id, hookd_store::TokenRole::Server, None);
    store.insert_token(row).await?;
    Ok(token)
}

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    if let Some(offset) = cfg.clock_offset_ms {
        hookd_core::timefmt::set_clock_offset(offset);
        tracing::warn!(offset_ms = offset, "this node's clock is shifted (a test setting)");
    }
    if let Some(note) = crate::keys::install(&cfg)? {
        println!("{note}");
    }
    let store = open_store(&cfg.database).await?;
    let resealed = crate::keys::prepare(&*store).await?;
    if resealed > 0 {
        tracing::info!(endpoints = resealed, "sealed endpoint secrets under the current encryption key");
    }
    let resources: Arc<dyn Resources> = store.clone();
    tokio::spawn(prune_audit(resources.clone(), cfg.audit_retention, cfg.prune_interval));
    let queue: Arc<dyn Queue> = store.clone();
    let org_id = store.default_org().await?;
    let bootstrap_token_hash = cfg.admin_token.as_deref().map(hash_token);
    if bootstrap_token_hash.is_none() && !store.has_admin_token(&org_id).await? {
        let token = create_admin_token(&*resources, &org_id).await?;
        println!("created an admin token; it is shown only this once (only its hash is stored):");
        println!("{token}");
    }

    let metrics = Arc::new(Metrics::default());
    let sender = HttpSender::new(&SenderConfig {
        timeout: cfg.request_timeout,
        policy: cfg.destination.clone(),
        egress_proxy: cfg.egress_proxy.clone(),
    })
    .context("cannot build the HTTP client")?;
    let node_id = new_id(IdPrefix::Token).replacen("tok_", "node_", 1);
    let deliveries = if cfg.role.delivers() {
        Deliveries::start(
            DispatcherConfig {
                node_id,
                lease_duration: cfg.lease_duration,
                endpoint_concurrency: cfg.endpoint_concurrency,
                max_in_flight: cfg.max_in_flight,
                max_in_memory: cfg.max_in_memory,
                max_in_memory_bytes: cfg.max_in_memory_bytes,
                poll_interval: cfg.poll_interval,
                retry_schedule: cfg.retry_schedule.clone(),
                control: cfg.control.clone(),
                stats: cfg.stats,
                sla_interval: cfg.sla_interval,
                cert_check_interval: cfg.cert_check_interval,
                cert_warn_days: cfg.cert_warn_days as i64,
                spike_interval: cfg.spike_interval,
            },
            retention_config(&cfg),
            resources.clone(),
            queue,
            sender,
            metrics,
        )
    } else {
        Deliveries::accept_only(resources.clone(), queue, metrics, sender)
    };

    let listener =
        tokio::net::TcpListener::bind(&cfg.listen).await.with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let state = AppState::new(State {
        resources,
        deliveries: deliveries.clone(),
        config: ApiConfig {
            max_payload_bytes: cfg.max_payload_bytes,
            public_url: cfg.public_url.clone().unwrap_or_else(|| format!("http://{addr}")),
            payload_retention: cfg.payload_retention,
            app_ingest_rate: cfg.app_ingest_rate,
            org_ingest_rate: cfg.org_ingest_rate,
            token_rate_limit: cfg.token_rate_limit,
            destination: cfg.destination.clone(),
            trusted_proxies: cfg.trusted_proxies.clone(),
        },
        org_id,
        bootstrap_token_hash,
        tokens: Default::default(),
        idempotency: Default::default(),
        quotas: Default::default(),
        sources: Default::default(),
        failure_spikes: Default::default(),
        schemas: Default::default(),
    });
    if cfg.role.delivers() {
        // Cron and poll sources run on delivering nodes, one node per run.
        tokio::spawn(hookd_api::ingest::scheduled::run(state.clone()));
    }
    let secure_cookies = state.config.public_url.starts_with("https://");
    let app = if cfg.role.serves_api() {
        let sso = match &cfg.oidc {
            Some(settings) => Some(single_sign_on(settings, &state).await?),
            None => None,
        };
        let api = hookd_api::router(state);
        // The console calls the API in-process with the signed-in token.
        let console = hookd_console::Console {
            api: hookd_console::Api(api.clone()),
            secure_cookies,
            portal_frame_ancestors: cfg.portal_frame_ancestors.clone(),
            sso,
        };
        api.merge(hookd_console::router(console))
    } else {
        hookd_api::ops_router(state)
    };
    // 5xx answers are logged where they arise (ApiError), once, with their cause.
    let app = app.layer(TraceLayer::new_for_http().on_failure(()));
    let app = NormalizePathLayer::trim_trailing_slash().layer(app);

    println!("listening on http://{addr}");
    tracing::info!(%addr, role = ?cfg.role, "hookd serving");
    // SIGTERM/SIGINT flips `stopping`; the server stops accepting and waits for
    // open requests, but no longer than the shutdown timeout (a client that never
    // finishes its request cannot hold the process up).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let mut graceful = stop_rx.clone();
    let server = axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service_with_connect_info::<std::net::SocketAddr>(app),
    )
    .with_graceful_shutdown(async move {
        let _ = graceful.wait_for(|s| *s).await;
    });
    let mut stopping = stop_rx;
    let timeout = cfg.shutdown_timeout;
    tokio::select! {
        served = server => served.context("HTTP server failed")?,
        _ = async {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(timeout).await;
        } => tracing::warn!("requests still open after the shutdown timeout; closing them"),
    }

    if deliveries.dispatcher().is_some() {
        tracing::info!("shutting down: finishing deliveries in flight");
    }
    deliveries.shutdown(cfg.shutdown_timeout).await;
    tracing::info!("stopped");
    Ok(())
}

/// The console's single sign-on, over this server's store and keyring.
async fn single_sign_on(
    settings: &hookd_console::oidc::Settings,
    state: &AppState,
) -> anyhow::Result<Arc<hookd_console::oidc::Sso>> {
    let server = crate::sso::StoreSessions::new(state.clone())?;
    server.check_mappings(&settings.mappings).await;
    let sso = hookd_console::oidc::Sso::new(settings.clone(), &state.config.public_url, Arc::new(server))
        .map_err(|e| anyhow::anyhow!("single sign-on: {e}"))?;
    tracing::info!(issuer = %settings.issuer, redirect_uri = %sso.redirect_uri(), "console single sign-on is on; register the redirect URI at the provider");
    Ok(Arc::new(sso))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Removes audit entries past `--audit-retention`, from the oldest end, every
/// prune interval.
async fn prune_audit(resources: Arc<dyn Resources>, retention: std::time::Duration, every: std::time::Duration) {
    loop {
        let before = hookd_core::timefmt::now_millis() - retention.as_millis() as i64;
        loop {
            match resources.prune_audit(before, 1000).await {
                Ok(0) => break,
                Ok(n) => tracing::info!(entries = n, "removed audit entries past their retention"),
                Err(e) => {
                    tracing::warn!(error = %e, "pruning the audit trail failed");
                    break;
                }
            }
        }
        tokio::time::sleep(every).await;
    }
}
