//! What one upload request may cost the web app, so no client can exhaust it: how many
//! uploads run at once (the rest are answered `503` with `Retry-After` at once instead of
//! queueing), how long a request body may take to arrive (a client that trickles it is cut off
//! with `408`), how large the `recipe` and `preset` parts may be (`413` while reading), and
//! where file parts are spooled on their way to the store.
//!
//! The request head is bounded by actix itself (`client_request_timeout`, set in `lib.rs`), the
//! multipart part headers by [`crate::multipart_guard`], file parts by
//! `DARKROOM_MAX_UPLOAD_BYTES` while they stream to disk ([`crate::spool`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use darkroom_core::config::{BackendArgs, BackendKind};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Settings of the upload limits (flattened into the web app's command line).
#[derive(clap::Args, Clone, Debug)]
pub struct UploadArgs {
    /// Upload requests (photos and logos) handled at once; more are answered 503 with
    /// Retry-After at once. Each holds a small buffer in memory and its files on disk.
    #[arg(long, env = "DARKROOM_MAX_CONCURRENT_UPLOADS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_concurrent_uploads: u32,
    /// Seconds an upload's body may take to arrive; a slower one is cut off with 408.
    #[arg(long, env = "DARKROOM_UPLOAD_TIMEOUT", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub upload_timeout: u64,
    /// Largest `recipe` (or `preset`) part of an upload, in bytes; larger ones are refused with
    /// 413 before the rest is read.
    #[arg(long, env = "DARKROOM_MAX_RECIPE_BYTES", default_value_t = 64 * 1024, value_parser = clap::value_parser!(u64).range(1..=16 * 1024 * 1024))]
    pub max_recipe_bytes: u64,
    /// Folder for uploads on their way to the store. Default: `tmp/uploads` in the data folder
    /// on the embedded backend (same file system as the objects: no copy), the system's temp
    /// folder otherwise.
    #[arg(long, env = "DARKROOM_UPLOAD_TMP_DIR")]
    pub upload_tmp_dir: Option<PathBuf>,
}

impl UploadArgs {
    /// The spool folder for this backend (see `upload_tmp_dir`).
    pub fn spool_dir(&self, backend: &BackendArgs) -> PathBuf {
        match (&self.upload_tmp_dir, backend.kind()) {
            (Some(dir), _) => dir.clone(),
            (None, BackendKind::Embedded) => backend.data_dir.join("tmp").join("uploads"),
            (None, BackendKind::Aws) => std::env::temp_dir().join("darkroom-uploads"),
        }
    }
}

/// The limits in force, shared by every upload handler.
pub struct UploadLimits {
    slots: Arc<Semaphore>,
    pub timeout: Duration,
    pub max_recipe_bytes: u64,
    pub spool_dir: PathBuf,
}

/// Seconds a client refused for lack of a slot is told to wait (`Retry-After`).
pub const RETRY_AFTER_SECS: u64 = 2;

impl UploadLimits {
    /// Limits from the settings; creates the spool folder and removes what a killed run left in
    /// it: files untouched for twice the upload timeout and at least an hour (a live upload
    /// writes its file within the timeout and stores it right after).
    pub fn new(args: &UploadArgs, backend: &BackendArgs) -> std::io::Result<Self> {
        let spool_dir = args.spool_dir(backend);
        std::fs::create_dir_all(&spool_dir)?;
        let timeout = Duration::from_secs(args.upload_timeout);
        crate::spool::sweep(&spool_dir, (2 * timeout).max(Duration::from_secs(3600)));
        Ok(UploadLimits {
            slots: Arc::new(Semaphore::new(args.max_concurrent_uploads as usize)),
            timeout,
            max_recipe_bytes: args.max_recipe_bytes,
            spool_dir,
        })
    }

    /// A slot for one upload request, held until the request is done; `Busy` (503 with
    /// `Retry-After`) when every slot is taken: never waits.
    pub fn enter(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.slots.clone().try_acquire_owned().map_err(|_| ApiError::Busy { retry_after: RETRY_AFTER_SECS })
    }

    /// Slots free now (for tests and logs).
    pub fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        uploads: UploadArgs,
        #[command(flatten)]
        backend: BackendArgs,
    }

    #[test]
    fn a_full_gate_refuses_at_once_and_frees_a_slot_when_a_request_ends() {
        let dir = std::env::temp_dir().join(format!("darkroom-gate-{}", uuid::Uuid::new_v4().simple()));
        let cli = Cli::parse_from([
            "x",
            "--max-concurrent-uploads",
            "2",
            "--backend",
            "embedded",
            "--data-dir",
            dir.to_str().unwrap(),
        ]);
        let limits = UploadLimits::new(&cli.uploads, &cli.backend).unwrap();
        assert_eq!(limits.spool_dir, dir.join("tmp/uploads"));
        assert!(limits.spool_dir.is_dir());
        assert_eq!(limits.max_recipe_bytes, 64 * 1024);
        assert_eq!(limits.timeout, Duration::from_secs(120));
        let a = limits.enter().unwrap();
        let _b = limits.enter().unwrap();
        match limits.enter() {
            Err(ApiError::Busy { retry_after }) => assert_eq!(retry_after, RETRY_AFTER_SECS),
            other => panic!("a third upload must be refused at once: {:?}", other.map(|_| ())),
        }
        drop(a);
        assert!(limits.enter().is_ok(), "a finished upload gives its slot back");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
