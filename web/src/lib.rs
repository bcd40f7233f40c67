//! The web app: takes uploads, queues jobs, follows the reply queue and shows live status.
//!
//! Modules follow a job's path: [`ingest`] (upload → original in the store → job message),
//! [`replies`] (reply queue → [`jobs`] book), [`events`] (book → browser over SSE), [`api`]
//! (JSON and bytes), [`pages`] (HTML). [`identity`] gives each browser its signed cookie;
//! [`request_context`] each request its id and trace context.

pub mod admin;
pub mod api;
pub mod assets;
pub mod cancel;
pub mod consume;
pub mod csrf;
pub mod dead_letters;
pub mod download;
pub mod error;
pub mod events;
pub mod gallery;
pub mod idempotency;
pub mod identity;
pub mod ingest;
pub mod jobs;
pub mod logos;
pub mod lru;
pub mod metrics;
pub mod multipart_guard;
pub mod op_schema;
pub mod openapi;
pub mod pages;
pub mod preview;
pub mod rate_limit;
pub mod replicas;
pub mod replies;
pub mod request_context;
pub mod retention;
pub mod security_headers;
pub mod spool;
pub mod telemetry;
pub mod upload_limits;
pub mod zip;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{middleware, web, App, HttpServer};
use anyhow::Context as _;
use clap::Parser;
use darkroom_core::config::{Backend, BackendArgs, LimitArgs, AWS_HELP};
use darkroom_core::queue::JobQueue;
use darkroom_protocol::Limits;
use tokio::sync::watch;

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
    serve(config, backend, listener).await
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

/// Serve on an already bound listener.
pub async fn serve(config: Config, backend: Backend, listener: TcpListener) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let site = web::Data::new(csrf::SiteOrigin::new(config.public_origin.as_deref())?);
    let secure = config.cookie_secure || site.is_https();
    let cookies =
        identity::CookieSettings::load(&*backend.store, backend.kind, config.cookie_secret.as_deref(), secure).await?;
    let ops_state = admin::AdminState::new(
        config.admin_token.clone(),
        &cookies,
        Duration::from_secs(config.ops_session_ttl),
        backend.store.clone(),
        admin::Registry::with_cap(config.growth.ops_max_workers),
    );
    let book = Arc::new(jobs::JobBook::with_cache_ttl(
        backend.store.clone(),
        config.growth.job_cache,
        config.replicas.cache_ttl(),
    ));
    // The ops page follows every job, also those other replicas change.
    book.follow_all(config.admin_token.is_some());
    let fanout = replicas::join(&backend, &config.replicas)
        .await
        .context("cannot create this web app replica's inbox queue for change notices")?;
    let guard = web::Data::new(rate_limit::Guard::new(config.growth.clone()));
    let state = web::Data::new(AppState {
        backend: backend.clone(),
        book: book.clone(),
        limits: config.limits.limits(),
        cookies,
        uploads: upload_limits::UploadLimits::new(&config.uploads, &config.backend)
            .context("cannot create the folder for uploads (DARKROOM_UPLOAD_TMP_DIR)")?,
        downloads: download::Downloads::new(&config.downloads),
        idempotency: idempotency::Idempotency::new(&config.idempotency),
    });
    let image_origin = download::redirect_origin(&config.downloads, &backend).await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let registry = ops_state.registry.clone();
    let ops = web::Data::new(ops_state);
    let registry_task = tokio::spawn(registry.clone().run(book.clone(), stop_rx.clone()));
    let sweeper =
        retention::Sweeper::new(&config.retention, backend.store.clone(), book.clone(), fanout.replica().to_string())
            .map(|s| tokio::spawn(s.run(stop_rx.clone())));
    let fanout_task = replicas::start(fanout, book.clone(), registry.clone(), stop_rx.clone());
    let consumer = tokio::spawn(replies::run(
        backend.replies.clone() as Arc<dyn JobQueue>,
        book.clone(),
        registry.clone(),
        stop_rx.clone(),
    ));
    let watcher =
        tokio::spawn(dead_letters::run(backend.dead_letters.clone(), book, config.backend.max_receives, stop_rx));

    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(ops.clone())
            .app_data(site.clone())
            .app_data(guard.clone())
            .wrap(middleware::from_fn(rate_limit::middleware))
            .wrap(middleware::from_fn(identity::middleware))
            // Outside identity: a refused cross-site request gets no cookie and reaches no handler.
            .wrap(middleware::from_fn(csrf::middleware))
            .wrap(security_headers::headers_with(image_origin.as_deref()))
            // Request id, trace context and the access line (path without the query string: a
            // token pasted into `/ops?token=…` must not reach the log). Inside compression, so
            // it can add the request id to error bodies.
            .wrap(middleware::from_fn(request_context::middleware))
            .wrap(middleware::Compress::default())
            // Outermost: every answer is counted, refusals by the middlewares above included.
            .wrap(middleware::from_fn(metrics::middleware))
            .configure(api::routes)
            .configure(cancel::routes)
            .configure(openapi::routes)
            .configure(op_schema::routes)
            .configure(metrics::routes)
            .configure(logos::routes)
            .configure(gallery::routes)
            .configure(preview::routes)
            .configure(admin::routes)
            .configure(pages::routes)
            .configure(assets::routes)
    })
    // Without it, Nagle's algorithm holds a small write (an SSE event, a short answer) while an
    // earlier one is unacknowledged, and the client's delayed ACK takes up to 40 ms: the
    // `done` event of a job reached the browser ~30 ms after the web app had it (issue 14).
    .tcp_nodelay(true)
    .listen(listener)?
    // The request head must arrive within 10 s (408 otherwise); the body is bounded by
    // DARKROOM_UPLOAD_TIMEOUT. An early answer (413, 408, 503) to a client still sending gets
    // 2 s in which the rest is read and dropped, so the client sees the answer, not a reset.
    .client_request_timeout(Duration::from_secs(10))
    .client_disconnect_timeout(Duration::from_secs(2))
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
    let _ = tokio::time::timeout(Duration::from_secs(5), fanout_task).await;
    if let Some(sweeper) = sweeper {
        let _ = tokio::time::timeout(Duration::from_secs(5), sweeper).await;
    }
    tracing::info!("web app stopped");
    result.map_err(Into::into)
}
