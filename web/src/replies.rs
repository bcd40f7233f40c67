//! The reply-queue consumer: applies every worker status to the job book, then deletes it;
//! hands every worker presence to the ops page's [`Registry`] and deletes it (presence is
//! news for a few seconds only, so it is never replayed). Anything else is logged and deleted.
//!
//! A status is deleted only after it is stored, so a crash of the web app replays it;
//! duplicates and late arrivals are harmless (see [`crate::jobs`]).

use std::sync::Arc;

use darkroom_core::message::Reply;
use darkroom_core::queue::JobQueue;
use tokio::sync::watch;

use crate::jobs::{Applied, JobBook};
use crate::workers::Registry;

pub async fn run(
    queue: Arc<dyn JobQueue>,
    book: Arc<JobBook>,
    registry: Arc<Registry>,
    shutdown: watch::Receiver<bool>,
) {
    let q = queue.clone();
    crate::consume::each_batch(queue, shutdown, |messages| {
        let (queue, book, registry) = (q.clone(), book.clone(), registry.clone());
        async move {
            for msg in messages {
                match Reply::from_json(&msg.body) {
                    Err(e) => {
                        let excerpt: String = msg.body.chars().take(120).collect();
                        tracing::warn!(error = %e, body = %excerpt, "dropping a reply that is not a Darkroom status or presence message");
                    }
                    Ok(Reply::Presence(p)) => {
                        if !registry.presence(&p.bounded()) {
                            tracing::debug!("an older presence of a worker ignored");
                        }
                    }
                    Ok(Reply::Status(status)) => match book.apply(&status).await.inspect(|applied| {
                        crate::metrics::get().status(status.state, *applied == Applied::Changed)
                    }) {
                        Ok(Applied::Changed) => tracing::info!(
                            job_id = %status.job_id,
                            state = status.state.as_str(),
                            attempt = status.attempt,
                            worker = %status.worker,
                            "status applied"
                        ),
                        Ok(Applied::Ignored) => tracing::debug!(job_id = %status.job_id, "duplicate or stale status ignored"),
                        Ok(Applied::UnknownJob) => tracing::info!(
                            job_id = %status.job_id,
                            state = status.state.as_str(),
                            "status for a job this web app did not create (submitted from outside)"
                        ),
                        Err(e) => {
                            tracing::warn!(error = %e, job_id = %status.job_id, "could not store a status; it will be redelivered");
                            continue;
                        }
                    },
                }
                if let Err(e) = queue.delete(&msg.receipt).await {
                    tracing::warn!(error = %e, "could not delete a reply; it may be applied twice (harmless)");
                }
            }
        }
    })
    .await
}
