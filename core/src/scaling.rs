//! The scaling report: what a one-machine supervisor (`darkroom-processor supervise`) writes
//! to the store at [`keys::scaling_report`](darkroom_protocol::keys::scaling_report) after every decision
//! and every few seconds, and what the web app's ops page reads, so scaling is visible where
//! the workers are. One JSON object per supervisor; the newest decisions are kept.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Most decisions a report keeps (newest last).
pub const KEEP_DECISIONS: usize = 20;

/// Which way a decision went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The supervisor started its first processors.
    Start,
    /// More processors: the backlog per processor was above the target.
    Up,
    /// Fewer processors (stopped with SIGTERM, so they drain first).
    Down,
    /// Processors that exited on their own were started again to keep the count.
    Replace,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Start => "start",
            Direction::Up => "up",
            Direction::Down => "down",
            Direction::Replace => "replace",
        }
    }
}

/// One scaling decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub at: DateTime<Utc>,
    pub direction: Direction,
    /// Processors running before and after.
    pub from: usize,
    pub to: usize,
    /// Messages visible and in flight on the job queue when it was decided.
    pub visible: u64,
    pub in_flight: u64,
    /// Why, in words ("backlog 24 over 1 processor = 24 per processor, target 4").
    pub reason: String,
}

/// What one supervisor is doing now and what it decided last.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScalingReport {
    /// The supervisor's name (host-pid unless set).
    pub supervisor: String,
    pub min: usize,
    pub max: usize,
    /// Backlog (visible + in-flight job messages) each processor should have at most.
    pub target_backlog: u64,
    /// Processors taking jobs now (draining ones not counted).
    pub processes: usize,
    /// Processors stopping (SIGTERM sent, finishing their jobs).
    pub draining: usize,
    pub visible: u64,
    pub in_flight: u64,
    pub updated_at: DateTime<Utc>,
    /// The supervisor is stopping (or has stopped): its processors are going away.
    #[serde(default)]
    pub stopped: bool,
    /// Newest last, at most [`KEEP_DECISIONS`].
    pub decisions: Vec<Decision>,
}

impl ScalingReport {
    /// Add a decision, dropping the oldest beyond [`KEEP_DECISIONS`].
    pub fn record(&mut self, decision: Decision) {
        self.decisions.push(decision);
        let extra = self.decisions.len().saturating_sub(KEEP_DECISIONS);
        self.decisions.drain(..extra);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_keeps_the_newest_decisions() {
        let mut r = ScalingReport {
            supervisor: "s".into(),
            min: 1,
            max: 4,
            target_backlog: 2,
            processes: 1,
            draining: 0,
            visible: 0,
            in_flight: 0,
            updated_at: Utc::now(),
            stopped: false,
            decisions: vec![],
        };
        for i in 0..KEEP_DECISIONS + 5 {
            r.record(Decision {
                at: Utc::now(),
                direction: Direction::Up,
                from: i,
                to: i + 1,
                visible: 0,
                in_flight: 0,
                reason: String::new(),
            });
        }
        assert_eq!(r.decisions.len(), KEEP_DECISIONS);
        assert_eq!(r.decisions[0].from, 5);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""direction":"up""#), "{json}");
        assert_eq!(serde_json::from_str::<ScalingReport>(&json).unwrap(), r);
    }
}
