//! How the ops page classifies a worker ([`WorkerStatus`]) and the counts the metrics export
//! ([`WorkerCounts`]): a leaf, so the metrics read the registry's figures without importing it.

use std::collections::BTreeMap;

use serde::Serialize;

/// How the ops page shows a worker (see the module's documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerStatus {
    Busy,
    #[default]
    Idle,
    Stopping,
    Silent,
    Stopped,
}

impl WorkerStatus {
    pub const ALL: [WorkerStatus; 5] =
        [WorkerStatus::Busy, WorkerStatus::Idle, WorkerStatus::Stopping, WorkerStatus::Silent, WorkerStatus::Stopped];
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerStatus::Busy => "busy",
            WorkerStatus::Idle => "idle",
            WorkerStatus::Stopping => "stopping",
            WorkerStatus::Silent => "silent",
            WorkerStatus::Stopped => "stopped",
        }
    }
    /// Running: takes or finishes jobs (its slots count as capacity).
    pub fn is_live(self) -> bool {
        matches!(self, WorkerStatus::Busy | WorkerStatus::Idle | WorkerStatus::Stopping)
    }
}

/// Workers by status and their job slots, for the metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerCounts {
    pub by_status: BTreeMap<WorkerStatus, u64>,
    /// Job slots of the live (busy, idle, stopping) workers that announced them, and how many are busy.
    pub slots: u64,
    pub busy: u64,
}
