//! One conformance suite for the `JobQueue` and `ObjectStore` seams, run against both
//! backends: the SQS/S3-compatible server (moto, through the AWS SDK) and the embedded one.
//! It pins down the SQS semantics Darkroom relies on.

use std::time::{Duration, Instant};

use bytes::Bytes;
use darkroom_core::config::Backend;
use darkroom_core::queue::{QueueError, MAX_MESSAGE_BYTES};
use darkroom_core::store::{ByteRange, ObjectStream, Served, StoreError};
use darkroom_e2e::{Kind, Site};
use futures_util::StreamExt;

const NOW: Duration = Duration::ZERO;
const WAIT: Duration = Duration::from_secs(10);

async fn setup(kind: Kind, visibility: u32, max_receives: u32) -> (Site, Backend) {
    let site = Site::new(kind);
    let backend = site.connect(visibility, max_receives).await;
    (site, backend)
}

async fn visibility_expiry_redelivers_with_a_higher_receive_count(kind: Kind) {
    let (_site, b) = setup(kind, 1, 10).await;
    b.jobs.send("hello").await.unwrap();
    let first = b.jobs.receive(1, WAIT).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].body.as_str(), first[0].receive_count), ("hello", 1));
    assert!(b.jobs.receive(1, NOW).await.unwrap().is_empty(), "hidden while in flight");
    let again = b.jobs.receive(1, WAIT).await.unwrap();
    assert_eq!(again.len(), 1, "redelivered after the visibility timeout");
    assert_eq!((again[0].message_id.as_str(), again[0].receive_count), (first[0].message_id.as_str(), 2));
    assert_ne!(again[0].receipt, first[0].receipt, "each receive has its own receipt");
}

async fn change_visibility_extends_and_releases(kind: Kind) {
    let (_site, b) = setup(kind, 1, 10).await;
    b.jobs.send("work").await.unwrap();
    let m = b.jobs.receive(1, WAIT).await.unwrap().remove(0);
    b.jobs.change_visibility(&m.receipt, Duration::from_secs(5)).await.unwrap();
    // Without the extension it would be back after 1 s.
    assert!(b.jobs.receive(1, Duration::from_secs(3)).await.unwrap().is_empty(), "extension holds it");
    b.jobs.change_visibility(&m.receipt, Duration::ZERO).await.unwrap();
    let back = b.jobs.receive(1, WAIT).await.unwrap();
    assert_eq!(back.len(), 1, "visibility 0 releases it at once");
    assert_eq!(back[0].receive_count, 2);
}

async fn receive_count_increments_and_redrive_moves_to_the_dead_letter_queue(kind: Kind) {
    let (_site, b) = setup(kind, 30, 2).await;
    b.jobs.send("poison").await.unwrap();
    for n in 1..=2 {
        let m = b.jobs.receive(1, WAIT).await.unwrap().remove(0);
        assert_eq!(m.receive_count, n);
        b.jobs.change_visibility(&m.receipt, Duration::ZERO).await.unwrap();
    }
    assert!(b.jobs.receive(1, Duration::from_secs(1)).await.unwrap().is_empty(), "moved after 2 receives");
    let dead = b.dead_letters.receive(1, WAIT).await.unwrap();
    assert_eq!(dead.len(), 1, "the dead-letter queue has it");
    assert_eq!(dead[0].body, "poison");
    let c = b.jobs.counts().await.unwrap();
    assert_eq!((c.visible, c.in_flight), (0, 0));
}

async fn long_poll_returns_as_soon_as_a_message_arrives(kind: Kind) {
    let (_site, b) = setup(kind, 30, 3).await;
    let q = b.jobs.clone();
    let started = Instant::now();
    let poll = tokio::spawn(async move { (q.receive(1, Duration::from_secs(20)).await, Instant::now()) });
    // Let the poll start waiting, then send.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = Instant::now();
    b.jobs.send("wake up").await.unwrap();
    let (got, at) = poll.await.unwrap();
    assert_eq!(got.unwrap().len(), 1);
    let latency = at.saturating_duration_since(sent);
    eprintln!("{kind:?}: long poll woke {latency:?} after the send");
    assert!(started.elapsed() < Duration::from_secs(15), "the poll ran to its 20 s limit instead of waking");
}

async fn batches_hold_at_most_ten(kind: Kind) {
    let (_site, b) = setup(kind, 30, 3).await;
    let eleven: Vec<String> = (0..11).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = eleven.iter().map(String::as_str).collect();
    assert!(matches!(b.jobs.send_batch(&refs).await, Err(QueueError::BatchSize(11))));
    assert!(matches!(b.jobs.send_batch(&[]).await, Err(QueueError::BatchSize(0))));
    let ids = b.jobs.send_batch(&refs[..10]).await.unwrap();
    assert_eq!(ids.len(), 10);
    assert!(ids.iter().all(|id| !id.is_empty()));
    b.jobs.send(refs[10]).await.unwrap();
    assert!(b.jobs.receive(11, NOW).await.is_err());
    assert!(b.jobs.receive(0, NOW).await.is_err());

    let mut got = Vec::new();
    while got.len() < 11 {
        let batch = b.jobs.receive(10, Duration::from_secs(2)).await.unwrap();
        assert!(batch.len() <= 10);
        assert!(!batch.is_empty(), "messages went missing: got {}", got.len());
        got.extend(batch);
    }
    let mut bodies: Vec<_> = got.iter().map(|m| m.body.clone()).collect();
    bodies.sort();
    let mut expected = eleven.clone();
    expected.sort();
    assert_eq!(bodies, expected);
    let receipts: Vec<&str> = got.iter().map(|m| m.receipt.as_str()).collect();
    b.jobs.delete_batch(&receipts[..10]).await.unwrap();
    b.jobs.delete_batch(&receipts[10..]).await.unwrap();
    let c = b.jobs.counts().await.unwrap();
    assert_eq!((c.visible, c.in_flight), (0, 0));
}

async fn deletes_with_stale_receipts_behave_as_sqs(kind: Kind) {
    let (_site, b) = setup(kind, 1, 10).await;
    b.jobs.send("x").await.unwrap();
    let old = b.jobs.receive(1, WAIT).await.unwrap().remove(0);
    let new = b.jobs.receive(1, WAIT).await.unwrap().remove(0);
    assert_eq!(new.receive_count, 2);
    // SQS: a delete with an earlier receipt succeeds (it may or may not delete).
    b.jobs.delete(&old.receipt).await.unwrap();
    // The current receipt deletes; deleting again is fine.
    b.jobs.delete(&new.receipt).await.unwrap();
    b.jobs.delete(&new.receipt).await.unwrap();
    let c = b.jobs.counts().await.unwrap();
    assert_eq!((c.visible, c.in_flight), (0, 0));
    assert!(b.jobs.receive(1, Duration::from_secs(2)).await.unwrap().is_empty(), "deleted for good");
    // Extending a deleted message fails: the worker must learn it no longer owns it.
    assert!(b.jobs.change_visibility(&new.receipt, Duration::from_secs(5)).await.is_err());
    // A receipt the queue never issued is refused.
    assert!(b.jobs.delete("not-a-receipt").await.is_err());
}

async fn counts_show_visible_and_in_flight(kind: Kind) {
    let (_site, b) = setup(kind, 30, 3).await;
    b.jobs.send_batch(&["a", "b", "c"]).await.unwrap();
    let c = b.jobs.counts().await.unwrap();
    assert_eq!((c.visible, c.in_flight), (3, 0));
    let m = b.jobs.receive(1, WAIT).await.unwrap();
    assert_eq!(m.len(), 1);
    let c = b.jobs.counts().await.unwrap();
    assert_eq!((c.visible, c.in_flight), (2, 1));
    b.jobs.delete(&m[0].receipt).await.unwrap();
    let c = b.jobs.counts().await.unwrap();
    assert_eq!((c.visible, c.in_flight), (2, 0));
}

async fn oversized_messages_are_refused(kind: Kind) {
    let (_site, b) = setup(kind, 30, 3).await;
    let big = "x".repeat(MAX_MESSAGE_BYTES + 1);
    assert!(matches!(b.jobs.send(&big).await, Err(QueueError::TooLarge(_))));
    let fits = "y".repeat(MAX_MESSAGE_BYTES - 1024);
    b.jobs.send(&fits).await.unwrap();
    assert_eq!(b.jobs.receive(1, WAIT).await.unwrap()[0].body.len(), fits.len());
}

async fn object_store_put_get_head_list_delete(kind: Kind) {
    let (_site, b) = setup(kind, 30, 3).await;
    let s = &b.store;
    assert!(matches!(s.get("outputs/j1/missing.jpg").await, Err(StoreError::NotFound(_))));
    assert_eq!(s.head("outputs/j1/missing.jpg").await.unwrap(), None);
    s.delete("outputs/j1/missing.jpg").await.expect("deleting a missing key is fine");

    s.put("outputs/j1/web.jpg", Bytes::from_static(b"first"), "image/jpeg").await.unwrap();
    s.put("outputs/j1/web.jpg", Bytes::from_static(b"second!"), "image/jpeg").await.unwrap();
    s.put("outputs/j1/thumb.png", Bytes::from_static(b"png"), "image/png").await.unwrap();
    s.put("outputs/j2/web.jpg", Bytes::from_static(b"other"), "image/jpeg").await.unwrap();
    s.put("originals/j1", Bytes::from(vec![7u8; 100_000]), "image/jpeg").await.unwrap();

    assert_eq!(s.get("outputs/j1/web.jpg").await.unwrap().as_ref(), b"second!", "put overwrites");
    assert_eq!(s.head("outputs/j1/web.jpg").await.unwrap().unwrap().size, 7);
    assert_eq!(s.get("originals/j1").await.unwrap().len(), 100_000);
    assert_eq!(s.list("outputs/j1/").await.unwrap(), vec!["outputs/j1/thumb.png", "outputs/j1/web.jpg"]);
    assert_eq!(s.list("outputs/").await.unwrap().len(), 3);
    assert_eq!(s.list("outputs/j").await.unwrap().len(), 3, "prefixes need not end at a slash");
    assert!(s.list("nothing/").await.unwrap().is_empty());

    s.delete("outputs/j1/web.jpg").await.unwrap();
    assert!(matches!(s.get("outputs/j1/web.jpg").await, Err(StoreError::NotFound(_))));
    assert_eq!(s.list("outputs/j1/").await.unwrap(), vec!["outputs/j1/thumb.png"]);
}

/// Every chunk of a streamed read, and how many there were.
async fn drain(mut o: ObjectStream) -> (Vec<u8>, usize) {
    let (mut all, mut chunks) = (Vec::new(), 0);
    while let Some(c) = o.body.next().await {
        all.extend_from_slice(&c.expect("chunk"));
        chunks += 1;
    }
    (all, chunks)
}

async fn object_store_streams_ranges_with_a_strong_etag(kind: Kind) {
    use ByteRange::*;
    let (_site, b) = setup(kind, 30, 3).await;
    let s = &b.store;
    assert!(matches!(s.get_stream("originals/missing", None).await, Err(StoreError::NotFound(_))));
    assert_eq!(s.stat("originals/missing").await.unwrap(), None);

    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    s.put("originals/big", Bytes::from(data.clone()), "image/jpeg").await.unwrap();
    let whole = s.get_stream("originals/big", None).await.unwrap();
    let meta = whole.meta.clone();
    assert_eq!((whole.served, meta.size), (Served::Whole, 1_000_000));
    assert!(meta.etag.len() > 2 && meta.etag.starts_with('"') && meta.etag.ends_with('"'), "{}", meta.etag);
    let (bytes, chunks) = drain(whole).await;
    assert!(bytes == data, "the whole object streams back");
    assert!(chunks > 1, "1 MB arrives in pieces, not as one buffer ({chunks} chunk)");
    let stat = s.stat("originals/big").await.unwrap().expect("stat");
    assert_eq!((stat.size, &stat.etag), (meta.size, &meta.etag), "stat and the read agree");

    for (range, first, last) in [
        (Span { first: 10, last: 19 }, 10, 19),
        (Span { first: 999_990, last: 5_000_000 }, 999_990, 999_999),
        (From(999_000), 999_000, 999_999),
        (Suffix(5), 999_995, 999_999),
        (Suffix(2_000_000), 0, 999_999),
    ] {
        let part = s.get_stream("originals/big", Some(range)).await.unwrap();
        assert_eq!(part.served, Served::Part { first, last }, "{range:?}");
        assert_eq!((part.meta.size, &part.meta.etag), (meta.size, &meta.etag), "{range:?}: meta of the whole");
        let (bytes, _) = drain(part).await;
        assert!(bytes == data[first as usize..=last as usize], "{range:?}: exact bytes");
    }
    for range in [From(1_000_000), Span { first: 2_000_000, last: 2_000_010 }, Suffix(0)] {
        let none = s.get_stream("originals/big", Some(range)).await.unwrap();
        assert_eq!((none.served, none.meta.size), (Served::Unsatisfiable, 1_000_000), "{range:?}");
        assert!(drain(none).await.0.is_empty());
    }

    // Same size, other bytes: another tag.
    let mut other = data.clone();
    other[0] ^= 1;
    s.put("originals/big", Bytes::from(other), "image/jpeg").await.unwrap();
    let again = s.stat("originals/big").await.unwrap().unwrap();
    assert_eq!(again.size, meta.size);
    assert_ne!(again.etag, meta.etag, "rewritten bytes get a new ETag");
}

/// Conditional writes: only-if-absent, only-if-unchanged, and a stale version refused.
async fn put_if_refuses_a_changed_object(kind: Kind) {
    let (_site, b) = setup(kind, 30, 3).await;
    let s = &b.store;
    let key = "jobs/cas.json";
    let v1 = s.put_if(key, Bytes::from_static(b"1"), "application/json", None).await.unwrap();
    assert!(
        matches!(s.put_if(key, Bytes::from_static(b"x"), "application/json", None).await, Err(StoreError::Conflict(_))),
        "only if absent: there is one now"
    );
    let (body, read) = s.get_versioned(key).await.unwrap();
    assert_eq!((body.as_ref(), &read), (&b"1"[..], &v1), "the version read is the version written");
    let v2 = s.put_if(key, Bytes::from_static(b"2"), "application/json", Some(&v1)).await.unwrap();
    assert_ne!(v1, v2);
    assert!(
        matches!(
            s.put_if(key, Bytes::from_static(b"3"), "application/json", Some(&v1)).await,
            Err(StoreError::Conflict(_))
        ),
        "a stale version is refused"
    );
    assert_eq!(s.get(key).await.unwrap().as_ref(), b"2", "and nothing was written");
    s.put(key, Bytes::from_static(b"22"), "application/json").await.unwrap();
    assert!(
        matches!(
            s.put_if(key, Bytes::from_static(b"3"), "application/json", Some(&v2)).await,
            Err(StoreError::Conflict(_))
        ),
        "a plain put changes the version too"
    );
    s.delete(key).await.unwrap();
    let v = s.put_if(key, Bytes::from_static(b"4"), "application/json", None).await.unwrap();
    assert!(matches!(s.get_versioned("jobs/none.json").await, Err(StoreError::NotFound(_))));
    assert_eq!(s.get_versioned(key).await.unwrap().1, v);
}

/// N writers at once, each adding one to a counter in one object by read → put_if → on
/// conflict read again: the final value is N (no increment lost), and conflicts did happen.
async fn put_if_loses_no_update_under_concurrent_writers(kind: Kind) {
    const WRITERS: u64 = 12;
    const EACH: u64 = 5;
    let (_site, b) = setup(kind, 30, 3).await;
    let key = "jobs/counter.json";
    b.store.put_if(key, Bytes::from_static(b"0"), "application/json", None).await.unwrap();
    let conflicts = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let (store, conflicts) = (b.store.clone(), conflicts.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..EACH {
                loop {
                    let (body, version) = store.get_versioned(key).await.unwrap();
                    let n: u64 = std::str::from_utf8(&body).unwrap().parse().unwrap();
                    let next = Bytes::from((n + 1).to_string());
                    match store.put_if(key, next, "application/json", Some(&version)).await {
                        Ok(_) => break,
                        Err(StoreError::Conflict(_)) => {
                            conflicts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        Err(e) => panic!("put_if: {e}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total: u64 = std::str::from_utf8(&b.store.get(key).await.unwrap()).unwrap().parse().unwrap();
    let conflicts = conflicts.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!("{kind:?}: {} increments by {WRITERS} writers, {conflicts} conflicts retried", WRITERS * EACH);
    assert_eq!(total, WRITERS * EACH, "an increment was lost");
    assert!(conflicts > 0, "the writers never collided: the test proved nothing");
}

/// Replica fan-out: a notice published by one replica reaches every other live replica once
/// and never its sender; a replica that stopped cleanly is gone at once, one that died is
/// reaped by a live one after the grace period.
async fn fanout_reaches_every_other_replica_and_reaps_the_dead(kind: Kind) {
    use darkroom_core::fanout::{ChangeNotice, Fanout};
    use darkroom_protocol::lifecycle::JobState;
    let (_site, b) = setup(kind, 30, 3).await;
    // Long enough for a loaded machine between a replica's heartbeat and the checks below.
    let grace = Duration::from_secs(5);
    let join = |name: &'static str| {
        let (store, inboxes) = (b.store.clone(), b.inboxes.clone());
        async move { Fanout::join(store, inboxes, name, "test-replica-", grace).await.unwrap() }
    };
    let (a, r2, r3) = (join("a").await, join("b").await, join("c").await);
    r2.heartbeat().await.unwrap();
    r3.heartbeat().await.unwrap();
    let mut peers = a.peers().await.unwrap();
    peers.sort();
    assert_eq!(peers, ["b", "c"], "a sees the two others, not itself");
    let notice = |n: usize| ChangeNotice::Job {
        job_id: format!("job{n}"),
        owner: "o".into(),
        state: JobState::Done,
        updated_at: chrono::Utc::now(),
        from: "a".into(),
    };
    let sent: Vec<_> = (0..12).map(notice).collect();
    assert_eq!(a.publish(&sent).await.unwrap(), 2, "both other replicas reached");
    let is_job = |n: &ChangeNotice| matches!(n, ChangeNotice::Job { .. });
    for r in [&r2, &r3] {
        let mut got = Vec::new();
        let deadline = Instant::now() + WAIT;
        while got.len() < sent.len() && Instant::now() < deadline {
            got.extend(r.receive(Duration::from_secs(2)).await.unwrap().into_iter().filter(is_job));
        }
        got.sort_by_key(|n| match n {
            ChangeNotice::Job { job_id, .. } => job_id[3..].parse::<usize>().unwrap(),
            _ => usize::MAX,
        });
        assert_eq!(got, sent, "{} got every notice once", r.replica());
    }
    // a heard b and c join (each says so to the replicas it finds), and no echo of its own.
    let mut heard = Vec::new();
    loop {
        let got = a.receive(Duration::from_millis(500)).await.unwrap();
        if got.is_empty() {
            break;
        }
        heard.extend(got);
    }
    let mut joined: Vec<&str> = heard
        .iter()
        .map(|n| match n {
            ChangeNotice::Joined { from } => from.as_str(),
            other => panic!("the sender got an echo or a stray notice: {other:?}"),
        })
        .collect();
    joined.sort();
    assert_eq!(joined, ["b", "c"], "a heard both join");
    // A clean stop.
    r3.leave().await.unwrap();
    r2.heartbeat().await.unwrap();
    assert_eq!(a.peers().await.unwrap(), ["b"], "c left");
    // A death: b stops heartbeating; a reaps it once the grace period is over.
    drop(r2);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut reaped = Vec::new();
    while reaped.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        reaped = a.heartbeat().await.unwrap();
    }
    assert_eq!(reaped, ["b"], "the dead replica is reaped");
    assert!(a.peers().await.unwrap().is_empty());
    assert!(b.inboxes.open("test-replica-b").await.err().is_some_and(|e| e.is_missing()), "its inbox is removed");
    a.leave().await.unwrap();
    assert!(b.store.list(darkroom_core::fanout::REGISTRY_PREFIX).await.unwrap().is_empty());
}

darkroom_e2e::on_both_backends!(
    object_store_streams_ranges_with_a_strong_etag,
    fanout_reaches_every_other_replica_and_reaps_the_dead,
    put_if_refuses_a_changed_object,
    put_if_loses_no_update_under_concurrent_writers,
    visibility_expiry_redelivers_with_a_higher_receive_count,
    change_visibility_extends_and_releases,
    receive_count_increments_and_redrive_moves_to_the_dead_letter_queue,
    long_poll_returns_as_soon_as_a_message_arrives,
    batches_hold_at_most_ten,
    deletes_with_stale_receipts_behave_as_sqs,
    counts_show_visible_and_in_flight,
    oversized_messages_are_refused,
    object_store_put_get_head_list_delete,
);

/// The embedded queue's long poll wakes on a send from another process (the doorbell), not
/// on its safety-net timer: the timer is set longer than the poll here, so without the
/// doorbell this poll would come back empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_long_poll_wakes_on_a_send_from_another_process() {
    use darkroom_core::queue::embedded::{EmbeddedDb, QueueSettings};
    use darkroom_core::queue::JobQueue;
    let ctl = darkroom_e2e::bin_dir().join("darkroom-ctl"); // built before the clock starts
    let site = Site::new(Kind::Embedded);
    site.connect(30, 3).await;
    let db = EmbeddedDb::open_with(&site.data_dir, Duration::from_secs(120)).unwrap();
    assert!(db.wakes_across_processes(), "no file watcher on this machine");
    let q =
        db.ensure(&site.names.replies, &QueueSettings { visibility: Duration::from_secs(30), redrive: None }).unwrap();
    let poll = tokio::spawn(async move { (q.receive(1, Duration::from_secs(15)).await, Instant::now()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = tokio::process::Command::new(&ctl)
        .envs(site.envs())
        .args(["send", "--queue", "replies", "ping from another process"])
        .status()
        .await
        .expect("run darkroom-ctl");
    let sent = Instant::now();
    assert!(status.success());
    let (got, at) = poll.await.unwrap();
    let got = got.unwrap();
    assert_eq!(got.len(), 1, "the poll did not wake on another process's send");
    assert_eq!(got[0].body, "ping from another process");
    eprintln!("cross-process wake: received {:?} after darkroom-ctl exited", at.saturating_duration_since(sent));
}

/// kill -9 of a process in the middle of sending loses nothing it was told was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_queue_survives_kill_9_of_a_sender() {
    use tokio::io::AsyncBufReadExt;
    let ctl = darkroom_e2e::bin_dir().join("darkroom-ctl");
    let site = Site::new(Kind::Embedded);
    let b = site.connect(30, 3).await;
    let mut child = tokio::process::Command::new(&ctl)
        .envs(site.envs())
        .args(["send", "--count", "100000", "payload"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acknowledged = Vec::new();
    while acknowledged.len() < 300 {
        acknowledged.push(lines.next_line().await.unwrap().expect("sender alive"));
    }
    child.start_kill().unwrap(); // SIGKILL, mid-stream
    child.wait().await.unwrap();
    while let Ok(Some(line)) = lines.next_line().await {
        acknowledged.push(line);
    }
    let mut stored = std::collections::HashSet::new();
    loop {
        let got = b.jobs.receive(10, Duration::ZERO).await.unwrap();
        if got.is_empty() {
            break;
        }
        stored.extend(got.into_iter().map(|m| m.message_id));
    }
    let lost: Vec<_> = acknowledged.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost after kill -9: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(stored.len() >= acknowledged.len());
}
