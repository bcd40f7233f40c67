//! The scaling rule, apart from processes and clocks so every case is a unit test: how many
//! processors the backlog asks for, and whether the cool-downs let the supervisor act now.
//!
//! Backlog is the job queue's visible plus in-flight messages: a message being worked on
//! still needs its processor, so counting only visible ones would scale in while every slot
//! is busy and scale out again a moment later. The count asked for is
//! `ceil(backlog ÷ target)`, within `min..=max` — what target tracking on "backlog per
//! instance" does on AWS and what KEDA's `queueLength` does on Kubernetes.
//!
//! Scaling out acts at once after its (short) cool-down and jumps straight to the count asked
//! for: a burst should not wait for one step per interval. Scaling in waits for the longer
//! cool-down since the last change, so a short lull between bursts does not stop processors
//! that are needed again a moment later; it also jumps, since stopped processors drain their
//! jobs (SIGTERM) and lose nothing. Below `min` (a processor exited on its own) is restored
//! at once, whatever the cool-downs.

use std::time::{Duration, Instant};

use darkroom_core::scaling::Direction;

#[derive(Clone, Debug)]
pub struct Policy {
    pub min: usize,
    pub max: usize,
    /// Backlog each processor should have at most (≥ 1).
    pub target: u64,
    pub up_cooldown: Duration,
    pub down_cooldown: Duration,
}

/// What the supervisor should do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub direction: Direction,
    pub to: usize,
    pub reason: String,
}

impl Policy {
    /// The number of processors `backlog` asks for, within `min..=max`.
    pub fn wanted(&self, backlog: u64) -> usize {
        let target = self.target.max(1);
        let wanted = backlog.div_ceil(target);
        (wanted.min(self.max as u64) as usize).max(self.min)
    }

    /// The change to make with `running` processors and this backlog, if any. `last_change`
    /// is when the count last changed up or down (None: never).
    pub fn decide(
        &self,
        running: usize,
        visible: u64,
        in_flight: u64,
        last_change: Option<Instant>,
        now: Instant,
    ) -> Option<Change> {
        let backlog = visible + in_flight;
        let per = if running == 0 { backlog as f64 } else { backlog as f64 / running as f64 };
        let why = |wanted: usize| {
            format!(
                "backlog {backlog} (visible {visible}, in flight {in_flight}) over {running} processor{} = {per:.1} each, \
                 target {} each → {wanted} (min {}, max {})",
                if running == 1 { "" } else { "s" },
                self.target,
                self.min,
                self.max
            )
        };
        if running < self.min {
            let to = self.wanted(backlog);
            if last_change.is_none() {
                return Some(Change { direction: Direction::Start, to, reason: format!("starting: {}", why(to)) });
            }
            return Some(Change {
                direction: Direction::Replace,
                to,
                reason: format!("{running} running, below the minimum {}; {}", self.min, why(to)),
            });
        }
        let wanted = self.wanted(backlog);
        let since = last_change.map(|t| now.saturating_duration_since(t));
        if wanted > running && since.is_none_or(|s| s >= self.up_cooldown) {
            return Some(Change { direction: Direction::Up, to: wanted, reason: why(wanted) });
        }
        if wanted < running && since.is_none_or(|s| s >= self.down_cooldown) {
            return Some(Change { direction: Direction::Down, to: wanted, reason: why(wanted) });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            min: 1,
            max: 4,
            target: 2,
            up_cooldown: Duration::from_secs(10),
            down_cooldown: Duration::from_secs(60),
        }
    }

    #[test]
    fn the_backlog_asks_for_processors_within_min_and_max() {
        let p = policy();
        assert_eq!(p.wanted(0), 1);
        assert_eq!(p.wanted(2), 1);
        assert_eq!(p.wanted(3), 2);
        assert_eq!(p.wanted(8), 4);
        assert_eq!(p.wanted(1000), 4);
        let zero = Policy { target: 0, ..policy() };
        assert_eq!(zero.wanted(3), 3, "a target of 0 counts as 1, never a division by zero");
    }

    #[test]
    fn a_burst_scales_out_at_once_to_what_it_asks_for() {
        let now = Instant::now();
        let c = policy().decide(1, 20, 2, None, now).expect("scale out");
        assert_eq!((c.direction, c.to), (Direction::Up, 4));
        assert!(c.reason.contains("backlog 22"), "{}", c.reason);
        assert!(c.reason.contains("22.0 each"), "{}", c.reason);
    }

    #[test]
    fn in_flight_messages_count_so_busy_processors_are_kept() {
        let now = Instant::now();
        // Nothing waiting, but 8 messages being worked on by 4 processors: keep them.
        assert_eq!(policy().decide(4, 0, 8, Some(now - Duration::from_secs(600)), now), None);
    }

    #[test]
    fn cool_downs_hold_changes_back() {
        let p = policy();
        let now = Instant::now();
        let just = Some(now - Duration::from_secs(5));
        assert_eq!(p.decide(1, 20, 0, just, now), None, "scale-out cool-down");
        assert!(p.decide(1, 20, 0, Some(now - Duration::from_secs(10)), now).is_some());
        let recent = Some(now - Duration::from_secs(30));
        assert_eq!(p.decide(4, 0, 0, recent, now), None, "scale-in waits for the longer cool-down");
        let c = p.decide(4, 0, 0, Some(now - Duration::from_secs(60)), now).expect("scale in");
        assert_eq!((c.direction, c.to), (Direction::Down, 1));
    }

    #[test]
    fn below_the_minimum_is_restored_whatever_the_cool_downs() {
        let p = Policy { min: 2, ..policy() };
        let now = Instant::now();
        let c = p.decide(1, 0, 0, Some(now), now).expect("replace");
        assert_eq!((c.direction, c.to), (Direction::Replace, 2));
        let c = p.decide(0, 6, 0, Some(now), now).expect("replace to what the backlog asks");
        assert_eq!(c.to, 3);
        let c = p.decide(0, 0, 0, None, now).expect("start");
        assert_eq!((c.direction, c.to), (Direction::Start, 2));
    }

    #[test]
    fn steady_state_changes_nothing() {
        let now = Instant::now();
        assert_eq!(policy().decide(2, 3, 1, None, now), None);
        assert_eq!(policy().decide(1, 0, 0, None, now), None);
        assert_eq!(policy().decide(4, 100, 8, None, now), None, "at max");
    }
}
