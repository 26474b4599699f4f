//! `baton serve`: the HTTP API and the scheduler in one process.

use std::sync::Arc;
use std::time::Duration;

use baton_core::{AdminBackend, EngineBackend, NodeId};
use baton_engine::{Scheduler, SchedulerConfig};
use baton_server::{AppState, ServerConfig};
use clap::Args;

use crate::{CliError, CliResult};

/// Flags of `baton serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on, HOST:PORT (port 0 picks a free one).
    #[arg(long, env = "BATON_LISTEN", default_value = "127.0.0.1:7420")]
    listen: String,
    /// This process's name among the engine nodes sharing the backend
    /// (default: hostname, pid and a random suffix).
    #[arg(long, env = "BATON_NODE_ID")]
    node_id: Option<String>,
    /// Partition ownership lease in milliseconds: how soon the partitions of
    /// a dead node are taken over (default 15000).
    #[arg(long)]
    ownership_ttl_ms: Option<u64>,
    /// How often the scheduler sweeps its partitions even when nothing is
    /// known to be due, in milliseconds (default 1000).
    #[arg(long)]
    sweep_ms: Option<u64>,
    /// Signs waitpoint tokens, so a third party (a webhook, an email link)
    /// can signal one waitpoint without the API token: `kid:secret` pairs
    /// separated by commas, each secret at least 16 bytes; the first signs,
    /// every one verifies (rotate by adding the new key first and removing
    /// the old one once its tokens have expired). Prefer the environment
    /// variable: a flag shows in the process list.
    #[arg(long, env = "BATON_WAITPOINT_SECRET", hide_env_values = true)]
    waitpoint_secret: Option<String>,
    /// How long a waitpoint token stays valid when its wait has no timeout,
    /// in milliseconds (default 7 days); with a timeout, it expires with
    /// the wait.
    #[arg(long)]
    waitpoint_token_ttl_ms: Option<u64>,
    /// How long finished executions are kept before the scheduler trims
    /// them (a flow goes with its root, counted from the root's finish,
    /// once all of it has finished): 90m, 36h, 7d (default 7d). `baton
    /// retention set` keeps a namespace or lane longer or shorter.
    #[arg(long, env = "BATON_RETENTION", value_parser = parse_retention)]
    retention: Option<Duration>,
    /// How often the retention trim passes over every owned partition, in
    /// milliseconds (default 60000, at least 100).
    #[arg(long, env = "BATON_TRIM_SWEEP_MS")]
    trim_sweep_ms: Option<u64>,
    /// Serve the dashboard at /ui (and redirect / there); --ui=false
    /// leaves it out and serves the API alone.
    #[arg(long, env = "BATON_UI", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    ui: bool,
}

/// A retention: a duration of at least one second (`7d`, `36h`, `90m`).
fn parse_retention(text: &str) -> Result<Duration, String> {
    let d = crate::follow::parse_duration(text)?;
    if d < Duration::from_secs(1) {
        return Err(format!(
            "{text:?} is shorter than a second; keep finished executions at least 1s (7d is the default)"
        ));
    }
    Ok(d)
}

impl ServeArgs {
    fn engine_config(&self) -> CliResult<SchedulerConfig> {
        let mut config = SchedulerConfig::default();
        if let Some(id) = &self.node_id {
            config = config.with_node_id(NodeId::new(id.as_str())?);
        }
        if let Some(ms) = self.ownership_ttl_ms {
            config = config.with_ownership_ttl(Duration::from_millis(ms));
        }
        if let Some(ms) = self.sweep_ms {
            config = config.with_sweep(Duration::from_millis(ms));
        }
        if let Some(retention) = self.retention {
            config = config.with_retention(retention);
        }
        if let Some(ms) = self.trim_sweep_ms {
            config = config.with_trim_sweep(Duration::from_millis(ms.max(100)));
        }
        Ok(config)
    }
}

/// Environment variable holding the bearer token that every route but
/// `/healthz` then requires.
const TOKEN_ENV: &str = "BATON_API_TOKEN";

/// Serves the API on `args.listen` with the scheduler running beside it,
/// until SIGINT or SIGTERM; then stops accepting, answers in-flight requests
/// and stops the scheduler.
pub(crate) async fn run(
    backend: Arc<dyn AdminBackend>,
    backend_url: &str,
    args: ServeArgs,
) -> CliResult<()> {
    init_logging();
    let engine_config = args.engine_config()?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| CliError {
            message: format!("cannot listen on {}: {e}", args.listen),
            hint: Some(
                "pick a free address with --listen HOST:PORT (or BATON_LISTEN); port 0 lets the system choose"
                    .into(),
            ),
            code: 2,
        })?;
    let addr = listener.local_addr().map_err(|e| CliError {
        message: format!("cannot read the listening address: {e}"),
        hint: None,
        code: 1,
    })?;
    let mut config = ServerConfig::default().with_ui(args.ui);
    match std::env::var(TOKEN_ENV) {
        Ok(token) if !token.is_empty() => config = config.with_api_token(token),
        _ => {}
    }
    if let Some(secret) = args.waitpoint_secret.as_deref().filter(|s| !s.is_empty()) {
        let mut keys = baton_server::WaitpointKeys::parse(secret).map_err(|e| CliError {
            message: e.to_string(),
            hint: Some(
                "set --waitpoint-secret (or BATON_WAITPOINT_SECRET) to kid:secret pairs, \
                 for example k1:$(openssl rand -hex 32)"
                    .into(),
            ),
            code: 2,
        })?;
        if let Some(ms) = args.waitpoint_token_ttl_ms {
            keys = keys.with_ttl(Duration::from_millis(ms));
        }
        config = config.with_waitpoint_keys(keys);
    }
    let auth = match (config.api_token.is_some(), config.waitpoint_keys.is_some()) {
        (true, true) => ", bearer token required, waitpoint tokens signed",
        (true, false) => ", bearer token required",
        (false, true) => ", waitpoint tokens signed",
        (false, false) => "",
    };

    let engine_backend: Arc<dyn EngineBackend> = backend.clone();
    let engine = Scheduler::start(engine_backend, engine_config);
    let state = AppState::new(backend.clone(), config).with_engine_metrics(engine.metrics());
    // The address comes first and ends at a comma: tests and scripts read
    // it from this line.
    let dashboard = if args.ui {
        format!(", dashboard at http://{addr}/ui")
    } else {
        String::new()
    };
    tracing::info!(
        "baton serve: listening on http://{addr}{dashboard}, backend {} ({} partitions){auth}",
        baton_core::raw::url::redact(backend_url),
        backend.partitions().get(),
    );
    let served = baton_server::serve(listener, state, shutdown_signal("baton serve")).await;
    tracing::info!("baton serve: stopped accepting requests; stopping the scheduler");
    engine.shutdown().await;
    served.map_err(|e| CliError {
        message: format!("the server failed: {e}"),
        hint: None,
        code: 1,
    })
}

/// Readable log lines on stderr; `RUST_LOG` overrides the `info` default.
pub(crate) fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal, never into log files.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM, logging that `who` (the
/// command) is shutting down.
pub(crate) async fn shutdown_signal(who: &str) {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("{who}: shutting down; finishing in-flight work");
}
