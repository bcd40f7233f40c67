//! The web app: takes uploads, queues jobs, follows the reply queue and shows live status.
//!
//! Modules follow a job's path: [`ingest`] (upload → original in the store → job message),
//! [`replies`] (reply queue → [`jobs`] book), [`views`] (a job as JSON), [`routes`] (every URL,
//! in one table: the API, the live streams, the pages). [`identity`] gives each browser its
//! signed cookie; [`request_context`] each request its id and trace context. [`server`] starts
//! it all and stops it on a shutdown signal; this file holds only the settings, the state the
//! handlers share, and [`run`].

pub mod admin;
pub mod consume;
pub mod csrf;
pub mod dead_letters;
pub mod download;
pub mod error;
pub mod idempotency;
pub mod identity;
pub mod ingest;
pub mod jobs;
pub mod lru;
pub mod metrics;
pub mod multipart_guard;
pub mod rate_limit;
pub mod replicas;
pub mod replies;
pub mod request_context;
pub mod retention;
pub mod routes;
pub mod security_headers;
pub mod server;
pub mod spool;
pub mod telemetry;
pub mod upload_limits;
pub mod views;
pub mod zip;

pub use server::serve;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use darkroom_core::config::{Backend, BackendArgs, LimitArgs, AWS_HELP};
use darkroom_protocol::Limits;

/// darkroom-web: the Darkroom web app and HTTP API.
#[derive(Parser, Clone, Debug)]
#[command(name = "darkroom-web", version, after_help = AWS_HELP)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port; the URL is printed on stdout).
    #[arg(long, env = "DARKROOM_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Create the bucket, the queues and the redrive policy if they are missing, then serve
    /// (for local use: deployments run `darkroom-ctl init` once, and the web app then needs
    /// no create permissions).
    #[arg(long)]
    pub init: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub uploads: upload_limits::UploadArgs,
    /// Secret for signing identity cookies and ops sessions (at least 32 characters; e.g.
    /// `openssl rand -hex 32`). Required on the aws backend. Default on the embedded backend: a
    /// random key kept in the data folder at objects/system/cookie-key.
    #[arg(long, env = "DARKROOM_COOKIE_SECRET", hide_env_values = true)]
    pub cookie_secret: Option<String>,
    /// Mark cookies Secure and give them the __Host- prefix (on by itself when
    /// DARKROOM_PUBLIC_ORIGIN starts with https://).
    #[arg(long, env = "DARKROOM_COOKIE_SECURE", default_value_t = false)]
    pub cookie_secure: bool,
    /// The origin browsers reach this site at (e.g. https://photos.example.com), when a proxy in
    /// front changes the Host header; state-changing requests from this origin or the request's
    /// Host are accepted, others refused (403).
    #[arg(long, env = "DARKROOM_PUBLIC_ORIGIN")]
    pub public_origin: Option<String>,
    /// Token that opens the ops page (its sign-in form; at least 16 characters). Without it the
    /// ops page is off.
    #[arg(long, env = "DARKROOM_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Seconds an ops sign-in lasts.
    #[arg(long, env = "DARKROOM_OPS_SESSION_TTL", default_value_t = 43_200, value_parser = clap::value_parser!(u64).range(1..=2_592_000))]
    pub ops_session_ttl: u64,
    #[command(flatten)]
    pub growth: rate_limit::Settings,
    #[command(flatten)]
    pub downloads: download::DownloadArgs,
    #[command(flatten)]
    pub replicas: replicas::ReplicaArgs,
    #[command(flatten)]
    pub idempotency: idempotency::IdempotencyArgs,
    #[command(flatten)]
    pub retention: retention::RetentionArgs,
}

/// Everything a request handler can reach.
pub struct AppState {
    pub backend: Backend,
    pub book: Arc<jobs::JobBook>,
    pub limits: Limits,
    pub cookies: identity::CookieSettings,
    pub uploads: upload_limits::UploadLimits,
    pub downloads: download::Downloads,
    pub idempotency: idempotency::Idempotency,
}

/// Connect, bind `config.bind`, print the URL and serve until SIGTERM/Ctrl-C.
pub async fn run(config: Config) -> anyhow::Result<()> {
    // Settings first: a missing secret is reported at once, not after connecting.
    identity::check_secret(config.backend.kind(), config.cookie_secret.as_deref())?;
    csrf::SiteOrigin::new(config.public_origin.as_deref())?;
    let backend = connect(&config).await?;
    let listener = TcpListener::bind(&config.bind).with_context(|| format!("cannot listen on {}", config.bind))?;
    let shutdown = shutdown_signal().context("cannot listen for SIGTERM and Ctrl-C")?;
    serve(config, backend, listener, shutdown).await
}

/// Completes at SIGTERM (docker stop, systemd) or Ctrl-C; the handlers are installed at once,
/// so a signal that arrives while the server starts is not lost.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
            _ = interrupt.recv() => tracing::info!("Ctrl-C received"),
        }
    })
}

async fn connect(config: &Config) -> anyhow::Result<Backend> {
    config.backend.warn_if_embedded_by_default();
    let mut delay = Duration::from_millis(500);
    loop {
        match config.backend.connect(config.init).await {
            Ok(b) => return Ok(b),
            // A missing bucket or queue (`darkroom-ctl init` creates them), a permission,
            // credentials: retrying cannot help; said in one line at exit.
            Err(e) if e.misconfiguration().is_some() => return Err(e.into()),
            Err(e) if delay < Duration::from_secs(8) => {
                tracing::warn!(error = %e, "backend not reachable yet; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(anyhow::anyhow!(e).context("cannot reach the object store or the queues")),
        }
    }
}
