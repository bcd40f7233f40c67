//! Tests of the processor's per-job entry point, [`job::handle`], in-process: against the
//! embedded queue and store (the backend `darkroom-processor` uses without AWS), with the real
//! sandbox child (this package's own binary, as the processor runs it), and no web app. They
//! prove what the job's lifecycle promises — the statuses it posts, what it stores, whether the
//! message is deleted or left for redelivery — without starting processes of the whole system
//! as the e2e suites do.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use clap::Parser;
use darkroom_core::config::{Backend, BackendArgs};
use darkroom_core::misconfig::{Misconfiguration, Problem, Resource};
use darkroom_core::queue::Received;
use darkroom_core::store::{ObjectInfo, ObjectStore, StoreError};
use darkroom_processor::job::{self, Context};
use darkroom_processor::misconfig::Guard;
use darkroom_processor::sandbox::Sandbox;
use darkroom_processor::status::Reporter;
use darkroom_protocol::keys;
use darkroom_protocol::lifecycle::JobState;
use darkroom_protocol::message::StatusMessage;
use tokio::sync::{watch, Semaphore};

/// A small real JPEG (4:2:0), from the fuzz seeds.
const PHOTO: &[u8] = include_bytes!("../../fuzz/seeds/images/j420.jpg");

/// One processor's job context on a fresh embedded backend, and what a test needs around it:
/// submit a job, receive it as the worker loop would, hand it to [`job::handle`], read the
/// statuses it posted and what is left on the job queue.
struct TestWorker {
    backend: Backend,
    /// The store the job sees (the embedded one, or [`Faulty`] around it).
    store: Arc<dyn ObjectStore>,
    ctx: Arc<Context>,
    /// Kept so the release flag stays false (and can be raised).
    release: watch::Sender<bool>,
    /// Statuses read from the reply queue so far, in the order they were read.
    seen: Mutex<Vec<StatusMessage>>,
    _dir: TempDir,
}

/// How to build a [`TestWorker`].
struct Builder {
    name: &'static str,
    max_receives: u32,
    render_slots: usize,
    visibility_secs: u32,
    faulty: Option<Arc<Faulty>>,
}

impl TestWorker {
    fn builder(name: &'static str) -> Builder {
        Builder { name, max_receives: 3, render_slots: 1, visibility_secs: 30, faulty: None }
    }

    /// Store `original` as the job's photo and queue a job for one small JPEG output.
    async fn submit(&self, job_id: &str, original: &[u8]) {
        let key = keys::original(job_id);
        self.backend.store.put(&key, Bytes::copy_from_slice(original), "image/jpeg").await.unwrap();
        self.submit_without_original(job_id).await;
    }

    async fn submit_without_original(&self, job_id: &str) {
        let message = serde_json::json!({
            "version": 1,
            "type": "job",
            "job_id": job_id,
            "original_key": keys::original(job_id),
            "outputs": [{"name": "small", "ops": [{"op": "resize", "width": 8}], "format": "jpeg"}],
        });
        self.backend.jobs.send(&message.to_string()).await.unwrap();
    }

    /// Receive the next job message as the worker loop does, waiting up to `within`.
    async fn receive(&self, within: Duration) -> Received {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(!left.is_zero(), "no job message within {within:?}");
            let wait = left.min(Duration::from_secs(1));
            if let Some(m) = self.backend.jobs.receive(1, wait).await.unwrap().pop() {
                return m;
            }
        }
    }

    /// Receive the next job message and handle it to its end.
    async fn handle_next(&self) -> Received {
        let msg = self.receive(Duration::from_secs(5)).await;
        job::handle(self.ctx.clone(), msg.clone()).await;
        msg
    }

    /// Every status posted so far (the reply queue is read and emptied).
    async fn statuses(&self) -> Vec<StatusMessage> {
        loop {
            let got = self.backend.replies.receive(10, Duration::from_millis(100)).await.unwrap();
            if got.is_empty() {
                break;
            }
            for m in got {
                self.backend.replies.delete(&m.receipt).await.unwrap();
                self.seen.lock().unwrap().push(StatusMessage::from_json(&m.body).expect("a status message"));
            }
        }
        self.seen.lock().unwrap().clone()
    }

    async fn states(&self) -> Vec<JobState> {
        self.statuses().await.iter().map(|s| s.state).collect()
    }

    /// Job messages still on the queue, visible or in flight (0 once the job's was deleted).
    async fn messages_left(&self) -> u64 {
        let counts = self.backend.jobs.counts().await.unwrap();
        counts.visible + counts.in_flight
    }

    /// Every object stored under the job's outputs.
    async fn outputs_stored(&self, job_id: &str) -> Vec<String> {
        self.backend.store.list(&format!("outputs/{job_id}/")).await.unwrap()
    }
}

impl Builder {
    /// Deliveries before a failing job is given up (`DARKROOM_MAX_RECEIVES`).
    fn max_receives(mut self, n: u32) -> Self {
        self.max_receives = n;
        self
    }

    /// Render slots (`DARKROOM_CONCURRENCY`); 0 makes every job wait for a slot for ever.
    fn render_slots(mut self, n: usize) -> Self {
        self.render_slots = n;
        self
    }

    /// The job queue's visibility timeout (`DARKROOM_VISIBILITY_TIMEOUT`); the heartbeat
    /// extends it every third of it.
    fn visibility_secs(mut self, secs: u32) -> Self {
        self.visibility_secs = secs;
        self
    }

    /// Put [`Faulty`] between the job and the store.
    fn faulty_store(mut self, faulty: Arc<Faulty>) -> Self {
        self.faulty = Some(faulty);
        self
    }

    fn build(self) -> TestWorker {
        let dir = TempDir::new(self.name);
        // The processor's own defaults (limits, time and memory limits), as it parses them.
        let config = darkroom_processor::Config::try_parse_from(["darkroom-processor"]).unwrap();
        let args = BackendArgs {
            data_dir: dir.0.clone(),
            max_receives: self.max_receives,
            visibility_timeout: self.visibility_secs,
            ..config.backend.clone()
        };
        let backend = args.connect_embedded().unwrap();
        let store: Arc<dyn ObjectStore> = match self.faulty {
            Some(faulty) => {
                faulty.inner.set(backend.store.clone()).ok().expect("one worker per faulty store");
                faulty
            }
            None => backend.store.clone(),
        };
        let (release, released) = watch::channel(false);
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_darkroom-processor"));
        let ctx = Arc::new(Context {
            store: store.clone(),
            jobs: backend.jobs.clone(),
            reporter: Reporter { replies: backend.replies.clone(), worker: format!("test-{}", self.name) },
            limits: config.limits.limits(),
            visibility: args.visibility(),
            max_receives: self.max_receives,
            time_limit: Duration::from_secs(config.job_time_limit),
            sandbox: Sandbox::new(exe, config.job_memory_limit),
            render_slots: Arc::new(Semaphore::new(self.render_slots)),
            release: released,
            guard: Arc::new(Guard::default()),
        });
        TestWorker { backend, store, ctx, release, seen: Mutex::new(vec![]), _dir: dir }
    }
}

/// A store whose reads of originals fail, as [`Fault`] says, while `down` is set.
struct Faulty {
    inner: std::sync::OnceLock<Arc<dyn ObjectStore>>,
    fault: Fault,
    down: AtomicBool,
}

/// How [`Faulty`] fails.
#[derive(Clone, Copy)]
enum Fault {
    /// As a store that does not answer (worth another attempt).
    Unavailable,
    /// As a bucket this processor may not read (only the operator can fix it).
    AccessDenied,
}

impl Faulty {
    fn failing(fault: Fault) -> Arc<Faulty> {
        Arc::new(Faulty { inner: Default::default(), fault, down: AtomicBool::new(true) })
    }
    fn down() -> Arc<Faulty> {
        Faulty::failing(Fault::Unavailable)
    }
    fn store(&self) -> &dyn ObjectStore {
        &**self.inner.get().expect("attached by the builder")
    }
    fn error(&self) -> StoreError {
        match self.fault {
            Fault::Unavailable => StoreError::Unavailable("test: the store does not answer".into()),
            Fault::AccessDenied => StoreError::Misconfigured(access_denied()),
        }
    }
}

fn access_denied() -> Misconfiguration {
    Misconfiguration::new(Resource::Bucket("darkroom".into()), Problem::AccessDenied, "test: no s3:GetObject")
}

#[async_trait]
impl ObjectStore for Faulty {
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), StoreError> {
        self.store().put(key, body, content_type).await
    }
    async fn put_file(&self, key: &str, path: &std::path::Path, content_type: &str) -> Result<(), StoreError> {
        self.store().put_file(key, path, content_type).await
    }
    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        if key.starts_with("originals/") && self.down.load(Ordering::SeqCst) {
            return Err(self.error());
        }
        self.store().get(key).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.store().head(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.store().list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.store().delete(key).await
    }
}

/// A folder of its own per test, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("darkroom-handle-job-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The error code of a status, as it is on the wire.
fn code(status: &StatusMessage) -> String {
    let error = status.error.as_ref().unwrap_or_else(|| panic!("no error in {status:?}"));
    serde_json::to_value(&error.code).unwrap().as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_good_job_posts_processing_then_done_and_its_outputs_are_in_the_store() {
    let w = TestWorker::builder("good").build();
    w.submit("good-1", PHOTO).await;
    w.handle_next().await;

    assert_eq!(w.states().await, [JobState::Processing, JobState::Done]);
    let statuses = w.statuses().await;
    let done = &statuses[1];
    assert_eq!((done.job_id.as_str(), done.attempt, done.worker.as_str()), ("good-1", 1, "test-good"));
    assert_eq!(done.outputs.len(), 1, "{done:?}");
    let output = &done.outputs[0];
    assert_eq!((output.name.as_str(), output.key.as_str(), output.width), ("small", "outputs/good-1/small.jpg", 8));
    let stored = w.backend.store.get(&output.key).await.unwrap();
    assert_eq!(&stored[..2], &[0xFF, 0xD8], "a JPEG");
    assert_eq!(stored.len() as u64, output.bytes);
    let preview = done.preview.as_ref().expect("a preview");
    assert!(w.backend.store.head(&preview.key).await.unwrap().is_some(), "the preview is stored");
    assert!(w.backend.store.head(&keys::output_manifest("good-1")).await.unwrap().is_some(), "the manifest is stored");
    assert_eq!(w.messages_left().await, 0, "the job's message is deleted");
}

#[tokio::test]
async fn a_file_that_is_not_an_image_fails_for_good_and_its_message_is_deleted() {
    let w = TestWorker::builder("not-image").build();
    w.submit("text-1", b"Dear diary, this is not a photo at all.").await;
    w.handle_next().await;

    let statuses = w.statuses().await;
    assert_eq!(statuses.iter().map(|s| s.state).collect::<Vec<_>>(), [JobState::Processing, JobState::Failed]);
    assert_eq!(code(&statuses[1]), "not_an_image");
    assert!(w.outputs_stored("text-1").await.is_empty(), "nothing is stored");
    assert_eq!(w.messages_left().await, 0, "a permanent failure is not redelivered");
}

#[tokio::test]
async fn a_missing_original_fails_with_original_missing() {
    let w = TestWorker::builder("missing").build();
    w.submit_without_original("gone-1").await;
    w.handle_next().await;

    let statuses = w.statuses().await;
    assert_eq!(statuses.last().unwrap().state, JobState::Failed, "{statuses:?}");
    assert_eq!(code(statuses.last().unwrap()), "original_missing");
    assert!(statuses.last().unwrap().error.as_ref().unwrap().message.contains("upload it again"));
    assert_eq!(w.messages_left().await, 0);
}

#[tokio::test]
async fn a_cancelled_job_posts_cancelled_and_renders_nothing() {
    let w = TestWorker::builder("cancelled").build();
    w.submit("cancel-1", PHOTO).await;
    w.backend.store.put(&keys::cancel_marker("cancel-1"), Bytes::from_static(b"{}"), "application/json").await.unwrap();
    w.handle_next().await;

    let statuses = w.statuses().await;
    assert_eq!(statuses.last().unwrap().state, JobState::Cancelled, "{statuses:?}");
    assert!(statuses.iter().all(|s| s.state != JobState::Done && s.outputs.is_empty()), "{statuses:?}");
    assert!(w.outputs_stored("cancel-1").await.is_empty(), "nothing is rendered or stored");
    assert_eq!(w.messages_left().await, 0, "the cancelled job's message is deleted");
}

#[tokio::test]
async fn a_transient_store_error_posts_retrying_and_leaves_the_message_for_redelivery() {
    let faulty = Faulty::down();
    let w = TestWorker::builder("transient").faulty_store(faulty.clone()).build();
    w.submit("flaky-1", PHOTO).await;
    let first = w.handle_next().await;

    let statuses = w.statuses().await;
    let retrying = statuses.last().unwrap();
    assert_eq!(retrying.state, JobState::Retrying, "{statuses:?}");
    assert!(retrying.note.as_deref().is_some_and(|n| n.contains("retrying in 2 s")), "{retrying:?}");
    assert_eq!(w.messages_left().await, 1, "the message stays on the queue");
    // The queue delivers it again after the backoff (2 s for a first attempt), and with the
    // store back the second attempt succeeds.
    faulty.down.store(false, Ordering::SeqCst);
    let again = w.receive(Duration::from_secs(10)).await;
    assert_eq!((again.message_id.as_str(), again.receive_count), (first.message_id.as_str(), 2));
    job::handle(w.ctx.clone(), again).await;
    let last = w.statuses().await.pop().unwrap();
    assert_eq!((last.state, last.attempt), (JobState::Done, 2), "{last:?}");
    assert!(w.store.head("outputs/flaky-1/small.jpg").await.unwrap().is_some());
    assert_eq!(w.messages_left().await, 0);
}

#[tokio::test]
async fn a_job_failing_on_its_last_delivery_gives_up_instead_of_retrying() {
    let w = TestWorker::builder("gave-up").max_receives(2).faulty_store(Faulty::down()).build();
    w.submit("doomed-1", PHOTO).await;
    w.handle_next().await;
    assert_eq!(w.states().await.last(), Some(&JobState::Retrying), "the first of two deliveries retries");
    let last = w.receive(Duration::from_secs(10)).await;
    assert_eq!(last.receive_count, 2);
    job::handle(w.ctx.clone(), last).await;

    let statuses = w.statuses().await;
    let failed = statuses.last().unwrap();
    assert_eq!((failed.state, failed.attempt), (JobState::Failed, 2), "{statuses:?}");
    assert_eq!(code(failed), "gave_up");
    assert!(failed.error.as_ref().unwrap().message.contains("does not answer"), "says the last error: {failed:?}");
    assert_eq!(w.messages_left().await, 0, "the message is deleted, not left to dead-letter");
}

#[tokio::test]
async fn a_job_released_at_shutdown_goes_back_to_the_queue_at_once() {
    // No render slot ever frees up: the job waits for one with its original in hand, as a
    // prefetched job does, when the worker's grace period ends.
    let w = TestWorker::builder("released").render_slots(0).build();
    w.submit("late-1", PHOTO).await;
    let msg = w.receive(Duration::from_secs(5)).await;
    let handling = tokio::spawn(job::handle(w.ctx.clone(), msg));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while w.states().await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no `processing`");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.release.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), handling).await.expect("the job ends when released").unwrap();

    let statuses = w.statuses().await;
    let released = statuses.last().unwrap();
    assert_eq!(released.state, JobState::Retrying, "{statuses:?}");
    assert!(released.note.as_deref().is_some_and(|n| n.starts_with("released:")), "{released:?}");
    assert!(w.outputs_stored("late-1").await.is_empty(), "nothing was rendered");
    // Visible again now, not after the 30 s visibility timeout.
    let again = w.receive(Duration::from_secs(3)).await;
    assert_eq!(again.receive_count, 2);
}

#[tokio::test]
async fn a_redelivered_job_whose_outputs_are_stored_is_reannounced_without_rendering() {
    let w = TestWorker::builder("reannounce").build();
    w.submit("twice-1", PHOTO).await;
    w.handle_next().await;
    let first = w.statuses().await.pop().unwrap();
    assert_eq!(first.state, JobState::Done);
    // The same job again, delivered a second time (as after a crash between storing and
    // reporting), with no render slot left: were it rendered again, it would wait for ever.
    w.ctx.render_slots.acquire().await.unwrap().forget();
    w.submit_without_original("twice-1").await;
    let msg = w.receive(Duration::from_secs(5)).await;
    w.backend.jobs.change_visibility(&msg.receipt, Duration::ZERO).await.unwrap();
    let again = w.receive(Duration::from_secs(5)).await;
    assert_eq!(again.receive_count, 2);
    tokio::time::timeout(Duration::from_secs(10), job::handle(w.ctx.clone(), again))
        .await
        .expect("re-announced without waiting for a render slot");

    let last = w.statuses().await.pop().unwrap();
    assert_eq!((last.state, last.attempt), (JobState::Done, 2), "{last:?}");
    assert_eq!(last.outputs, first.outputs);
    assert!(last.note.as_deref().is_some_and(|n| n.contains("already stored")), "{last:?}");
    assert_eq!(w.messages_left().await, 0);
}

#[tokio::test]
async fn a_processor_with_configuration_errors_in_a_row_gives_the_job_back_at_once() {
    let w = TestWorker::builder("given-back").faulty_store(Faulty::failing(Fault::AccessDenied)).build();
    // Two configuration errors in a row already: the job's is the one that trips the guard,
    // so it is given back without pausing to try again in hand.
    w.ctx.guard.record(&access_denied());
    w.ctx.guard.record(&access_denied());
    w.submit("denied-1", PHOTO).await;
    w.handle_next().await;

    let statuses = w.statuses().await;
    let given_back = statuses.last().unwrap();
    assert_eq!(given_back.state, JobState::Retrying, "not failed: another processor may be configured right");
    assert!(given_back.note.as_deref().is_some_and(|n| n.contains("given back to the queue")), "{given_back:?}");
    assert!(w.ctx.guard.tripped().is_some(), "the processor stops taking jobs");
    // Visible again now, for another processor, not after the 30 s visibility timeout.
    let again = w.receive(Duration::from_secs(3)).await;
    assert_eq!(again.receive_count, 2);
}

#[tokio::test]
async fn a_configuration_error_on_the_last_delivery_fails_the_job_with_what_is_wrong() {
    let w = TestWorker::builder("misconfigured-last")
        .max_receives(1)
        .faulty_store(Faulty::failing(Fault::AccessDenied))
        .build();
    w.ctx.guard.record(&access_denied());
    w.ctx.guard.record(&access_denied());
    w.submit("denied-2", PHOTO).await;
    w.handle_next().await;

    let statuses = w.statuses().await;
    let failed = statuses.last().unwrap();
    assert_eq!(failed.state, JobState::Failed, "{statuses:?}");
    assert_eq!(code(failed), "configuration", "not dead-lettered as gave_up");
    assert!(failed.error.as_ref().unwrap().message.contains("darkroom"), "names the bucket: {failed:?}");
    assert_eq!(w.messages_left().await, 0);
}

#[tokio::test]
async fn a_job_whose_message_another_worker_took_stops_and_publishes_nothing_more() {
    // A short visibility timeout, so the heartbeat extends it every third of a second; no
    // render slot, so the job is still waiting when its message goes to another worker.
    let w = TestWorker::builder("lost").render_slots(0).visibility_secs(1).build();
    w.submit("lost-1", PHOTO).await;
    let msg = w.receive(Duration::from_secs(5)).await;
    let handling = tokio::spawn(job::handle(w.ctx.clone(), msg.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while w.states().await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no `processing`");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Another worker receives the message (as after a pause longer than the timeout): the
    // first one's receipt is stale, its next extension fails.
    // (Again if the heartbeat hid the message between the two calls.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let taken = loop {
        assert!(tokio::time::Instant::now() < deadline, "could not take the message");
        w.backend.jobs.change_visibility(&msg.receipt, Duration::ZERO).await.unwrap();
        if let Some(m) = w.backend.jobs.receive(1, Duration::ZERO).await.unwrap().pop() {
            break m;
        }
    };
    assert_eq!(taken.receive_count, 2);
    tokio::time::timeout(Duration::from_secs(10), handling)
        .await
        .expect("the job stops when it loses its message")
        .unwrap();

    let states = w.states().await;
    assert_eq!(states, [JobState::Processing], "nothing after `processing`: the job is the other worker's now");
    assert!(w.outputs_stored("lost-1").await.is_empty());
}
