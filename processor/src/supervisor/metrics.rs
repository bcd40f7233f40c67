//! Prometheus metrics of the supervisor, served at `GET /metrics` on its port
//! (`DARKROOM_SUPERVISOR_BIND`). Its own registry and prefix (`darkroom_supervisor_`): the
//! supervisor is a separate process from the processors it runs, each of which keeps its own
//! metrics ([`crate::metrics`]).

use std::sync::LazyLock;

use darkroom_core::scaling::Direction;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct DirectionLabel(Direction);

impl EncodeLabelValue for DirectionLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.0.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: DirectionLabel,
}

/// Every metric of the supervisor.
pub struct Metrics {
    registry: Registry,
    processes: Gauge,
    draining: Gauge,
    wanted: Gauge,
    min: Gauge,
    max: Gauge,
    visible: Gauge,
    in_flight: Gauge,
    queue_up: Gauge,
    decisions: Family<DirectionLabels, Counter>,
    exited: Counter,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("darkroom_supervisor");
        let m = Metrics {
            processes: Gauge::default(),
            draining: Gauge::default(),
            wanted: Gauge::default(),
            min: Gauge::default(),
            max: Gauge::default(),
            visible: Gauge::default(),
            in_flight: Gauge::default(),
            queue_up: Gauge::default(),
            decisions: Family::default(),
            exited: Counter::default(),
            registry: Registry::default(),
        };
        registry.register("processes", "Processors taking jobs (draining ones not counted)", m.processes.clone());
        registry.register(
            "draining_processes",
            "Processors sent SIGTERM that are finishing their jobs",
            m.draining.clone(),
        );
        registry.register("wanted_processes", "Processors the backlog asks for, within min and max", m.wanted.clone());
        registry.register("min_processes", "Fewest processors kept (DARKROOM_SCALE_MIN)", m.min.clone());
        registry.register("max_processes", "Most processors started (DARKROOM_SCALE_MAX)", m.max.clone());
        registry.register(
            "queue_visible_messages",
            "Job messages waiting on the job queue at the last look",
            m.visible.clone(),
        );
        registry.register(
            "queue_in_flight_messages",
            "Job messages being worked on (hidden) at the last look",
            m.in_flight.clone(),
        );
        registry.register("queue_up", "1 if the last look at the job queue worked", m.queue_up.clone());
        registry.register(
            "scaling_decisions",
            "Scaling decisions made, by direction (start, up, down, replace)",
            m.decisions.clone(),
        );
        registry.register(
            "processes_exited",
            "Processors that exited without being asked to (crashed, killed, failed to start)",
            m.exited.clone(),
        );
        for d in [Direction::Start, Direction::Up, Direction::Down, Direction::Replace] {
            let _ = m.decisions.get_or_create(&DirectionLabels { direction: DirectionLabel(d) });
        }
        Metrics { registry, ..m }
    }

    /// The exposition.
    pub fn render(&self) -> String {
        crate::metrics::exposition(&self.registry)
    }

    pub fn bounds(&self, min: usize, max: usize) {
        self.min.set(min as i64);
        self.max.set(max as i64);
    }
    pub fn processes(&self, running: usize, draining: usize) {
        self.processes.set(running as i64);
        self.draining.set(draining as i64);
    }
    pub fn queue(&self, counts: Option<(u64, u64)>, wanted: usize) {
        self.queue_up.set(counts.is_some() as i64);
        if let Some((visible, in_flight)) = counts {
            self.visible.set(visible as i64);
            self.in_flight.set(in_flight as i64);
        }
        self.wanted.set(wanted as i64);
    }
    pub fn decided(&self, direction: Direction) {
        self.decisions.get_or_create(&DirectionLabels { direction: DirectionLabel(direction) }).inc();
    }
    pub fn exited(&self) {
        self.exited.inc();
    }
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
        m.bounds(1, 4);
        m.decided(Direction::Up);
        m.queue(Some((7, 2)), 3);
        let out = m.render();
        for line in [
            "# TYPE darkroom_supervisor_scaling_decisions counter",
            "darkroom_supervisor_scaling_decisions_total{direction=\"up\"} 1",
            "darkroom_supervisor_scaling_decisions_total{direction=\"down\"} 0",
            "darkroom_supervisor_max_processes 4",
            "darkroom_supervisor_queue_visible_messages 7",
            "darkroom_supervisor_wanted_processes 3",
            "darkroom_supervisor_queue_up 1",
        ] {
            assert!(out.lines().any(|l| l == line), "no line {line:?} in\n{out}");
        }
    }
}
