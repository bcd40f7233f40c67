//! Fault isolation on real processes, both backends: a job that kills its worker on every
//! attempt ends in the dead-letter queue and its owner sees it failed; other jobs go on.
//!
//! The worker runs one job at a time here: a job that aborts the whole process also takes
//! down jobs running beside it in that process (they are redelivered, and count an attempt),
//! which is a known limit of in-process workers, tracked for the fault-isolation work.

use std::time::Duration;

use darkroom_e2e::{follow_at, Kind, TestApp};
use serde_json::Value;

async fn poison_job_is_dead_lettered_and_its_owner_sees_failed(kind: Kind) {
    let mut app = TestApp::spawn_with_env(
        kind,
        true,
        1,
        &[
            ("DARKROOM_VISIBILITY_TIMEOUT", "2"),
            ("DARKROOM_MAX_RECEIVES", "2"),
            // Only the poison job is in hand when the processor aborts: a prefetched job would
            // lose an attempt with it, as every job a crashed processor holds does.
            ("DARKROOM_CONCURRENCY", "1"),
            ("DARKROOM_PREFETCH", "0"),
            ("DARKROOM_TEST_ABORT_ON_OUTPUT", "boom"),
        ],
    )
    .await;
    let c = app.client.clone();
    let resp = app.upload(&c, &["S01_rocket_640x427.jpg"], Some(r#"{"outputs":[{"name":"boom"}]}"#)).await;
    assert_eq!(resp.status(), 202);
    let poison = resp.json::<Value>().await.unwrap()["jobs"][0]["id"].as_str().unwrap().to_string();
    let resp = app.upload(&c, &["S03_camera_512x512_gray.png"], Some(r#"{"preset":"thumbnail"}"#)).await;
    let good = resp.json::<Value>().await.unwrap()["jobs"][0]["id"].as_str().unwrap().to_string();

    // Follow the poison job while supervising the processor: every crash is restarted, as
    // docker compose or systemd would.
    let (client, base) = (c.clone(), app.base_url.clone());
    let follow = tokio::spawn(async move { follow_at(&client, &base, &poison).await });
    let mut restarts = 0;
    while !follow.is_finished() {
        restarts += app.restart_dead_processors();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = follow.await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last["state"], "failed", "{last}");
    assert_eq!(last["error"]["code"], "gave_up", "{last}");
    assert!(last["error"]["message"].as_str().unwrap().contains("gave up"), "{last}");
    assert!(restarts >= 2, "the poison job should have killed the worker on each attempt (restarts: {restarts})");
    let timeline: Vec<_> = last["timeline"].as_array().unwrap().iter().map(|t| t["state"].as_str().unwrap()).collect();
    assert_eq!(timeline.first(), Some(&"queued"));
    assert!(timeline.contains(&"processing"));

    // The other job was not held up by the poison one.
    let good_last = app.follow(&c, &good).await.pop().unwrap();
    assert_eq!(good_last["state"], "done", "{good_last}");
    // The poison message is kept in the dead-letter queue for operators.
    let backend = app.backend().await;
    let dlq = backend.dead_letters.counts().await.unwrap();
    assert_eq!(dlq.visible + dlq.in_flight, 1, "{dlq:?}");
}

/// A panic inside the image engine fails that job after its retries; the worker lives on.
async fn a_panicking_job_fails_without_taking_the_worker_down(kind: Kind) {
    let mut app = TestApp::spawn_with_env(
        kind,
        true,
        1,
        &[
            ("DARKROOM_VISIBILITY_TIMEOUT", "5"),
            ("DARKROOM_MAX_RECEIVES", "2"),
            ("DARKROOM_TEST_PANIC_ON_OUTPUT", "kaboom"),
        ],
    )
    .await;
    let c = app.client.clone();
    let resp = app.upload(&c, &["S01_rocket_640x427.jpg"], Some(r#"{"outputs":[{"name":"kaboom"}]}"#)).await;
    let bad = resp.json::<Value>().await.unwrap()["jobs"][0]["id"].as_str().unwrap().to_string();
    let resp = app.upload(&c, &["S02_chelsea_451x300.png"], Some(r#"{"preset":"avatar"}"#)).await;
    let good = resp.json::<Value>().await.unwrap()["jobs"][0]["id"].as_str().unwrap().to_string();

    let last = app.follow(&c, &bad).await.pop().unwrap();
    assert_eq!(last["state"], "failed", "{last}");
    assert_eq!(last["error"]["code"], "gave_up");
    assert!(last["error"]["message"].as_str().unwrap().contains("crashed"), "{last}");
    assert_eq!(last["attempts"], 2, "retried once, then gave up: {last}");
    assert_eq!(app.follow(&c, &good).await.pop().unwrap()["state"], "done");
    assert!(app.processors[0].is_running(), "the worker survived the panics");
}

darkroom_e2e::on_both_backends!(
    poison_job_is_dead_lettered_and_its_owner_sees_failed,
    a_panicking_job_fails_without_taking_the_worker_down,
);
