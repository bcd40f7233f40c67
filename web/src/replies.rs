//! The reply-queue consumer: applies every worker status to the job book, then deletes it;
//! hands every worker presence to the admin page's [`Registry`] and deletes it (presence is
//! news for a few seconds only, so it is never replayed). Anything else is logged and deleted.
//!
//! With several replicas each takes a share of the queue (competing consumers); a presence is
//! passed on to the others as a change notice ([`crate::replicas`]), a status reaches them as
//! the change it makes to its job.
//!
//! A status is deleted only after it is stored, so a crash of the web app replays it;
//! duplicates and late arrivals are harmless (see [`crate::jobs`]).

use std::sync::Arc;

use darkroom_core::fanout::ChangeNotice;
use darkroom_core::queue::JobQueue;
use darkroom_core::store::StoreError;
use darkroom_protocol::message::{Reply, StatusMessage};
use tokio::sync::watch;
use tracing::Instrument;

use crate::admin::Registry;
use crate::jobs::{Applied, JobBook};

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
                        let p = p.bounded();
                        // Every replica's ops page lists every worker.
                        book.announce(ChangeNotice::Presence { presence: p.clone(), from: String::new() });
                        if !registry.presence(&p) {
                            tracing::debug!("an older presence of a worker ignored");
                        }
                    }
                    Ok(Reply::Status(status)) => {
                        // The lines about a status carry the trace id of the upload it answers.
                        let trace_id = status.traceparent.map(|t| tracing::field::display(t.trace_id()));
                        let span = tracing::info_span!("status", trace_id);
                        let applied = book.apply(&status).instrument(span.clone()).await;
                        if !span.in_scope(|| stored(&status, applied)) {
                            continue;
                        }
                    }
                }
                if let Err(e) = queue.delete(&msg.receipt).await {
                    tracing::warn!(error = %e, "could not delete a reply; it may be applied twice (harmless)");
                }
            }
        }
    })
    .await
}

/// Count and log what applying `status` did; false when it could not be stored (the reply is
/// then left on the queue, to be redelivered).
fn stored(status: &StatusMessage, applied: Result<Applied, StoreError>) -> bool {
    if let Ok(applied) = &applied {
        crate::metrics::get().status(status.state, *applied == Applied::Changed);
    }
    match applied {
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
            return false;
        }
    }
    true
}
