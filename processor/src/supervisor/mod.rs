//! The one-machine supervisor, `darkroom-processor supervise`: keeps between `--min` and
//! `--max` processor processes, scaled on the job queue's backlog per processor — the seed
//! design's "queue longer than X → add processing instances, shorter → remove them" without
//! Kubernetes or AWS (which scale the same binaries with KEDA, an Auto Scaling group or ECS,
//! see deploy/).
//!
//! Every `--interval` (one `Supervisor::tick`: reap → look → scale) it reads the job queue's
//! visible and in-flight counts, asks the [`policy`] for a change, and applies it: more processors are started as child processes
//! (the same executable, with the arguments after `--`), fewer are stopped with SIGTERM so
//! they drain (finish or give back their jobs) and nothing is lost. A processor that exits on
//! its own is counted and replaced, except after a configuration error (exit status 78), which
//! another processor would meet too: then the supervisor stops. Each decision is logged, counted in the supervisor's
//! [`metrics`] and written with the current state to the store
//! ([`darkroom_core::scaling::ScalingReport`]), where the web app's ops page shows it.
//!
//! Children get `PR_SET_PDEATHSIG`: if the supervisor is killed outright they receive SIGTERM
//! and drain, instead of running on unsupervised.

pub mod metrics;
pub mod policy;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use darkroom_core::config::{BackendArgs, AWS_HELP};
use darkroom_core::misconfig::EXIT_CONFIGURATION;
use darkroom_core::queue::JobQueue;
use darkroom_core::scaling::{Decision, ScalingReport};
use darkroom_core::store::ObjectStore;
use darkroom_protocol::keys;
use tokio::process::{Child, Command};
use tokio::sync::watch;

use policy::{Change, Policy};

/// darkroom-processor supervise: runs between --min and --max processors on this machine,
/// scaled on the job queue's backlog per processor. Processor settings come from the
/// environment, as for darkroom-processor, or after `--`
/// (`darkroom-processor supervise --max 4 -- --concurrency 2`).
#[derive(clap::Parser, Clone, Debug)]
#[command(name = "darkroom-processor supervise", version, after_help = AWS_HELP)]
pub struct Config {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Fewest processors kept running.
    #[arg(long, env = "DARKROOM_SCALE_MIN", default_value_t = 1)]
    pub min: usize,
    /// Most processors started (default: the number of CPU cores).
    #[arg(long, env = "DARKROOM_SCALE_MAX")]
    pub max: Option<usize>,
    /// Job messages (visible + in flight) per processor to aim for (default: the job slots of
    /// one processor, DARKROOM_CONCURRENCY, so a full processor has exactly enough work).
    #[arg(long, env = "DARKROOM_SCALE_TARGET_BACKLOG", value_parser = clap::value_parser!(u64).range(1..))]
    pub target_backlog: Option<u64>,
    /// Seconds between two looks at the queue.
    #[arg(long, env = "DARKROOM_SCALE_INTERVAL", default_value_t = 5.0, value_parser = seconds)]
    pub interval: f64,
    /// Seconds after a change before scaling out again.
    #[arg(long, env = "DARKROOM_SCALE_UP_COOLDOWN", default_value_t = 15.0, value_parser = seconds)]
    pub up_cooldown: f64,
    /// Seconds after a change before scaling in (longer: a lull between bursts keeps the processors).
    #[arg(long, env = "DARKROOM_SCALE_DOWN_COOLDOWN", default_value_t = 120.0, value_parser = seconds)]
    pub down_cooldown: f64,
    /// This supervisor's name in logs and on the ops page (default: supervisor-host-pid).
    #[arg(long, env = "DARKROOM_SUPERVISOR_ID")]
    pub name: Option<String>,
    /// Address for the supervisor's `/metrics` and `/livez`, e.g. 0.0.0.0:9091; off when unset.
    #[arg(long, env = "DARKROOM_SUPERVISOR_BIND")]
    pub bind: Option<std::net::SocketAddr>,
    /// Processors that may exit on their own within a minute before the supervisor gives up
    /// (a processor that cannot start would otherwise be restarted for ever).
    #[arg(long, env = "DARKROOM_SCALE_MAX_EXITS", default_value_t = 5)]
    pub max_exits: usize,
    /// Arguments for every processor, after `--`.
    #[arg(last = true)]
    pub processor_args: Vec<String>,
}

fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
        _ => Err(format!("expected a number of seconds, got {text:?}")),
    }
}

impl Config {
    fn cores() -> usize {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    }
    pub fn max(&self) -> usize {
        self.max.unwrap_or_else(Self::cores).max(self.min).max(1)
    }
    /// One processor's job slots, as it will work them out (DARKROOM_CONCURRENCY or cores).
    fn slots_per_processor(&self) -> u64 {
        let from_args = self.processor_args.windows(2).find(|w| w[0] == "--concurrency").map(|w| w[1].clone());
        from_args
            .or_else(|| std::env::var("DARKROOM_CONCURRENCY").ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(Self::cores() as u64)
            .max(1)
    }
    pub fn policy(&self) -> Policy {
        Policy {
            min: self.min,
            max: self.max(),
            target: self.target_backlog.unwrap_or_else(|| self.slots_per_processor()),
            up_cooldown: Duration::from_secs_f64(self.up_cooldown),
            down_cooldown: Duration::from_secs_f64(self.down_cooldown),
        }
    }
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| format!("supervisor-{}", darkroom_core::worker_id::default_worker_id()))
    }
}

/// Is this command line `darkroom-processor supervise …`? Then its arguments for [`Config`].
pub fn args_if_supervise() -> Option<Vec<String>> {
    let mut args = std::env::args();
    let _program = args.next();
    match args.next().as_deref() {
        Some("supervise") => Some(std::iter::once("darkroom-processor supervise".to_string()).chain(args).collect()),
        _ => None,
    }
}

/// One processor child.
struct Processor {
    child: Child,
    pid: u32,
}

/// The processors this supervisor runs.
struct Pool {
    exe: PathBuf,
    args: Vec<String>,
    /// Set when the supervisor's environment names a worker: children get `{id}-{n}`.
    worker_prefix: Option<String>,
    /// Strip a fixed probe port: several children cannot share it (port 0 is kept).
    strip_bind: bool,
    started: u32,
    running: Vec<Processor>,
    draining: Vec<Processor>,
    /// When processors exited without being asked to (newest last), for the crash-loop stop.
    exits: VecDeque<Instant>,
    /// A processor stopped on a configuration error (exit status 78): starting another would
    /// meet the same error, so the supervisor stops.
    misconfigured: Option<u32>,
}

impl Pool {
    fn new(args: Vec<String>) -> anyhow::Result<Pool> {
        let exe = std::env::current_exe().context("cannot find this executable to start processors")?;
        let strip_bind = std::env::var("DARKROOM_PROCESSOR_BIND")
            .ok()
            .and_then(|b| b.parse::<std::net::SocketAddr>().ok())
            .is_some_and(|a| a.port() != 0);
        if strip_bind {
            tracing::warn!(
                "DARKROOM_PROCESSOR_BIND names a fixed port, which several processors cannot share: \
                 the supervised processors get no probe port (set it to HOST:0 for one each, or use \
                 DARKROOM_SUPERVISOR_BIND for the supervisor's own metrics)"
            );
        }
        Ok(Pool {
            exe,
            args,
            worker_prefix: std::env::var("DARKROOM_WORKER_ID").ok().filter(|w| !w.is_empty()),
            strip_bind,
            started: 0,
            running: vec![],
            draining: vec![],
            exits: VecDeque::new(),
            misconfigured: None,
        })
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        self.started += 1;
        let mut cmd = Command::new(&self.exe);
        cmd.args(&self.args).stdin(Stdio::null()).kill_on_drop(false);
        if let Some(prefix) = &self.worker_prefix {
            cmd.env("DARKROOM_WORKER_ID", format!("{prefix}-{}", self.started));
        }
        if self.strip_bind {
            cmd.env_remove("DARKROOM_PROCESSOR_BIND");
        }
        #[cfg(target_os = "linux")]
        {
            // SAFETY: the closure runs in the forked child before exec and only calls prctl(2),
            // which is async-signal-safe; it touches no memory of the parent.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().with_context(|| format!("cannot start {}", self.exe.display()))?;
        let pid = child.id().unwrap_or(0);
        tracing::info!(pid, "processor started");
        self.running.push(Processor { child, pid });
        Ok(())
    }

    /// Stop the newest running processor with SIGTERM; it drains and is reaped later.
    fn stop_one(&mut self) {
        if let Some(p) = self.running.pop() {
            terminate(p.pid);
            tracing::info!(pid = p.pid, "processor asked to stop (SIGTERM): it finishes or gives back its jobs");
            self.draining.push(p);
        }
    }

    /// Collect processors that have exited; returns how many exited without being asked to.
    fn reap(&mut self, now: Instant) -> usize {
        let mut unasked = 0;
        let mut misconfigured = None;
        self.running.retain_mut(|p| match p.child.try_wait() {
            Ok(Some(status)) if status.code() == Some(EXIT_CONFIGURATION.into()) => {
                misconfigured = Some(p.pid);
                unasked += 1;
                false
            }
            Ok(Some(status)) => {
                tracing::warn!(pid = p.pid, %status, "processor exited without being asked to; it will be replaced");
                unasked += 1;
                false
            }
            _ => true,
        });
        self.misconfigured = self.misconfigured.or(misconfigured);
        self.draining.retain_mut(|p| match p.child.try_wait() {
            Ok(Some(status)) => {
                tracing::info!(pid = p.pid, %status, "processor drained and stopped");
                false
            }
            _ => true,
        });
        for _ in 0..unasked {
            self.exits.push_back(now);
        }
        while self.exits.front().is_some_and(|t| now.saturating_duration_since(*t) > Duration::from_secs(60)) {
            self.exits.pop_front();
        }
        unasked
    }

    /// SIGTERM every processor and wait for all of them.
    async fn stop_all(&mut self) {
        while !self.running.is_empty() {
            self.stop_one();
        }
        for p in &mut self.draining {
            let _ = p.child.wait().await;
            tracing::info!(pid = p.pid, "processor stopped");
        }
        self.draining.clear();
    }
}

fn terminate(pid: u32) {
    // SAFETY: kill(2) with a pid this process started and has not reaped, so it cannot name
    // another process; no memory is involved.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}

/// Supervise until `shutdown` turns true, then stop every processor (they drain) and return.
pub async fn run(config: Config, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let policy = config.policy();
    anyhow::ensure!(policy.min <= policy.max, "--min ({}) is above --max ({})", policy.min, policy.max);
    let name = config.name();
    config.backend.warn_if_embedded_by_default();
    let backend = config.backend.connect(false).await.context("cannot reach the object store or the queues")?;
    metrics::get().bounds(policy.min, policy.max);
    if let Some(bind) = config.bind {
        serve_metrics(bind).await?;
    }
    tracing::info!(
        supervisor = %name,
        min = policy.min,
        max = policy.max,
        target_backlog = policy.target,
        backend = %backend.description,
        "supervising processors on the job queue's backlog"
    );
    let mut supervisor = Supervisor {
        pool: Pool::new(config.processor_args.clone())?,
        report: first_report(name, &policy),
        policy,
        max_exits: config.max_exits.max(1),
        last_change: None,
        counts: (0, 0),
    };
    let interval = Duration::from_secs_f64(config.interval.max(0.05));
    let result = loop {
        if let Err(e) = supervisor.tick(&*backend.jobs).await {
            break Err(e);
        }
        publish(&*backend.store, &mut supervisor.report).await;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|stop| *stop) => break Ok(()),
        }
    };
    supervisor.stop(&*backend.store).await;
    result
}

/// Serve the supervisor's `/metrics` and `/livez` on `bind` (DARKROOM_SUPERVISOR_BIND).
async fn serve_metrics(bind: std::net::SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind} (DARKROOM_SUPERVISOR_BIND)"))?;
    tracing::info!(address = %listener.local_addr()?, "supervisor metrics at /metrics");
    tokio::spawn(crate::health::serve(listener, |path| match path {
        "/metrics" => ("200 OK", crate::metrics::CONTENT_TYPE, metrics::get().render()),
        "/livez" => ("200 OK", "application/json", "{\"live\":true}".to_string()),
        _ => ("404 Not Found", "application/json", "{\"error\":\"not_found\"}".to_string()),
    }));
    Ok(())
}

/// The report of a supervisor that runs nothing yet.
fn first_report(supervisor: String, policy: &Policy) -> ScalingReport {
    ScalingReport {
        supervisor,
        min: policy.min,
        max: policy.max,
        target_backlog: policy.target,
        processes: 0,
        draining: 0,
        visible: 0,
        in_flight: 0,
        updated_at: Utc::now(),
        stopped: false,
        decisions: vec![],
    }
}

/// The supervisor's state between two looks at the queue.
struct Supervisor {
    pool: Pool,
    report: ScalingReport,
    policy: Policy,
    /// Processors that may exit on their own within a minute before the supervisor stops.
    max_exits: usize,
    last_change: Option<Instant>,
    /// The job queue's last known (visible, in flight) counts.
    counts: (u64, u64),
}

impl Supervisor {
    /// One look: reap the processors that exited → read the queue → scale. An error stops
    /// the supervisor (a configuration error or a crash loop).
    async fn tick(&mut self, jobs: &dyn JobQueue) -> anyhow::Result<()> {
        let now = Instant::now();
        self.reap(now)?;
        let looked = self.look(jobs).await;
        self.scale(looked, now);
        let (pool, report) = (&self.pool, &mut self.report);
        metrics::get().processes(pool.running.len(), pool.draining.len());
        (report.processes, report.draining) = (pool.running.len(), pool.draining.len());
        (report.visible, report.in_flight) = self.counts;
        Ok(())
    }

    /// Collect exited processors; an error when one stopped on a configuration error or too
    /// many exited on their own within a minute.
    fn reap(&mut self, now: Instant) -> anyhow::Result<()> {
        for _ in 0..self.pool.reap(now) {
            metrics::get().exited();
        }
        if let Some(pid) = self.pool.misconfigured {
            anyhow::bail!(
                "processor {pid} stopped on a configuration error (exit status {EXIT_CONFIGURATION}; its \
                 `Error:` line above says what to fix): starting more would meet the same error, so the \
                 supervisor stops too"
            );
        }
        if self.pool.exits.len() >= self.max_exits {
            anyhow::bail!(
                "{} processors exited on their own within a minute: stopping the supervisor instead of \
                 restarting them for ever (their output above says why)",
                self.pool.exits.len()
            );
        }
        Ok(())
    }

    /// Read the job queue's counts; false when they could not be read (the last ones stay).
    async fn look(&mut self, jobs: &dyn JobQueue) -> bool {
        let looked = match jobs.counts().await {
            Ok(c) => {
                self.counts = (c.visible, c.in_flight);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the job queue's depth; keeping the processors as they are");
                false
            }
        };
        let counts = self.counts;
        metrics::get().queue(looked.then_some(counts), self.policy.wanted(counts.0 + counts.1));
        looked
    }

    /// Ask the policy for a change and apply it, logged, counted and recorded in the report.
    fn scale(&mut self, looked: bool, now: Instant) {
        let (policy, counts) = (&self.policy, self.counts);
        let running = self.pool.running.len();
        // With no fresh counts only the minimum is restored.
        let change = if looked {
            policy.decide(running, counts.0, counts.1, self.last_change, now)
        } else if running < policy.min {
            policy.decide(running, 0, 0, self.last_change, now)
        } else {
            None
        };
        let Some(change) = change else { return };
        apply(&mut self.pool, &change, running);
        tracing::info!(
            direction = change.direction.as_str(),
            from = running,
            to = change.to,
            visible = counts.0,
            in_flight = counts.1,
            "scaling decision: {} {running} → {}: {}",
            change.direction.as_str(),
            change.to,
            change.reason
        );
        metrics::get().decided(change.direction);
        self.report.record(Decision {
            at: Utc::now(),
            direction: change.direction,
            from: running,
            to: self.pool.running.len(),
            visible: counts.0,
            in_flight: counts.1,
            reason: change.reason,
        });
        self.last_change = Some(now);
    }

    /// Stop every processor (they drain) and publish the last report, `stopped`.
    async fn stop(mut self, store: &dyn ObjectStore) {
        let pool = &mut self.pool;
        tracing::info!(processors = pool.running.len() + pool.draining.len(), "supervisor stopping: processors drain");
        pool.stop_all().await;
        self.report.stopped = true;
        (self.report.processes, self.report.draining) = (0, 0);
        publish(store, &mut self.report).await;
    }
}

/// Start or stop processors to reach `change.to`.
fn apply(pool: &mut Pool, change: &Change, running: usize) {
    if change.to > running {
        for _ in running..change.to {
            if let Err(e) = pool.spawn() {
                tracing::error!(error = format!("{e:#}"), "cannot start a processor");
                break;
            }
        }
    } else {
        for _ in change.to..running {
            pool.stop_one();
        }
    }
}

/// Write the report where the ops page reads it; a failure is logged, never fatal.
async fn publish(store: &dyn ObjectStore, report: &mut ScalingReport) {
    report.updated_at = Utc::now();
    let body = serde_json::to_vec(report).expect("reports serialize");
    if let Err(e) = store.put(&keys::scaling_report(&report.supervisor), body.into(), "application/json").await {
        tracing::warn!(error = %e, "cannot write the scaling report to the store (the ops page will not show it)");
    }
}
