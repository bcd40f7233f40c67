//! Cross-process wake-ups for the embedded queues, so a long poll returns as soon as a message
//! arrives instead of after a fixed sleep.
//!
//! Each queue has a doorbell file in `{data_dir}/doorbells/`. Whoever makes a message visible
//! (send, release, redrive) writes to it after committing; every process watches the folder
//! (inotify on Linux, through the `notify` crate) and wakes its waiters for that queue. Waiters
//! in the sending process are woken directly as well. Without a watcher (unsupported file
//! system) waiters fall back to polling every [`FALLBACK_POLL`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::Notify;

/// Poll period when no file watcher could be set up.
pub const FALLBACK_POLL: Duration = Duration::from_millis(100);

type Bells = Arc<Mutex<HashMap<String, Arc<Notify>>>>;

pub struct Doorbell {
    dir: PathBuf,
    bells: Bells,
    watcher: Option<notify::RecommendedWatcher>,
}

fn bell(bells: &Bells, queue: &str) -> Arc<Notify> {
    bells.lock().unwrap().entry(queue.to_string()).or_default().clone()
}

impl Doorbell {
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let bells: Bells = Arc::default();
        let watched = bells.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            for path in &event.paths {
                if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                    // Only wake queues someone in this process waits on.
                    let found = watched.lock().unwrap().get(name).cloned();
                    if let Some(n) = found {
                        n.notify_waiters();
                    }
                }
            }
        })
        .and_then(|mut w| w.watch(dir, RecursiveMode::NonRecursive).map(|_| w));
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch {}; embedded long polls fall back to polling", dir.display());
                None
            }
        };
        Ok(Doorbell { dir: dir.to_path_buf(), bells, watcher })
    }

    /// The notifier waiters on `queue` in this process wait on.
    pub fn bell(&self, queue: &str) -> Arc<Notify> {
        bell(&self.bells, queue)
    }

    /// Does a file watcher deliver wake-ups from other processes?
    pub fn is_watching(&self) -> bool {
        self.watcher.is_some()
    }

    /// Remove `queue`'s doorbell file (the queue is gone).
    pub fn forget(&self, queue: &str) {
        self.bells.lock().unwrap().remove(queue);
        let _ = std::fs::remove_file(self.dir.join(queue));
    }

    /// Wake every waiter on `queue`, in every process.
    pub fn ring(&self, queue: &str) {
        bell(&self.bells, queue).notify_waiters();
        if let Err(e) = std::fs::write(self.dir.join(queue), b"1") {
            tracing::warn!(error = %e, queue, "cannot ring the doorbell; other processes will notice the message a little later");
        }
    }
}
