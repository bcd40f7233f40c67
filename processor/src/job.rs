//! One job, from claim check to final status.
//!
//! Order matters for "never lose a job": post `processing`, render, store every output, post
//! the final status, and only then delete the message. A crash anywhere before the delete
//! leaves the message to reappear for another worker.
//!
//! The steps, each a function below, in the order a job meets them: [`handle`] reads the
//! message; `reannounce` finds what an earlier attempt stored; `attempt` posts `processing`
//! and runs the `work` under the visibility heartbeat and the release flag; the work is
//! `check` (cancel marker, size) → `fetch` (original, logos) → `render` (in the sandbox,
//! each output stored as it comes) → `store_manifest`; `report` turns the result into the
//! job's final status (`finish`) or gives the job back to the queue (`retry_later`,
//! `release_job`, `give_back`). What a failure means is decided in [`crate::failure`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use darkroom_core::misconfig::Misconfiguration;
use darkroom_core::queue::{JobQueue, QueueError, Received};
use darkroom_core::store::{ObjectStore, StoreError};
use darkroom_engine::{self as engine, EngineError, Limits, Resources};
use darkroom_protocol::keys;
use darkroom_protocol::lifecycle::{JobError, JobState};
use darkroom_protocol::message::{JobMessage, OutputInfo};
use darkroom_protocol::trace::TraceParent;
use tracing::Instrument;

use crate::failure::{self, Failure};
use crate::heartbeat::Heartbeat;
use crate::metrics::{RetryReason, Stage};
use crate::misconfig::Guard;
use crate::sandbox::{Sandbox, SandboxError};
use crate::status::Reporter;

/// What a worker needs to handle jobs.
pub struct Context {
    pub store: Arc<dyn ObjectStore>,
    pub jobs: Arc<dyn JobQueue>,
    pub reporter: Reporter,
    pub limits: Limits,
    pub visibility: Duration,
    pub max_receives: u32,
    /// Longest the image work of one job may take.
    pub time_limit: Duration,
    /// Where the image work runs (a child process per busy slot, killed at the time limit).
    pub sandbox: Arc<Sandbox>,
    /// One permit per render slot (`--concurrency`), held only while the sandbox renders: a
    /// prefetched job downloads its original while the slots are busy (crate::worker).
    pub render_slots: Arc<tokio::sync::Semaphore>,
    /// Turns true when the shutdown grace period is over: unfinished jobs are released.
    pub release: tokio::sync::watch::Receiver<bool>,
    /// Counts configuration errors in a row (crate::misconfig).
    pub guard: Arc<Guard>,
}

/// Handle one received message. Never panics; never returns an error: every outcome is
/// logged, reported or left to the queue.
pub async fn handle(ctx: Arc<Context>, msg: Received) {
    let job = match JobMessage::from_json_with_limits(&msg.body, &ctx.limits) {
        Ok(job) => job,
        Err(e) => {
            crate::metrics::get().received(msg.receive_count, None);
            let excerpt: String = msg.body.chars().take(120).collect();
            tracing::warn!(message_id = %msg.message_id, receive_count = msg.receive_count, error = %e, body = %excerpt,
                "not a Darkroom job message; leaving it for the dead-letter queue");
            return;
        }
    };
    // This attempt is a span of the upload's trace (or starts a trace, for a job sent without
    // one); its statuses carry it back to the web app.
    let trace = TraceParent::continue_or_start(job.traceparent.as_ref());
    let span = tracing::info_span!("job", job_id = %job.job_id, attempt = msg.receive_count, worker = %ctx.reporter.worker,
        trace_id = %trace.trace_id());
    crate::status::traced(trace, handle_job(ctx, msg, job).instrument(span)).await
}

async fn handle_job(ctx: Arc<Context>, msg: Received, job: JobMessage) {
    let started = received(&msg, &job);
    if reannounce(&ctx, &msg, &job).await {
        return;
    }
    let Some(result) = attempt(&ctx, &msg, &job).await else { return };
    report(&ctx, &msg, &job, result, started).await;
}

/// Count and log the delivery; returns when handling began.
fn received(msg: &Received, job: &JobMessage) -> Instant {
    let started = Instant::now();
    // Time since the web app queued the job (on a redelivery: since it was first queued).
    let queue_wait = (chrono::Utc::now() - job.submitted_at).to_std().unwrap_or(Duration::ZERO);
    crate::metrics::get().received(msg.receive_count, Some(queue_wait));
    tracing::info!(outputs = job.outputs.len(), queue_wait_ms = queue_wait.as_millis() as u64, "job received");
    started
}

/// Idempotency: an earlier attempt may have stored everything and died before reporting.
/// Then re-announce `done` without rendering again, and return true.
async fn reannounce(ctx: &Context, msg: &Received, job: &JobMessage) -> bool {
    // A first delivery has no earlier attempt, so it skips the store round trip; were the
    // count wrong (SQS calls it approximate), the job would only be rendered again into the
    // same keys.
    match if msg.receive_count > 1 { already_done(ctx, job).await } else { Ok(None) } {
        Ok(Some((outputs, preview))) => {
            tracing::info!("outputs already stored by an earlier attempt; re-announcing `done`");
            let note = "outputs were already stored by an earlier attempt; re-announced without processing again";
            finish(ctx, msg, job, JobState::Done, (outputs, preview), None, Some(note.into())).await;
            true
        }
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(error = %e, "could not check for earlier outputs; processing");
            false
        }
    }
}

/// Post `processing` and do the [`work`] while the heartbeat keeps the message hidden. `None`
/// when the attempt was interrupted and has been dealt with: its message lost (nothing is
/// published) or released at shutdown ([`release_job`]).
async fn attempt(ctx: &Context, msg: &Received, job: &JobMessage) -> Option<Result<Results, Failure>> {
    let heartbeat = Heartbeat::start(ctx.jobs.clone(), msg.receipt.clone(), ctx.visibility);
    let (result, interrupted) = watched(ctx, msg, job, &heartbeat).await;
    match interrupted {
        Some(Interrupt::Lost) => {
            tracing::warn!("lost the job's message while working; stopped the work and publishing nothing");
            return None;
        }
        Some(Interrupt::Released) => {
            heartbeat.stop();
            release_job(ctx, msg, job).await;
            return None;
        }
        None => {}
    }
    if !heartbeat.stop() {
        tracing::warn!("lost the job's message while working; publishing nothing");
        return None;
    }
    Some(result)
}

/// Run the work to its end, posting `processing` meanwhile, and stop it early when the
/// heartbeat loses the message or the worker releases its jobs.
async fn watched(
    ctx: &Context,
    msg: &Received,
    job: &JobMessage,
    heartbeat: &Heartbeat,
) -> (Result<Results, Failure>, Option<Interrupt>) {
    // `processing` is posted while the work starts, not before it: its round trip to the reply
    // queue overlaps the download and the render. It is always sent before any later status.
    let processing = post_processing(ctx, msg, job);
    tokio::pin!(processing);
    let mut posted = false;

    // The image work runs to its end: when the job is released or its message lost, the
    // sandbox is told to stop, and this waits until its child is gone before the slot is free.
    let mut release = ctx.release.clone();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let work = work_retrying(ctx, job, stopped);
    tokio::pin!(work);
    let mut interrupted = None;
    let result = loop {
        tokio::select! {
            () = &mut processing, if !posted => {
                posted = true;
                // The chaos tests' "crash during a job": after `processing`, as a real one would be seen.
                crash_hook(job);
            }
            r = &mut work => break r,
            _ = heartbeat.lost(), if interrupted.is_none() => {
                interrupted = Some(Interrupt::Lost);
                let _ = stop.send(true);
            }
            _ = async {
                if release.wait_for(|r| *r).await.is_err() {
                    std::future::pending::<()>().await // the worker is gone; nothing will ask
                }
            }, if interrupted.is_none() => {
                interrupted = Some(Interrupt::Released);
                let _ = stop.send(true);
            }
        }
    };
    if !posted {
        processing.await;
        crash_hook(job);
    }
    (result, interrupted)
}

/// Post `processing`; a failure is logged (and counted when it is a configuration error), the
/// work goes on.
async fn post_processing(ctx: &Context, msg: &Received, job: &JobMessage) {
    let sent = ctx.reporter.send(&job.job_id, JobState::Processing, msg.receive_count, vec![], None, None).await;
    if let Err(e) = sent {
        if let Some(m) = e.misconfiguration() {
            ctx.guard.record(m);
        }
        tracing::warn!(error = %e, "could not post `processing`; continuing");
    }
}

/// Act on the attempt's result: the final status for a job that is done, failed or
/// cancelled; back to the queue for one worth another attempt.
async fn report(ctx: &Context, msg: &Received, job: &JobMessage, result: Result<Results, Failure>, started: Instant) {
    let attempt = msg.receive_count;
    let last = attempt >= ctx.max_receives;
    let (state, outputs, error) = match result {
        Ok(rendered) => {
            tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "job done");
            (JobState::Done, rendered, None)
        }
        Err(Failure::Permanent(e)) => {
            tracing::info!(code = %e.code, reason = %e.message, "job failed permanently");
            (JobState::Failed, (vec![], None), Some(e))
        }
        Err(Failure::Configuration(m)) if last => {
            // The last delivery: failed with what is wrong rather than dead-lettered as `gave_up`.
            tracing::error!(error = %m, "configuration error on the job's last delivery; failing it");
            (JobState::Failed, (vec![], None), Some(failure::misconfigured(&m)))
        }
        Err(Failure::Configuration(m)) => return give_back(ctx, msg, job, &m).await,
        Err(Failure::Cancelled) => {
            tracing::info!("the job was cancelled by its owner; skipped without rendering");
            let note = "cancelled by its owner before processing; skipped by the worker".to_string();
            return finish(ctx, msg, job, JobState::Cancelled, (vec![], None), None, Some(note)).await;
        }
        Err(Failure::Transient(detail) | Failure::Crash(detail)) if last => {
            tracing::error!(%detail, "giving up after {attempt} attempts");
            (JobState::Failed, (vec![], None), Some(failure::gave_up(attempt, &detail)))
        }
        Err(Failure::Transient(detail) | Failure::Crash(detail)) => return retry_later(ctx, msg, job, &detail).await,
    };
    finish(ctx, msg, job, state, outputs, error, None).await;
}

/// The attempt failed but the job may yet succeed: post `retrying` and let the queue deliver
/// the job again after a backoff that doubles with each attempt (2 s, 4 s, … at most 60 s).
async fn retry_later(ctx: &Context, msg: &Received, job: &JobMessage, detail: &str) {
    let attempt = msg.receive_count;
    let backoff = Duration::from_secs(2u64.saturating_pow(attempt).min(60));
    tracing::warn!(%detail, retry_in_s = backoff.as_secs(), "attempt failed; the queue will redeliver the job");
    let note = format!("attempt {attempt} failed: {detail}; retrying in {} s", backoff.as_secs());
    if let Err(e) = ctx.reporter.send(&job.job_id, JobState::Retrying, attempt, vec![], None, Some(note)).await {
        tracing::warn!(error = %e, "could not post `retrying`");
    }
    crate::metrics::get().retried(RetryReason::Error);
    if let Err(e) = ctx.jobs.change_visibility(&msg.receipt, backoff).await {
        tracing::warn!(error = %e, "could not set the retry delay; the visibility timeout will apply");
    }
}

/// Why a job's work was stopped before it ended.
enum Interrupt {
    /// The heartbeat could not extend the message's visibility: another worker may have it.
    Lost,
    /// The worker is shutting down and the grace period is over.
    Released,
}

/// A job's outputs and its preview (absent when the sandbox pass made none).
type Results = (Vec<OutputInfo>, Option<OutputInfo>);

/// Post the final status, then delete the message (in that order: a crash between the two
/// redelivers the job, which re-announces or fails again; never the other way round).
async fn finish(
    ctx: &Context,
    msg: &Received,
    job: &JobMessage,
    state: JobState,
    results: Results,
    error: Option<JobError>,
    note: Option<String>,
) {
    let code = error.as_ref().map(|e| e.code.to_string());
    let posting = Instant::now();
    let sent = post_final(ctx, msg, job, state, results, error, note).await;
    let metrics = crate::metrics::get();
    metrics.stage(Stage::Status, posting.elapsed());
    if let Err(e) = sent {
        if e.misconfiguration().is_some() {
            // Another processor may be configured right: the outputs are stored, so it only
            // re-announces them. Now, not after the visibility timeout.
            tracing::error!(error = %e, "could not post the final status; giving the job back to the queue");
            if let Err(e) = ctx.jobs.change_visibility(&msg.receipt, Duration::ZERO).await {
                tracing::warn!(error = %e, "could not give the job back; it returns after its visibility timeout");
            }
            return;
        }
        tracing::error!(error = %e, "could not post the final status; the job will be redelivered");
        return;
    }
    ctx.guard.ok();
    match (state, code) {
        (JobState::Failed, Some(code)) => metrics.failed(&code),
        (JobState::Failed, None) => metrics.failed("unknown"),
        (JobState::Cancelled, _) => {}
        _ => metrics.done(),
    }
    if let Err(e) = ctx.jobs.delete(&msg.receipt).await {
        tracing::warn!(error = %e, "could not delete the job message; it may be redelivered (it will re-announce its result)");
    }
}

/// Send the final status; a misconfigured reply queue is tried again in hand (the job keeps
/// its delivery) until the guard trips or [`LIMIT`](crate::misconfig::LIMIT) tries.
async fn post_final(
    ctx: &Context,
    msg: &Received,
    job: &JobMessage,
    state: JobState,
    (outputs, preview): Results,
    error: Option<JobError>,
    note: Option<String>,
) -> Result<(), QueueError> {
    let mut tries = 0;
    loop {
        let sent = ctx
            .reporter
            .send_with_preview(
                &job.job_id,
                state,
                msg.receive_count,
                outputs.clone(),
                preview.clone(),
                error.clone(),
                note.clone(),
            )
            .await;
        if let Err(Some(m)) = sent.as_ref().map_err(|e| e.misconfiguration()) {
            tries += 1;
            if !ctx.guard.record(m) && tries < crate::misconfig::LIMIT as u32 && ctx.guard.pause(tries).await {
                continue;
            }
        }
        return sent;
    }
}

/// The worker is stopping and this job did not finish within the grace period: make its
/// message visible at once so another worker takes it now, not after the visibility timeout.
async fn release_job(ctx: &Context, msg: &Received, job: &JobMessage) {
    // `retrying` first: once the message is visible, the next attempt's `processing` must not
    // be overtaken by this older attempt's status.
    let note = format!("released: {} is shutting down; another worker takes the job", ctx.reporter.worker);
    let sent = ctx.reporter.send(&job.job_id, JobState::Retrying, msg.receive_count, vec![], None, Some(note));
    if let Err(e) = sent.await {
        tracing::warn!(error = %e, "could not post `retrying` for the released job");
    }
    crate::metrics::get().retried(RetryReason::Released);
    match ctx.jobs.change_visibility(&msg.receipt, Duration::ZERO).await {
        Ok(()) => tracing::info!("released the unfinished job to the queue"),
        Err(e) => {
            tracing::warn!(error = %e, "could not release the job; it returns after its visibility timeout");
        }
    }
}

/// This processor is misconfigured (crate::misconfig): give the job back to the queue at once
/// for another processor, with a note on its timeline, instead of failing it.
async fn give_back(ctx: &Context, msg: &Received, job: &JobMessage, error: &Misconfiguration) {
    let note = format!(
        "attempt {} on {}: {error}; given back to the queue for another worker",
        msg.receive_count, ctx.reporter.worker
    );
    let sent = ctx.reporter.send(&job.job_id, JobState::Retrying, msg.receive_count, vec![], None, Some(note));
    if let Err(e) = sent.await {
        tracing::warn!(error = %e, "could not post `retrying` for the job given back");
    }
    crate::metrics::get().retried(RetryReason::Configuration);
    match ctx.jobs.change_visibility(&msg.receipt, Duration::ZERO).await {
        Ok(()) => tracing::warn!(error = %error, "gave the job back to the queue: this processor is misconfigured"),
        Err(e) => tracing::warn!(error = %e, "could not give the job back; it returns after its visibility timeout"),
    }
}

/// [`work`], tried again in hand after a configuration error (the job keeps its delivery)
/// until it happened [`LIMIT`](crate::misconfig::LIMIT) times or the guard trips.
async fn work_retrying(
    ctx: &Context,
    job: &JobMessage,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Results, Failure> {
    let mut tries = 0;
    loop {
        let error = match work(ctx, job, stop.clone()).await {
            Err(Failure::Configuration(m)) => m,
            other => return other,
        };
        tries += 1;
        if ctx.guard.record(&error) || tries >= crate::misconfig::LIMIT as u32 {
            return Err(Failure::Configuration(error));
        }
        let mut stopped = stop.clone();
        let again = tokio::select! {
            again = ctx.guard.pause(tries) => again,
            _ = stopped.wait_for(|s| *s) => false,
        };
        if !again {
            return Err(Failure::Configuration(error));
        }
        tracing::info!(tries, "trying the job again after a configuration error");
    }
}

/// The outputs an earlier attempt stored, if it stored all of them (its manifest exists and
/// names every output this job asks for), with the preview it made (listed in the manifest
/// under [`keys::PREVIEW_NAME`]; a manifest from before previews has none).
async fn already_done(ctx: &Context, job: &JobMessage) -> Result<Option<Results>, StoreError> {
    let bytes = match ctx.store.get(&keys::output_manifest(&job.job_id)).await {
        Ok(b) => b,
        Err(StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Ok(mut outputs) = serde_json::from_slice::<Vec<OutputInfo>>(&bytes) else {
        tracing::warn!("unreadable output manifest; processing again");
        return Ok(None);
    };
    let preview = outputs.iter().position(|o| o.name == keys::PREVIEW_NAME).map(|i| outputs.remove(i));
    let complete = job.outputs.len() == outputs.len()
        && job.outputs.iter().all(|spec| outputs.iter().any(|o| o.name == spec.name && o.format == spec.format));
    Ok(complete.then_some((outputs, preview)))
}

/// The work of one attempt: check → fetch → render (storing each output) → store the manifest.
async fn work(ctx: &Context, job: &JobMessage, stop: tokio::sync::watch::Receiver<bool>) -> Result<Results, Failure> {
    let metrics = crate::metrics::get();
    let downloading = Instant::now();
    check(ctx, job).await?;
    let (input, resources) = fetch(ctx, job).await?;
    metrics.stage(Stage::Download, downloading.elapsed());
    let (results, stored_for) = render(ctx, job, &input, &resources, stop).await?;
    let t = Instant::now();
    store_manifest(ctx, job, &results).await?;
    metrics.stage(Stage::Store, stored_for + t.elapsed());
    after_outputs_hook(job);
    Ok(results)
}

/// Before anything is read: is the job cancelled, and is its original within the upload limit?
async fn check(ctx: &Context, job: &JobMessage) -> Result<(), Failure> {
    // The original's size from its metadata first: an object over the upload limit (put there
    // by someone else than the web app) is refused without being read.
    // The cancel marker is asked for at the same time as the original's size, so checking
    // it adds no round trip; a cancelled job stops here, before anything is read or rendered.
    let marker = keys::cancel_marker(&job.job_id);
    let (cancelled, info) = tokio::join!(ctx.store.head(&marker), ctx.store.head(&job.original_key));
    if cancelled?.is_some() {
        return Err(Failure::Cancelled);
    }
    if let Some(info) = info? {
        ctx.limits.check_bytes(info.size as usize).map_err(EngineError::from)?;
    }
    Ok(())
}

/// Download the original and the objects its recipe refers to (crate::resources).
async fn fetch(ctx: &Context, job: &JobMessage) -> Result<(Bytes, Resources), Failure> {
    let input = ctx.store.get(&job.original_key).await?;
    let resources = crate::resources::fetch(&*ctx.store, &job.outputs).await?;
    Ok((input, resources))
}

/// Render the job's outputs and its preview in the sandbox, once a render slot is free, and
/// store each output as soon as the sandbox hands it over. Returns the outputs and how long
/// storing them took (counted apart from the render).
async fn render(
    ctx: &Context,
    job: &JobMessage,
    input: &[u8],
    resources: &Resources,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(Results, Duration), Failure> {
    let metrics = crate::metrics::get();
    // Outputs are stored while the sandbox works: their store time is counted apart.
    let storing = Arc::new(std::sync::Mutex::new(Duration::ZERO));
    let mut outputs = Vec::with_capacity(job.outputs.len());
    let mut preview = None;
    // Each output is stored as soon as the sandbox hands it over; the preview is one of them.
    let store_output = |r: engine::Rendered| {
        let is_preview = r.name == keys::PREVIEW_NAME;
        let key = if is_preview { keys::preview(&job.job_id) } else { keys::output(&job.job_id, &r.name, r.format) };
        let bytes = r.bytes.len() as u64;
        let info =
            OutputInfo { name: r.name, key: key.clone(), format: r.format, width: r.width, height: r.height, bytes };
        if is_preview {
            preview = Some(info);
        } else {
            outputs.push(info);
        }
        let store = ctx.store.clone();
        let storing = storing.clone();
        async move {
            let t = Instant::now();
            let stored = store.put(&key, Bytes::from(r.bytes), r.format.mime()).await;
            *storing.lock().unwrap() += t.elapsed();
            stored
        }
    };
    // Wait for a render slot (a prefetched job waits here with its original in hand); a job
    // released meanwhile goes back without rendering.
    let mut released = stop.clone();
    let _slot = tokio::select! {
        permit = ctx.render_slots.clone().acquire_owned() => permit.expect("the render slots are never closed"),
        Ok(_) = released.wait_for(|s| *s) => return Err(SandboxError::Stopped.into()),
    };
    let _busy = metrics.busy();
    let rendering = Instant::now();
    // The preview is one more output of the same pass: it shares the decode.
    let specs = crate::preview::with_preview(&job.outputs);
    let rendered = ctx.sandbox.render(input, &specs, &ctx.limits, resources, ctx.time_limit, stop, store_output).await;
    // Counted whether the work succeeded or not: a failed render took its time too.
    let stored_for = *storing.lock().unwrap();
    metrics.stage(Stage::Render, rendering.elapsed().saturating_sub(stored_for));
    rendered?;
    Ok(((outputs, preview), stored_for))
}

/// The manifest last: its presence says every output (and the preview) is stored
/// ([`already_done`] reads it on a redelivery).
async fn store_manifest(ctx: &Context, job: &JobMessage, (outputs, preview): &Results) -> Result<(), Failure> {
    let listed: Vec<&OutputInfo> = outputs.iter().chain(preview.as_ref()).collect();
    let manifest = serde_json::to_vec(&listed).expect("output infos serialize");
    ctx.store.put(&keys::output_manifest(&job.job_id), Bytes::from(manifest), "application/json").await?;
    Ok(())
}

/// Test hook (debug builds only): abort the whole process, like a segfault or the OOM killer,
/// when a job asks for an output named as `DARKROOM_TEST_ABORT_ON_OUTPUT` says. The chaos
/// tests use it to make a poison job.
fn crash_hook(job: &JobMessage) {
    if cfg!(debug_assertions) {
        if let Ok(name) = std::env::var("DARKROOM_TEST_ABORT_ON_OUTPUT") {
            if job.outputs.iter().any(|o| o.name == name) {
                tracing::error!("test hook: aborting the process");
                std::process::abort();
            }
        }
    }
}

/// Test hook (debug builds only): abort the process after a job's outputs and manifest are
/// stored but before `done` is posted, when its output is named as
/// `DARKROOM_TEST_ABORT_AFTER_OUTPUTS` says. Only the first attempt gets here: the next one
/// finds the manifest and re-announces. The idempotency test uses it.
fn after_outputs_hook(job: &JobMessage) {
    if cfg!(debug_assertions) {
        if let Ok(name) = std::env::var("DARKROOM_TEST_ABORT_AFTER_OUTPUTS") {
            if job.outputs.iter().any(|o| o.name == name) {
                tracing::error!("test hook: aborting the process after storing the outputs");
                std::process::abort();
            }
        }
    }
}
