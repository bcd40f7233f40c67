//! Starting and stopping the web app, in named steps: [`Shared::new`] builds what the handlers
//! reach, [`app`] the middleware stack and the routes around it, [`Background`] the loops that
//! run beside the HTTP server (reply queue, dead letters, replicas, worker registry, retention),
//! and [`serve`] runs them all until a shutdown signal, then stops them in order.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{middleware, web, App, HttpServer};
use anyhow::Context as _;
use darkroom_core::config::Backend;
use darkroom_core::queue::JobQueue;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{
    admin, csrf, dead_letters, download, idempotency, identity, jobs, metrics, rate_limit, replicas, replies,
    request_context, retention, routes, security_headers, upload_limits, AppState, Config,
};

/// Serve on an already bound listener until `shutdown` completes, then stop gracefully: no new
/// connections, requests in flight get up to 10 s, then the background loops stop.
pub async fn serve(
    config: Config,
    backend: Backend,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let shared = Shared::new(&config, backend.clone()).await?;
    let background = Background::start(&config, &backend, &shared).await?;
    let server = http_server(shared, listener)?;

    tracing::info!(backend = %backend.description, "serving");
    println!("darkroom-web listening on http://{addr}/");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();

    let result = until(server, shutdown).await;
    background.stop().await;
    tracing::info!("web app stopped");
    result.map_err(Into::into)
}

/// Run `server` until it ends by itself or `shutdown` completes (then stop it gracefully).
async fn until(mut server: Server, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
    let handle = server.handle();
    tokio::pin!(shutdown);
    tokio::select! {
        result = &mut server => result,
        () = &mut shutdown => {
            tracing::info!("shutting down: no new connections; requests in flight get 10 s");
            // The server future does the stopping: it is polled while the stop is awaited.
            let (result, ()) = tokio::join!(server, handle.stop(true));
            result
        }
    }
}

/// What every handler and middleware reaches (`app_data`), built once per process.
#[derive(Clone)]
pub struct Shared {
    pub state: web::Data<AppState>,
    pub ops: web::Data<admin::AdminState>,
    pub site: web::Data<csrf::SiteOrigin>,
    pub guard: web::Data<rate_limit::Guard>,
    /// The store's origin when downloads redirect there (the page's images load from it).
    pub image_origin: Option<String>,
}

impl Shared {
    /// Settings checked, the cookie key loaded, the job book opened; nothing runs yet.
    pub async fn new(config: &Config, backend: Backend) -> anyhow::Result<Shared> {
        let site = csrf::SiteOrigin::new(config.public_origin.as_deref())?;
        let secure = config.cookie_secure || site.is_https();
        let cookies =
            identity::CookieSettings::load(&*backend.store, backend.kind, config.cookie_secret.as_deref(), secure)
                .await?;
        let ops = admin::AdminState::new(
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
        let image_origin = download::redirect_origin(&config.downloads, &backend).await?;
        let state = AppState {
            backend,
            book,
            limits: config.limits.limits(),
            cookies,
            uploads: upload_limits::UploadLimits::new(&config.uploads, &config.backend)
                .context("cannot create the folder for uploads (DARKROOM_UPLOAD_TMP_DIR)")?,
            downloads: download::Downloads::new(&config.downloads),
            idempotency: idempotency::Idempotency::new(&config.idempotency),
        };
        Ok(Shared {
            state: web::Data::new(state),
            ops: web::Data::new(ops),
            site: web::Data::new(site),
            guard: web::Data::new(rate_limit::Guard::new(config.growth.clone())),
            image_origin,
        })
    }
}

/// The whole web app for one worker thread: shared state, the middleware stack (outermost
/// last) and every route ([`routes::configure`]). In-process tests serve it too.
pub fn app(
    shared: &Shared,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(shared.state.clone())
        .app_data(shared.ops.clone())
        .app_data(shared.site.clone())
        .app_data(shared.guard.clone())
        .wrap(middleware::from_fn(rate_limit::middleware))
        .wrap(middleware::from_fn(identity::middleware))
        // Outside identity: a refused cross-site request gets no cookie and reaches no handler.
        .wrap(middleware::from_fn(csrf::middleware))
        .wrap(security_headers::headers_with(shared.image_origin.as_deref()))
        // Request id, trace context and the access line (path without the query string: a
        // token pasted into `/ops?token=…` must not reach the log). Inside compression, so
        // it can add the request id to error bodies.
        .wrap(middleware::from_fn(request_context::middleware))
        .wrap(middleware::Compress::default())
        // Outermost: every answer is counted, refusals by the middlewares above included.
        .wrap(middleware::from_fn(metrics::middleware))
        .configure(routes::configure)
}

/// The HTTP server on `listener`, started (it stops through its handle: [`until`]).
fn http_server(shared: Shared, listener: TcpListener) -> std::io::Result<Server> {
    Ok(HttpServer::new(move || app(&shared))
        // Without it, Nagle's algorithm holds a small write (an SSE event, a short answer) while
        // an earlier one is unacknowledged, and the client's delayed ACK takes up to 40 ms: the
        // `done` event of a job reached the browser ~30 ms after the web app had it (issue 14).
        .tcp_nodelay(true)
        .listen(listener)?
        // The request head must arrive within 10 s (408 otherwise); the body is bounded by
        // DARKROOM_UPLOAD_TIMEOUT. An early answer (413, 408, 503) to a client still sending
        // gets 2 s in which the rest is read and dropped, so the client sees the answer, not a
        // reset.
        .client_request_timeout(Duration::from_secs(10))
        .client_disconnect_timeout(Duration::from_secs(2))
        .shutdown_timeout(10)
        // [`serve`]'s caller decides when to stop (run() passes SIGTERM and Ctrl-C).
        .disable_signals()
        .run())
}

/// The loops beside the HTTP server, and how long each may take to stop.
pub struct Background {
    stop: watch::Sender<bool>,
    tasks: Vec<(JoinHandle<()>, Duration)>,
}

impl Background {
    /// Join the replicas and start the loops: the reply queue, the dead letters, the change
    /// notices, the worker registry and (when on) the retention sweep.
    async fn start(config: &Config, backend: &Backend, shared: &Shared) -> anyhow::Result<Background> {
        let book = shared.state.book.clone();
        let registry = shared.ops.registry.clone();
        let fanout = replicas::join(backend, &config.replicas)
            .await
            .context("cannot create this web app replica's inbox queue for change notices")?;
        let (stop, stop_rx) = watch::channel(false);
        let five = Duration::from_secs(5);
        let replica = fanout.replica().to_string();
        let mut tasks = vec![
            (
                tokio::spawn(replies::run(
                    backend.replies.clone() as Arc<dyn JobQueue>,
                    book.clone(),
                    registry.clone(),
                    stop_rx.clone(),
                )),
                five,
            ),
            (
                tokio::spawn(dead_letters::run(
                    backend.dead_letters.clone(),
                    book.clone(),
                    config.backend.max_receives,
                    stop_rx.clone(),
                )),
                five,
            ),
            (tokio::spawn(registry.clone().run(book.clone(), stop_rx.clone())), Duration::from_secs(1)),
            (replicas::start(fanout, book.clone(), registry, stop_rx.clone()), five),
        ];
        if let Some(sweeper) = retention::Sweeper::new(&config.retention, backend.store.clone(), book, replica) {
            tasks.push((tokio::spawn(sweeper.run(stop_rx)), five));
        }
        Ok(Background { stop, tasks })
    }

    /// Tell every loop to stop, and wait for each (at most its time).
    async fn stop(self) {
        let _ = self.stop.send(true);
        for (task, limit) in self.tasks {
            let _ = tokio::time::timeout(limit, task).await;
        }
    }
}
