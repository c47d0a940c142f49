//! The `hookd` binary: a webhook platform in one process.
//!
//! `hookd serve` runs the API and the delivery engine on the embedded store;
//! `hookd migrate`, `hookd org`, `hookd token` and `hookd prune` manage the store;
//! `hookd bench` measures a running or embedded server; `hookd mcp` is an MCP
//! server on stdio for AI assistants.

mod backup;
mod bench;
mod bench_inbound;
mod bench_shaping;
mod bench_store;
mod client;
mod config;
mod import_svix;
mod keys;
mod listen;
mod loadtest;
mod mcp;
mod otel;
mod prune;
mod serve;
mod sign;
mod simulate;
mod sso;
mod tenancy;
mod trail;

use clap::{Parser, Subcommand};

/// mimalloc rather than the system allocator: every delivery allocates and
/// frees many small buffers across threads (requests, rows, channels), where
/// glibc's malloc spends a tenth of the process's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "hookd", version, about = "hookd: send, receive and inspect webhooks. Svix API v1 compatible.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the API and the delivery engine.
    Serve(Box<config::ServeOptions>),
    /// Apply database migrations and exit (serve also applies them on start).
    Migrate(Box<config::ServeOptions>),
    /// Organisations (Svix: environments).
    Org {
        #[command(subcommand)]
        command: tenancy::OrgCommand,
    },
    /// API tokens: server admin, organisation admin and read-only.
    Token {
        #[command(subcommand)]
        command: tenancy::TokenCommand,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Keys that seal secrets at rest.
    Encryption {
        #[command(subcommand)]
        command: EncryptionCommand,
    },
    /// Run the retention sweep now: expire payloads and response bodies past their
    /// retention, remove old keys and tasks, and free the space.
    Prune(Box<prune::PruneOptions>),
    /// Copy applications and endpoints (with their secrets) from a Svix server
    /// into a hookd server, through their APIs.
    ImportSvix(Box<import_svix::ImportSvixOptions>),
    /// Applications (a client of a running server: --server, --token).
    App {
        #[command(subcommand)]
        command: client::resources::AppCommand,
        #[command(flatten)]
        common: client::resources::Common,
    },
    /// An application's endpoints.
    Endpoint {
        #[command(subcommand)]
        command: client::resources::EndpointCommand,
        #[command(flatten)]
        common: client::resources::Common,
    },
    /// Event types.
    EventType {
        #[command(subcommand)]
        command: client::resources::EventTypeCommand,
        #[command(flatten)]
        common: client::resources::Common,
    },
    /// An application's messages.
    Msg {
        #[command(subcommand)]
        command: client::resources::MsgCommand,
        #[command(flatten)]
        common: client::resources::Common,
    },
    /// Delivery attempts.
    Attempt {
        #[command(subcommand)]
        command: client::resources::AttemptCommand,
        #[command(flatten)]
        common: client::resources::Common,
    },
    /// Receive webhooks on this machine through a tunnel to a hookd server
    /// (an endpoint whose deliveries come to LOCAL_URL, or with --source a relay
    /// URL for any provider).
    Listen(Box<listen::ListenOptions>),
    /// Send events of one type to an application, generated from its schema.
    Simulate(Box<simulate::SimulateOptions>),
    /// Drive a webhook receiver with signed requests and report its latency.
    Loadtest(Box<loadtest::LoadtestOptions>),
    /// Print a shell completion script (e.g. `hookd completions bash > /etc/bash_completion.d/hookd`).
    Completions { shell: clap_complete::Shell },
    /// Print the Standard Webhooks headers for a body on stdin.
    Sign(sign::SignOptions),
    /// Check a request's Standard Webhooks headers against its body on stdin
    /// (exit status 0 when valid).
    Verify(sign::VerifyOptions),
    /// Compliance trail exports.
    Trail {
        #[command(subcommand)]
        command: TrailCommand,
    },
    /// hookd's MCP server on stdio, for AI assistants: tools that inspect and
    /// resend deliveries through a hookd server's API with a token.
    Mcp(Box<mcp::McpOptions>),
    /// Copy the embedded store (and its key file) while hookd runs, for a backup.
    Backup(Box<backup::BackupOptions>),
    /// Measure throughput and latency: starts a local sink and drives hookd.
    Bench(bench::BenchOptions),
    /// Measure inbound receiving: signed provider requests verified, stored and
    /// forwarded per second, and their latency.
    BenchInbound(bench_inbound::InboundBenchOptions),
    /// Measure what shaping costs per message: a filter, a template, a transformation.
    BenchShaping(bench_shaping::ShapingBenchOptions),
    /// Measure what claiming due deliveries costs with none and with many in flight.
    BenchClaim(bench_store::ClaimBenchOptions),
    /// Measure the retention sweep: expired messages swept, space freed, enqueues meanwhile.
    BenchRetention(bench_store::RetentionBenchOptions),
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check that no entry of the audit trail was altered or removed (exit
    /// status 1, naming the first broken entry, if one was).
    Verify(Box<config::ServeOptions>),
}

#[derive(Debug, Subcommand)]
enum TrailCommand {
    /// Check an export's digest chain (exit status 1, naming the first broken
    /// line, when a record was removed, changed or cut off).
    Verify(trail::VerifyOptions),
}

#[derive(Debug, Subcommand)]
enum EncryptionCommand {
    /// Print a new random key (`hk_…`) for --encryption-key.
    GenerateKey,
    /// Re-seal every secret under the current --encryption-key (older keys in
    /// --previous-encryption-keys); prints how many were re-sealed.
    RotateKey(Box<config::ServeOptions>),
}

fn init_tracing(filter: &str) {
    let _ = init_logs(filter, config::LogFormat::Text, None);
}

/// Logs to stderr. As JSON, each line is one object with the event's fields at
/// the top level and the span it happened in (a delivery's ids) under `span`.
/// With `otlp`, spans (a message accepted, a delivery attempt) are exported
/// too, whatever the log filter; the returned provider flushes them at exit.
fn init_logs(
    filter: &str,
    format: config::LogFormat,
    otlp: Option<&str>,
) -> anyhow::Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>> {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::Layer;
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let (tracer, provider) = match otlp {
        Some(url) => {
            let (tracer, provider) = otel::tracer(url)?;
            (Some(tracer), Some(provider))
        }
        None => (None, None),
    };
    let otel = tracer.map(|t| {
        tracing_opentelemetry::layer().with_tracer(t).with_filter(EnvFilter::new("hookd_api=info,hookd_delivery=info"))
    });
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        config::LogFormat::Text => fmt.with_filter(filter).boxed(),
        config::LogFormat::Json => {
            fmt.json().flatten_event(true).with_current_span(true).with_span_list(false).with_filter(filter).boxed()
        }
    };
    tracing_subscriber::registry().with(otel).with(fmt).init();
    if provider.is_some() {
        hookd_delivery::sender::propagate_traceparent(otel::traceparent);
    }
    Ok(provider)
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(opts) => {
            let cfg = opts.resolve()?;
            let traces = init_logs(&cfg.log, cfg.log_format, cfg.otlp_endpoint.as_deref())?;
            let served = serve::run(cfg).await;
            if let Some(provider) = traces {
                // Spans still buffered go out before the process ends.
                let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            }
            served
        }
        Command::Migrate(opts) => {
            let cfg = opts.resolve()?;
            init_tracing(&cfg.log);
            serve::open_store(&cfg.database).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Trail { command: TrailCommand::Verify(opts) } => trail::verify_file(opts),
        Command::App { command, common } => client::resources::app(command, common).await,
        Command::Endpoint { command, common } => client::resources::endpoint(command, common).await,
        Command::EventType { command, common } => client::resources::event_type(command, common).await,
        Command::Msg { command, common } => client::resources::msg(command, common).await,
        Command::Attempt { command, common } => client::resources::attempt(command, common).await,
        Command::Listen(opts) => listen::run(*opts).await,
        Command::Simulate(opts) => simulate::run(*opts).await,
        Command::Loadtest(opts) => loadtest::run(*opts).await,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            use std::io::Write;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "hookd", &mut script);
            match std::io::stdout().write_all(&script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            }
        }
        Command::Mcp(opts) => {
            init_tracing("warn");
            mcp::run(*opts).await
        }
        Command::Sign(opts) => sign::sign(opts),
        Command::Verify(opts) => sign::verify(opts),
        Command::ImportSvix(opts) => {
            init_tracing("warn");
            import_svix::run(*opts).await
        }
        Command::Backup(opts) => {
            init_tracing("warn");
            backup::run(*opts)
        }
        Command::Org { command } => tenancy::org(command).await,
        Command::Token { command } => tenancy::token(command).await,
        Command::Audit { command: AuditCommand::Verify(opts) } => {
            let cfg = opts.resolve()?;
            init_tracing("warn");
            let store = serve::open_store(&cfg.database).await?;
            match store.verify_audit().await? {
                hookd_store::AuditCheck::Intact { first, last, count } => {
                    println!("audit trail intact: {count} entries ({first} to {last})");
                    if first > 1 {
                        println!("entries before {first} were removed by retention (--audit-retention)");
                    }
                    Ok(())
                }
                hookd_store::AuditCheck::Broken { seq, why } => {
                    anyhow::bail!("audit trail broken at entry {seq}: {why}")
                }
            }
        }
        Command::Encryption { command: EncryptionCommand::GenerateKey } => {
            println!("{}", hookd_store::crypt::Key::generate());
            Ok(())
        }
        Command::Encryption { command: EncryptionCommand::RotateKey(opts) } => {
            let cfg = opts.resolve()?;
            init_tracing("warn");
            if cfg.encryption_key.is_none() && matches!(cfg.database, config::Database::Postgres(_)) {
                anyhow::bail!("--encryption-key is required: it is the key to re-seal under");
            }
            if let Some(note) = keys::install(&cfg)? {
                println!("{note}");
            }
            let store = serve::open_store(&cfg.database).await?;
            let n = keys::prepare(&*store).await?;
            let id = hookd_store::crypt::keyring().map(|k| k.current_id().to_string()).unwrap_or_default();
            println!("re-sealed {n} endpoints under key {id}");
            Ok(())
        }
        Command::Prune(opts) => {
            init_tracing("warn");
            prune::run(*opts).await
        }
        Command::Bench(opts) => bench::run(opts).await,
        Command::BenchInbound(opts) => bench_inbound::run(opts).await,
        Command::BenchShaping(opts) => bench_shaping::run(opts),
        Command::BenchClaim(opts) => {
            init_tracing("warn");
            bench_store::claim(opts).await
        }
        Command::BenchRetention(opts) => {
            init_tracing("warn");
            bench_store::retention(opts).await
        }
    }
}
