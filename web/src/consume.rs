//! The long-poll loop the web app's queue consumers share: receive batches until shutdown,
//! backing off (0.5 s doubling to 15 s) while the queue is unreachable.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use darkroom_core::queue::{JobQueue, Received};
use tokio::sync::watch;

pub async fn each_batch<F, Fut>(queue: Arc<dyn JobQueue>, mut shutdown: watch::Receiver<bool>, mut handle: F)
where
    F: FnMut(Vec<Received>) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut backoff = Duration::from_millis(500);
    loop {
        let received = tokio::select! {
            r = queue.receive(10, Duration::from_secs(20)) => r,
            _ = shutdown.changed() => return,
        };
        match received {
            Ok(messages) => {
                backoff = Duration::from_millis(500);
                handle(messages).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, queue = queue.name(), retry_in_ms = backoff.as_millis() as u64, "receiving failed");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(15));
            }
        }
    }
}
