//! The web app: takes uploads, queues jobs, follows the reply queue and shows live status.
//!
//! Modules follow a job's path: [`ingest`] (upload → original in the store → job message),
//! [`replies`] (reply queue → [`jobs`] book), [`events`] (book → browser over SSE), [`api`]
//! (JSON and bytes), [`pages`] (HTML). [`identity`] gives each browser its signed cookie.

pub mod api;
pub mod assets;
pub mod consume;
pub mod dead_letters;
pub mod error;
pub mod events;
pub mod gallery;
pub mod identity;
pub mod ingest;
pub mod jobs;
pub mod logos;
pub mod lru;
pub mod ops;
pub mod pages;
pub mod rate_limit;
pub mod replies;
pub mod security_headers;
pub mod telemetry;
pub mod workers;
pub mod zip;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{middleware, web, App, HttpServer};
use anyhow::Context as _;
use clap::Parser;
use darkroom_core::config::{Backend, BackendArgs, LimitArgs, AWS_HELP};
use darkroom_core::engine::Limits;
use darkroom_core::queue::JobQueue;
use tokio::sync::watch;

/// darkroom-web: the Darkroom web app and HTTP API.
#[derive(Parser, Clone, Debug)]
#[command(name = "darkroom-web", version, after_help = AWS_HELP)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port; the URL is printed on stdout).
    #[arg(long, env = "DARKROOM_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Create the bucket, the queues and the redrive policy if they are missing, then serve.
    #[arg(long)]
    pub init: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Secret for signing identity cookies (at least 32 characters). Default: a random key kept
    /// in the bucket at system/cookie-key, so identities survive restarts.
    #[arg(long, env = "DARKROOM_COOKIE_SECRET", hide_env_values = true)]
    pub cookie_secret: Option<String>,
    /// Mark cookies Secure (set this when serving over HTTPS).
    #[arg(long, env = "DARKROOM_COOKIE_SECURE", default_value_t = false)]
    pub cookie_secure: bool,
    /// Token that opens the ops page (/ops?token=… once, or its sign-in form). Without it the
    /// ops page is off.
    #[arg(long, env = "DARKROOM_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    #[command(flatten)]
    pub growth: rate_limit::Settings,
}

/// Everything a request handler can reach.
pub struct AppState {
    pub backend: Backend,
    pub book: Arc<jobs::JobBook>,
    pub limits: Limits,
    pub cookies: identity::CookieSettings,
}

/// Connect, bind `config.bind`, print the URL and serve until SIGTERM/Ctrl-C.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let backend = connect(&config).await?;
    let listener = TcpListener::bind(&config.bind).with_context(|| format!("cannot listen on {}", config.bind))?;
    serve(config, backend, listener).await
}

async fn connect(config: &Config) -> anyhow::Result<Backend> {
    let mut delay = Duration::from_millis(500);
    loop {
        match config.backend.connect(config.init).await {
            Ok(b) => return Ok(b),
            Err(e) if e.is_missing_resource() => {
                anyhow::bail!("{e}\nStart darkroom-web with --init once to create the bucket and queues.")
            }
            Err(e) if delay < Duration::from_secs(8) => {
                tracing::warn!(error = %e, "backend not reachable yet; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(anyhow::anyhow!(e).context("cannot reach the object store or the queues")),
        }
    }
}

/// Serve on an already bound listener.
pub async fn serve(config: Config, backend: Backend, listener: TcpListener) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let cookies =
        identity::CookieSettings::load(&*backend.store, config.cookie_secret.as_deref(), config.cookie_secure).await?;
    let book = Arc::new(jobs::JobBook::with_cache(backend.store.clone(), config.growth.job_cache));
    let guard = web::Data::new(rate_limit::Guard::new(config.growth.clone()));
    let state = web::Data::new(AppState {
        backend: backend.clone(),
        book: book.clone(),
        limits: config.limits.limits(),
        cookies,
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let registry = workers::Registry::with_cap(config.growth.ops_max_workers);
    let ops = web::Data::new(ops::OpsState::new(config.admin_token.clone(), config.cookie_secure, registry.clone()));
    let registry_task = tokio::spawn(registry.run(book.clone(), stop_rx.clone()));
    let consumer =
        tokio::spawn(replies::run(backend.replies.clone() as Arc<dyn JobQueue>, book.clone(), stop_rx.clone()));
    let watcher =
        tokio::spawn(dead_letters::run(backend.dead_letters.clone(), book, config.backend.max_receives, stop_rx));

    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(ops.clone())
            .app_data(guard.clone())
            .wrap(middleware::from_fn(rate_limit::middleware))
            .wrap(middleware::from_fn(identity::middleware))
            .wrap(security_headers::headers())
            .wrap(middleware::Compress::default())
            // Path without the query string: `/ops?token=…` must not reach the access log.
            .wrap(middleware::Logger::new("%m %U %s %Dms").log_target("darkroom_web::http"))
            .configure(api::routes)
            .configure(logos::routes)
            .configure(gallery::routes)
            .configure(ops::routes)
            .configure(pages::routes)
            .configure(assets::routes)
    })
    .listen(listener)?
    .shutdown_timeout(10)
    .run();

    tracing::info!(backend = %backend.description, "serving");
    println!("darkroom-web listening on http://{addr}/");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();

    let result = server.await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), consumer).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), watcher).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), registry_task).await;
    tracing::info!("web app stopped");
    result.map_err(Into::into)
}
