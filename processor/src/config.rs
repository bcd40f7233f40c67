//! The processor's settings (`darkroom-processor --help`): typed clap arguments, each with its
//! `DARKROOM_*` environment variable (listed in the README's configuration table). Its own
//! module so the receive loop (crate::worker) reads them without importing the crate root.

use std::time::Duration;

use clap::Parser;
use darkroom_core::config::{BackendArgs, LimitArgs, AWS_HELP};

/// darkroom-processor: takes jobs from the job queue, edits the photos, stores the outputs and
/// reports to the reply queue. Run as many as you like; each takes up to --concurrency jobs.
/// `darkroom-processor supervise --help`: run between --min and --max of them on this
/// machine, scaled on the job queue's backlog.
#[derive(Parser, Clone, Debug)]
#[command(name = "darkroom-processor", version, after_help = AWS_HELP)]
pub struct Config {
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Jobs processed at once (default: the number of CPU cores).
    #[arg(long, env = "DARKROOM_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// Jobs taken from the queue ahead of a free slot: their originals download while the
    /// slots render, so no slot waits on the store or the queue between jobs. `0` takes a job
    /// only when a slot is free (fairer when many processors share a short queue).
    #[arg(long, env = "DARKROOM_PREFETCH", default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=16))]
    pub prefetch: u64,
    /// This worker's name in statuses and logs (default: host-pid).
    #[arg(long, env = "DARKROOM_WORKER_ID")]
    pub worker_id: Option<String>,
    /// Seconds to finish in-flight jobs after SIGTERM/Ctrl-C before giving them back to the queue.
    #[arg(long, env = "DARKROOM_SHUTDOWN_GRACE", default_value_t = 30)]
    pub shutdown_grace: u64,
    /// Seconds the image work of one job may take before it fails with `time_limit`.
    #[arg(long, env = "DARKROOM_JOB_TIME_LIMIT", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    pub job_time_limit: u64,
    /// Most memory (address space) the image work of one job may use, e.g. `2GiB`, `1536MiB`
    /// or bytes; `0` for no cap. A job over it fails with `memory_limit`; the processor and
    /// its other jobs are not affected (each job runs in a child process).
    #[arg(long, env = "DARKROOM_JOB_MEMORY_LIMIT", default_value = "2GiB", value_parser = parse_size)]
    pub job_memory_limit: u64,
    /// Seconds between this worker's presence messages on the reply queue (it also sends one at
    /// start and one when stopped), so the ops page lists idle workers and notices lost ones;
    /// `0` sends none (for web apps older than presence messages, which log each one).
    #[arg(long, env = "DARKROOM_WORKER_HEARTBEAT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub worker_heartbeat: u64,
    /// Long-poll wait in seconds (SQS allows at most 20).
    #[arg(long, env = "DARKROOM_POLL_WAIT", default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=20))]
    pub poll_wait: u64,
    /// Address of the probe port (`/livez`, `/readyz`), e.g. 0.0.0.0:9090; off when unset.
    #[arg(long, env = "DARKROOM_PROCESSOR_BIND")]
    pub processor_bind: Option<std::net::SocketAddr>,
    /// Print what this build's image engine supports (HEIC, AVIF, the libjpeg-turbo fast paths)
    /// as JSON and exit; with `--require-complete`, exit 1 when anything is missing.
    #[arg(long)]
    pub engine_info: bool,
    #[arg(long, requires = "engine_info")]
    pub require_complete: bool,
}

impl Config {
    pub fn concurrency(&self) -> usize {
        self.concurrency.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1)
    }
    /// Jobs held at once: the slots and the prefetched ones.
    pub fn jobs_in_hand(&self) -> usize {
        self.concurrency() + self.prefetch as usize
    }
    pub fn worker_id(&self) -> String {
        self.worker_id.clone().unwrap_or_else(darkroom_core::worker_id::default_worker_id)
    }
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace)
    }
}

/// `2GiB`, `512MiB`, `64KiB`, `2g`, `512m` or a number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("expected a size like 2GiB or 512MiB, got {text:?}"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" | "kb" => 10,
        "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        _ => return Err(format!("unknown unit in {text:?}; use KiB, MiB or GiB")),
    };
    n.checked_mul(1 << shift).ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_parse() {
        assert_eq!(super::parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(super::parse_size("1536MiB"), Ok(1536 << 20));
        assert_eq!(super::parse_size("512m"), Ok(512 << 20));
        assert_eq!(super::parse_size("0"), Ok(0));
        assert!(super::parse_size("lots").is_err());
        assert!(super::parse_size("2TiB").is_err());
    }
}
