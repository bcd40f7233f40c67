//! Prometheus metrics of the web app, served at `GET /metrics` on its HTTP port.
//!
//! Every metric of this process is declared here, in one registry, so the README's "Metrics"
//! section and this file can be checked against each other. Names follow Prometheus
//! conventions: a `darkroom_web_` prefix, units in names, counters end in `_total`. Labels
//! never carry ids: HTTP requests are counted by route pattern (`/api/jobs/{id}`), not path.
//!
//! Counters and histograms are updated where things happen (the [`middleware`], `ingest`,
//! `replies`); gauges that describe the outside world are read when scraped: the open event
//! streams from [`crate::rate_limit::Guard`], the workers and their slots from the ops page's
//! [`crate::admin::Registry`], and the queue depths from the queues, cached for
//! [`QUEUE_CACHE`] so frequent scrapes (or several Prometheus servers) do not hammer SQS.
//!
//! One registry per process (a `static`), as Prometheus client libraries usually keep it.

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use darkroom_core::config::Backend;
use darkroom_core::queue::JobQueue;
use darkroom_protocol::lifecycle::JobState;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::admin::status::{WorkerCounts, WorkerStatus};

/// How long queue depths read for one scrape are reused by the next ones.
pub const QUEUE_CACHE: Duration = Duration::from_secs(5);
/// Longest one queue's depth may take to read during a scrape.
const QUEUE_READ_LIMIT: Duration = Duration::from_secs(2);
/// The content type of the exposition (OpenMetrics text, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Route label of a request that matched no route (any path: no ids or junk in labels).
const UNMATCHED: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: HttpMethod,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: HttpMethod,
    route: String,
}

/// The request method, with anything unusual folded into `OTHER` (a client picks methods).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(clippy::upper_case_acronyms)]
enum HttpMethod {
    GET,
    HEAD,
    POST,
    PUT,
    DELETE,
    OPTIONS,
    PATCH,
    OTHER,
}

impl From<&Method> for HttpMethod {
    fn from(m: &Method) -> Self {
        match *m {
            Method::GET => HttpMethod::GET,
            Method::HEAD => HttpMethod::HEAD,
            Method::POST => HttpMethod::POST,
            Method::PUT => HttpMethod::PUT,
            Method::DELETE => HttpMethod::DELETE,
            Method::OPTIONS => HttpMethod::OPTIONS,
            Method::PATCH => HttpMethod::PATCH,
            _ => HttpMethod::OTHER,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: State,
}

/// A job state as a label value (`queued`, `processing`, … as in the API).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct State(JobState);

impl EncodeLabelValue for State {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.0.as_str())
    }
}

/// The queues the web app sees.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Queue {
    Jobs,
    Replies,
    DeadLetters,
}

impl Queue {
    fn as_str(self) -> &'static str {
        match self {
            Queue::Jobs => "jobs",
            Queue::Replies => "replies",
            Queue::DeadLetters => "dead_letters",
        }
    }
}

impl EncodeLabelValue for Queue {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: Queue,
}

/// What a retention sweep removes ([`crate::retention`]).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Swept {
    /// Whole jobs (each several keys).
    jobs,
    /// Unused logos.
    logos,
    /// Expired `Idempotency-Key` records.
    idempotency_records,
    /// Object keys deleted in all (a job's, a logo, a record).
    keys,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SweptLabels {
    kind: Swept,
}

/// How a retention round on this replica went.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Round {
    /// This replica held the lease and swept.
    swept,
    /// Another replica holds the lease: nothing done.
    skipped,
    /// The round stopped on a store error (tried again next round).
    failed,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoundLabels {
    outcome: Round,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    state: WorkerState,
}

/// A worker's status on the ops page as a label value (`busy`, `idle`, `stopping`, `silent`, `stopped`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct WorkerState(WorkerStatus);

impl EncodeLabelValue for WorkerState {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.0.as_str())
    }
}

/// Every metric of the web app.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<RequestLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    jobs_submitted: Counter,
    statuses_applied: Family<StateLabels, Counter>,
    statuses_ignored: Counter,
    record_conflicts: Counter,
    notices_sent: Counter,
    notices_received: Counter,
    retention_removed: Family<SweptLabels, Counter>,
    retention_rounds: Family<RoundLabels, Counter>,
    sse_clients: Gauge,
    queue_visible: Family<QueueLabels, Gauge>,
    queue_in_flight: Family<QueueLabels, Gauge>,
    queue_up: Family<QueueLabels, Gauge>,
    workers: Family<WorkerLabels, Gauge>,
    worker_slots: Gauge,
    worker_slots_busy: Gauge,
    /// When the queue gauges were last read (one refresh at a time).
    queues_read: tokio::sync::Mutex<Option<Instant>>,
}

fn http_histogram() -> Histogram {
    Histogram::new([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("darkroom_web");
        let m = Metrics {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(http_histogram as fn() -> Histogram),
            jobs_submitted: Counter::default(),
            statuses_applied: Family::default(),
            statuses_ignored: Counter::default(),
            record_conflicts: Counter::default(),
            notices_sent: Counter::default(),
            notices_received: Counter::default(),
            retention_removed: Family::default(),
            retention_rounds: Family::default(),
            sse_clients: Gauge::default(),
            queue_visible: Family::default(),
            queue_in_flight: Family::default(),
            queue_up: Family::default(),
            workers: Family::default(),
            worker_slots: Gauge::default(),
            worker_slots_busy: Gauge::default(),
            queues_read: tokio::sync::Mutex::new(None),
            registry: Registry::default(),
        };
        m.register_jobs(&mut registry);
        m.register_upkeep(&mut registry);
        m.start_at_zero();
        Metrics { registry, ..m }
    }

    /// The series of requests and of jobs and their statuses.
    fn register_jobs(&self, registry: &mut Registry) {
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route pattern and status code",
            self.http_requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time from request to response head (for event streams: until the stream starts), by method and route",
            Unit::Seconds,
            self.http_duration.clone(),
        );
        registry.register("jobs_submitted", "Jobs queued (one per accepted file)", self.jobs_submitted.clone());
        registry.register(
            "statuses_applied",
            "Worker statuses from the reply queue that changed a job, by the state they carried",
            self.statuses_applied.clone(),
        );
        registry.register(
            "statuses_ignored",
            "Worker statuses from the reply queue that changed nothing (duplicate, stale or for an unknown job)",
            self.statuses_ignored.clone(),
        );
        registry.register(
            "job_record_conflicts",
            "Conditional writes of a job record refused because another writer (another replica) changed it first; each is applied again",
            self.record_conflicts.clone(),
        );
        registry.register(
            "change_notices_sent",
            "Change notices sent to other web app replicas (one per notice and replica)",
            self.notices_sent.clone(),
        );
        registry.register(
            "change_notices_received",
            "Change notices received from other web app replicas",
            self.notices_received.clone(),
        );
    }

    /// The series of retention, streams, queues and workers.
    fn register_upkeep(&self, registry: &mut Registry) {
        registry.register(
            "retention_removed",
            "What the retention sweeper (DARKROOM_RETENTION) deleted on this replica: whole jobs, unused logos, expired idempotency records, and object keys in all",
            self.retention_removed.clone(),
        );
        registry.register(
            "retention_rounds",
            "Retention rounds on this replica: swept (it held the lease), skipped (another replica did), failed",
            self.retention_rounds.clone(),
        );
        registry.register("sse_clients", "Event streams (server-sent events) open now", self.sse_clients.clone());
        registry.register(
            "queue_messages_visible",
            "Messages waiting in each queue, as the web app last read it (cached for 5 s)",
            self.queue_visible.clone(),
        );
        registry.register(
            "queue_messages_in_flight",
            "Messages received and not yet deleted in each queue, as the web app last read it (cached for 5 s)",
            self.queue_in_flight.clone(),
        );
        registry.register(
            "queue_up",
            "1 when the queue answered the last depth read, 0 when it did not",
            self.queue_up.clone(),
        );
        registry.register(
            "workers",
            "Workers this web app knows, by what the ops page shows: busy, idle, stopping, silent (no presence for 3 intervals), stopped",
            self.workers.clone(),
        );
        registry.register(
            "worker_slots",
            "Job slots of the busy, idle and stopping workers, as their presence messages announce them",
            self.worker_slots.clone(),
        );
        registry.register(
            "worker_slots_busy",
            "Of those slots, the ones working on a job",
            self.worker_slots_busy.clone(),
        );
    }

    /// Known series start at zero, so they are there (and rate() works) before the first event.
    fn start_at_zero(&self) {
        for status in WorkerStatus::ALL {
            let _ = self.workers.get_or_create(&WorkerLabels { state: WorkerState(status) });
        }
        // Known series start at zero, so they are there (and rate() works) before the first status.
        for state in [JobState::Queued, JobState::Processing, JobState::Retrying, JobState::Done, JobState::Failed] {
            let _ = self.statuses_applied.get_or_create(&StateLabels { state: State(state) });
        }
    }

    /// A job was queued.
    pub fn job_submitted(&self) {
        self.jobs_submitted.inc();
    }

    /// A worker status changed a job (`true`) or was ignored (`false`).
    pub fn status(&self, state: JobState, changed: bool) {
        if changed {
            self.statuses_applied.get_or_create(&StateLabels { state: State(state) }).inc();
        } else {
            self.statuses_ignored.inc();
        }
    }

    /// A conditional write of a job record met a newer record.
    pub fn record_conflict(&self) {
        self.record_conflicts.inc();
    }

    /// `n` change notices went to other replicas.
    pub fn notices_sent(&self, n: u64) {
        self.notices_sent.inc_by(n);
    }

    /// `n` change notices came from other replicas.
    pub fn notices_received(&self, n: u64) {
        self.notices_received.inc_by(n);
    }

    /// A retention sweep removed `n` of `what`.
    pub fn retention_removed(&self, what: Swept, n: u64) {
        self.retention_removed.get_or_create(&SweptLabels { kind: what }).inc_by(n);
    }

    /// A retention round ended as `outcome`.
    pub fn retention_round(&self, outcome: Round) {
        self.retention_rounds.get_or_create(&RoundLabels { outcome }).inc();
    }

    /// The workers gauges, from the ops page's registry.
    pub fn set_workers(&self, counts: &WorkerCounts) {
        for status in WorkerStatus::ALL {
            let n = counts.by_status.get(&status).copied().unwrap_or(0);
            self.workers.get_or_create(&WorkerLabels { state: WorkerState(status) }).set(n as i64);
        }
        self.worker_slots.set(counts.slots as i64);
        self.worker_slots_busy.set(counts.busy as i64);
    }

    /// Read the queue depths unless they were read less than [`QUEUE_CACHE`] ago.
    async fn refresh_queues(&self, backend: &Backend) {
        let mut last = self.queues_read.lock().await;
        if last.is_some_and(|t| t.elapsed() < QUEUE_CACHE) {
            return;
        }
        let queues: [(Queue, &dyn JobQueue); 3] = [
            (Queue::Jobs, &*backend.jobs),
            (Queue::Replies, &*backend.replies),
            (Queue::DeadLetters, &*backend.dead_letters),
        ];
        let reads =
            queues.map(|(q, queue)| async move { (q, tokio::time::timeout(QUEUE_READ_LIMIT, queue.counts()).await) });
        for (queue, read) in futures_util::future::join_all(reads).await {
            let labels = QueueLabels { queue };
            match read {
                Ok(Ok(c)) => {
                    self.queue_visible.get_or_create(&labels).set(c.visible as i64);
                    self.queue_in_flight.get_or_create(&labels).set(c.in_flight as i64);
                    self.queue_up.get_or_create(&labels).set(1);
                }
                failed => {
                    let error = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {} s", QUEUE_READ_LIMIT.as_secs()),
                    };
                    tracing::debug!(queue = queue.as_str(), %error, "metrics: cannot read the queue's depth");
                    // No stale depth is shown as current: the series go until the queue answers.
                    self.queue_visible.remove(&labels);
                    self.queue_in_flight.remove(&labels);
                    self.queue_up.get_or_create(&labels).set(0);
                }
            }
        }
        *last = Some(Instant::now());
    }

    /// The exposition, after reading the gauges that are read at scrape time.
    pub async fn render(&self, backend: &Backend, open_streams: usize) -> String {
        self.sse_clients.set(open_streams as i64);
        self.refresh_queues(backend).await;
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String never fails");
        out
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// This process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

/// Count every request by method, route pattern and status, and time it. Wraps everything
/// else, so refusals by the other middlewares (403, 429, …) are counted too.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = HttpMethod::from(req.method());
    let route = req.match_pattern().unwrap_or_else(|| UNMATCHED.to_string());
    let result = next.call(req).await;
    let status = match &result {
        Ok(res) => res.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    let m = get();
    m.http_duration
        .get_or_create(&RouteLabels { method, route: route.clone() })
        .observe(started.elapsed().as_secs_f64());
    m.http_requests.get_or_create(&RequestLabels { method, route, status }).inc();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        let m = Metrics::new();
        m.job_submitted();
        m.status(JobState::Done, true);
        m.status(JobState::Done, false);
        let mut counts = WorkerCounts { slots: 6, busy: 1, ..Default::default() };
        counts.by_status.insert(WorkerStatus::Idle, 2);
        counts.by_status.insert(WorkerStatus::Busy, 1);
        m.set_workers(&counts);
        m.http_requests
            .get_or_create(&RequestLabels { method: HttpMethod::POST, route: "/api/jobs".into(), status: 202 })
            .inc();
        m.http_duration
            .get_or_create(&RouteLabels { method: HttpMethod::POST, route: "/api/jobs".into() })
            .observe(0.2);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &m.registry).unwrap();
        for line in [
            "# TYPE darkroom_web_jobs_submitted counter",
            "darkroom_web_jobs_submitted_total 1",
            "darkroom_web_statuses_applied_total{state=\"done\"} 1",
            "darkroom_web_statuses_ignored_total 1",
            "darkroom_web_statuses_applied_total{state=\"failed\"} 0",
            "darkroom_web_http_request_duration_seconds_count{method=\"POST\",route=\"/api/jobs\"} 1",
            "darkroom_web_http_requests_total{method=\"POST\",route=\"/api/jobs\",status=\"202\"} 1",
            "# TYPE darkroom_web_http_request_duration_seconds histogram",
            "# TYPE darkroom_web_sse_clients gauge",
            "# TYPE darkroom_web_workers gauge",
            "darkroom_web_workers{state=\"idle\"} 2",
            "darkroom_web_workers{state=\"busy\"} 1",
            "darkroom_web_workers{state=\"silent\"} 0",
            "darkroom_web_workers{state=\"stopped\"} 0",
            "darkroom_web_worker_slots 6",
            "darkroom_web_worker_slots_busy 1",
        ] {
            assert!(out.lines().any(|l| l == line), "no line {line:?} in\n{out}");
        }
    }
}
