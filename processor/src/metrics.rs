//! Prometheus metrics of the processor, served at `GET /metrics` on its probe port
//! (`DARKROOM_PROCESSOR_BIND`, see [`crate::health`]; off unless set, because `scripts/start`
//! runs several processors on one machine, where one fixed port would collide).
//!
//! Every metric of this process is declared here, in one registry, so the README's "Metrics"
//! section and this file can be checked against each other. Names follow Prometheus
//! conventions: a `darkroom_processor_` prefix, units in names, counters end in `_total`.
//! Labels never carry job ids: failures are counted by their error code.
//!
//! One registry per process (a `static`), as Prometheus client libraries usually keep it; the
//! code that does the work calls the small functions below.

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The content type of the exposition (OpenMetrics text, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The timed parts of a job.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Stage {
    /// Reading the original and the recipe's resources (logos) from the store.
    Download,
    /// The image work in the sandbox (decode, operations, encode), store time excluded.
    Render,
    /// Writing the outputs and their manifest to the store.
    Store,
    /// Posting the final status to the reply queue.
    Status,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::Download => "download",
            Stage::Render => "render",
            Stage::Store => "store",
            Stage::Status => "status",
        }
    }
}

impl EncodeLabelValue for Stage {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// Why a job was given back to the queue for another attempt.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum RetryReason {
    /// The attempt failed in a way worth retrying (store or queue unreachable, a crash).
    Error,
    /// The processor was shutting down and the grace period ran out.
    Released,
    /// This processor is misconfigured (a missing bucket or permission): given back for
    /// another processor (crate::misconfig).
    Configuration,
}

impl EncodeLabelValue for RetryReason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            RetryReason::Error => "error",
            RetryReason::Released => "released",
            RetryReason::Configuration => "configuration",
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: Stage,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: RetryReason,
}

/// Every metric of the processor.
pub struct Metrics {
    registry: Registry,
    received: Counter,
    done: Counter,
    failed: Family<CodeLabels, Counter>,
    retried: Family<ReasonLabels, Counter>,
    queue_wait: Histogram,
    stages: Family<StageLabels, Histogram, fn() -> Histogram>,
    slots: Gauge,
    busy: Gauge,
    extensions: Counter,
}

fn stage_histogram() -> Histogram {
    Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0])
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("darkroom_processor");
        let m = Metrics {
            received: Counter::default(),
            done: Counter::default(),
            failed: Family::default(),
            retried: Family::default(),
            queue_wait: Histogram::new([
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
            ]),
            stages: Family::new_with_constructor(stage_histogram as fn() -> Histogram),
            slots: Gauge::default(),
            busy: Gauge::default(),
            extensions: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "jobs_received",
            "Job messages received from the job queue (every attempt)",
            m.received.clone(),
        );
        registry.register("jobs_done", "Jobs finished with every output stored (`done` posted)", m.done.clone());
        registry.register("jobs_failed", "Jobs failed for good (`failed` posted), by error code", m.failed.clone());
        registry.register(
            "jobs_retried",
            "Attempts given back to the queue for another try (`retrying` posted), by reason",
            m.retried.clone(),
        );
        registry.register_with_unit(
            "queue_wait",
            "Time from submission to a job's first receipt (redeliveries are not counted)",
            Unit::Seconds,
            m.queue_wait.clone(),
        );
        registry.register_with_unit(
            "stage_duration",
            "Time per stage of a job: download, render (decode, operations, encode), store, status",
            Unit::Seconds,
            m.stages.clone(),
        );
        registry.register(
            "job_slots",
            "Jobs this processor runs at once at most (DARKROOM_CONCURRENCY)",
            m.slots.clone(),
        );
        registry.register("job_slots_busy", "Job slots working on a job now", m.busy.clone());
        registry.register(
            "visibility_extensions",
            "Times a running job's message was kept hidden longer (the visibility heartbeat)",
            m.extensions.clone(),
        );
        // Known series start at zero, so they are there (and rate() works) before the first job.
        for stage in [Stage::Download, Stage::Render, Stage::Store, Stage::Status] {
            let _ = m.stages.get_or_create(&StageLabels { stage });
        }
        for reason in [RetryReason::Error, RetryReason::Released] {
            let _ = m.retried.get_or_create(&ReasonLabels { reason });
        }
        Metrics { registry, ..m }
    }

    /// The exposition.
    pub fn render(&self) -> String {
        exposition(&self.registry)
    }

    /// A message came from the job queue; `queue_wait` is the time since its `submitted_at`
    /// (the value the job's `job received` log line says), observed for first attempts only.
    pub fn received(&self, attempt: u32, queue_wait: Option<Duration>) {
        self.received.inc();
        if let (1, Some(waited)) = (attempt, queue_wait) {
            self.queue_wait.observe(waited.as_secs_f64());
        }
    }
    pub fn done(&self) {
        self.done.inc();
    }
    pub fn failed(&self, code: &str) {
        self.failed.get_or_create(&CodeLabels { code: code.to_string() }).inc();
    }
    pub fn retried(&self, reason: RetryReason) {
        self.retried.get_or_create(&ReasonLabels { reason }).inc();
    }
    pub fn stage(&self, stage: Stage, took: Duration) {
        self.stages.get_or_create(&StageLabels { stage }).observe(took.as_secs_f64());
    }
    pub fn set_slots(&self, slots: usize) {
        self.slots.set(slots as i64);
    }
    pub fn visibility_extended(&self) {
        self.extensions.inc();
    }
    /// Slots working on a job now.
    pub fn busy_slots(&self) -> usize {
        self.busy.get().max(0) as usize
    }
    /// One slot is busy until the returned guard is dropped.
    pub fn busy(&'static self) -> BusySlot {
        self.busy.inc();
        BusySlot(self)
    }
}

/// A busy job slot; frees it in the gauge when dropped.
pub struct BusySlot(&'static Metrics);

impl Drop for BusySlot {
    fn drop(&mut self) {
        self.0.busy.dec();
    }
}

/// The text exposition of a registry (this one's, or the supervisor's).
pub fn exposition(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).expect("writing to a String never fails");
    out
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// This process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        let m = Metrics::new();
        m.received(1, Some(Duration::from_millis(30)));
        m.failed("decode_failed");
        m.stage(Stage::Render, Duration::from_millis(20));
        m.set_slots(2);
        let out = {
            let mut out = String::new();
            prometheus_client::encoding::text::encode(&mut out, &m.registry).unwrap();
            out
        };
        for line in [
            "# TYPE darkroom_processor_jobs_received counter",
            "darkroom_processor_jobs_received_total 1",
            "darkroom_processor_jobs_failed_total{code=\"decode_failed\"} 1",
            "# TYPE darkroom_processor_queue_wait_seconds histogram",
            "darkroom_processor_queue_wait_seconds_count 1",
            "darkroom_processor_stage_duration_seconds_count{stage=\"render\"} 1",
            "darkroom_processor_job_slots 2",
            "darkroom_processor_job_slots_busy 0",
            "darkroom_processor_jobs_retried_total{reason=\"released\"} 0",
            "darkroom_processor_stage_duration_seconds_count{stage=\"status\"} 0",
        ] {
            assert!(out.lines().any(|l| l == line), "no line {line:?} in\n{out}");
        }
    }
}
