//! Scaling on backlog (issue 13): `darkroom-processor supervise` takes a burst from its
//! minimum to its maximum number of processors and back, every job done, each decision logged,
//! counted on the supervisor's `/metrics` and shown on the ops page. And within one processor
//! (issue 14): a prefetched job is in hand while the render slot is busy, and renders after.
//!
//! Jobs are made slow without using the CPU (the sandbox's test hook stalls the output named
//! `slow` for a moment), so the backlog stays up long enough to be seen on a 2-core machine
//! and the test measures the supervisor, not the engine.

use std::time::{Duration, Instant};

use darkroom_e2e::{on_both_backends, procfs, Kind, Proc, TestApp};
use serde_json::Value;

const TOKEN: &str = "scaling-test-admin-token";
const JOBS: usize = 12;
const RECIPE: &str = r#"{"outputs":[{"name":"slow","format":"png","ops":[{"op":"resize","width":64}]}]}"#;

on_both_backends!(
    a_burst_scales_out_to_max_and_back_to_min_every_job_done,
    a_prefetched_job_is_in_hand_while_the_one_render_slot_is_busy
);

/// The supervisor's processors that are alive now (a drained one that is not reaped yet is not).
fn live_processors(supervisor: &Proc) -> Vec<u32> {
    procfs::children(supervisor.child.id()).into_iter().filter(|p| procfs::is_alive(*p)).collect()
}

/// Poll `what` (every 50 ms, up to `limit`) until it holds.
async fn until(limit: Duration, what: &str, supervisor: &Proc, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !pred() {
        assert!(Instant::now() < deadline, "not {what} within {limit:?}; supervisor log:\n{}", supervisor.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The supervisor's metrics address, from its log.
async fn metrics_addr(supervisor: &Proc) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = supervisor.log_text();
        if let Some(addr) = log
            .lines()
            .filter(|l| l.contains("supervisor metrics at /metrics"))
            .find_map(|l| l.split("address=").nth(1))
        {
            return addr.split_whitespace().next().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "the supervisor never said where its metrics are:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sample(text: &str, key: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {key} in\n{text}"))
}

async fn a_burst_scales_out_to_max_and_back_to_min_every_job_done(kind: Kind) {
    let env = [
        ("DARKROOM_ADMIN_TOKEN", TOKEN),
        ("DARKROOM_TEST_STALL_ON_OUTPUT", "slow"),
        ("DARKROOM_TEST_STALL_MS", "1500"),
    ];
    let app = TestApp::spawn_with_env(kind, true, 0, &env).await;
    #[rustfmt::skip]
    let args = [
        "supervise", "--min", "1", "--max", "3", "--target-backlog", "2", "--interval", "0.3",
        "--up-cooldown", "0.5", "--down-cooldown", "3", "--bind", "127.0.0.1:0", "--name", "burst-test",
    ];
    let mut supervisor = app.start_process("darkroom-processor", &args, &[("DARKROOM_CONCURRENCY", "1")], "supervisor");
    until(Duration::from_secs(30), "one processor at the start", &supervisor, || {
        live_processors(&supervisor).len() == 1
    })
    .await;

    // The burst.
    let client = TestApp::new_client();
    let mut ids = vec![];
    for _ in 0..JOBS {
        let resp = app.upload(&client, &["S01_rocket_640x427.jpg"], Some(RECIPE)).await;
        assert_eq!(resp.status(), 202, "upload");
        let body: Value = resp.json().await.unwrap();
        ids.push(body["jobs"][0]["id"].as_str().unwrap().to_string());
    }
    let mut most = 0;
    until(Duration::from_secs(60), "scaled out to the maximum of 3", &supervisor, || {
        most = most.max(live_processors(&supervisor).len());
        most == 3
    })
    .await;
    for id in &ids {
        let job = app
            .wait_for_job(&client, id, Duration::from_secs(120), "done", |j| {
                j["state"].as_str().is_some_and(|s| s == "done" || s == "failed")
            })
            .await;
        assert_eq!(job["state"], "done", "every job of the burst is done: {job}");
    }
    until(Duration::from_secs(60), "scaled back in to the minimum of 1", &supervisor, || {
        live_processors(&supervisor).len() == 1
    })
    .await;

    // Each decision is logged …
    let log = supervisor.log_text();
    let decisions: Vec<&str> = log.lines().filter(|l| l.contains("scaling decision")).collect();
    println!("decision log ({kind:?}):\n{}", decisions.join("\n"));
    assert!(decisions.iter().any(|l| l.contains("scaling decision: up") && l.contains("→ 3")), "{log}");
    assert!(decisions.iter().any(|l| l.contains("scaling decision: down") && l.contains("→ 1")), "{log}");
    assert!(!log.contains("exited without being asked to"), "no processor crashed:\n{log}");
    // … stopping by SIGTERM drained: no job needed a second attempt.
    for id in &ids {
        let job = app.job(&client, id).await;
        assert_eq!(job["attempts"], 1, "scale-in lost no attempt: {job}");
    }

    // … counted on the supervisor's metrics …
    let addr = metrics_addr(&supervisor).await;
    let metrics = reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
    assert!(sample(&metrics, "darkroom_supervisor_scaling_decisions_total{direction=\"up\"}") >= 1.0, "{metrics}");
    assert!(sample(&metrics, "darkroom_supervisor_scaling_decisions_total{direction=\"down\"}") >= 1.0, "{metrics}");
    assert_eq!(sample(&metrics, "darkroom_supervisor_processes"), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, "darkroom_supervisor_max_processes"), 3.0, "{metrics}");

    // … and shown on the ops page.
    let ops = TestApp::new_client();
    let resp = ops.post(app.url("/ops/login")).form(&[("token", TOKEN)]).send().await.unwrap();
    assert!(resp.status().is_success() || resp.status().is_redirection(), "sign in: {}", resp.status());
    let page = ops.get(app.url("/ops")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("data-supervisor=\"burst-test\""), "the ops page shows the supervisor:\n{page}");
    assert!(page.contains("data-direction=\"up\" data-to=\"3\""), "the ops page shows the scale-out:\n{page}");
    assert!(page.contains("data-direction=\"down\" data-to=\"1\""), "the ops page shows the scale-in:\n{page}");

    // Stopping the supervisor stops its processors (they drain) and it exits cleanly.
    let last = live_processors(&supervisor);
    supervisor.terminate();
    let status = supervisor.wait_exit(Duration::from_secs(60)).await.expect("the supervisor stops");
    assert!(status.success(), "supervisor exit: {status:?}\n{}", supervisor.log_text());
    assert!(last.iter().all(|p| !procfs::is_alive(*p)), "processors left running: {last:?}");
}

/// `DARKROOM_CONCURRENCY=1` and the default `DARKROOM_PREFETCH=1`: while one job renders (made
/// slow by the stall hook), the processor already holds the next (it is `processing`: taken,
/// its original downloading), but renders it only after the first (one render slot).
async fn a_prefetched_job_is_in_hand_while_the_one_render_slot_is_busy(kind: Kind) {
    let env =
        [("DARKROOM_CONCURRENCY", "1"), ("DARKROOM_TEST_STALL_ON_OUTPUT", "slow"), ("DARKROOM_TEST_STALL_MS", "1500")];
    let app = TestApp::spawn_with_env(kind, true, 1, &env).await;
    let client = TestApp::new_client();
    let mut ids = vec![];
    for _ in 0..2 {
        let resp = app.upload(&client, &["S01_rocket_640x427.jpg"], Some(RECIPE)).await;
        assert_eq!(resp.status(), 202, "upload");
        let body: Value = resp.json().await.unwrap();
        ids.push(body["jobs"][0]["id"].as_str().unwrap().to_string());
    }
    // Both in hand at once, before either is done: without prefetch the second stays queued
    // until the first is done.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (a, b) = (app.job(&client, &ids[0]).await, app.job(&client, &ids[1]).await);
        if a["state"] == "processing" && b["state"] == "processing" {
            break;
        }
        let over = |j: &Value| j["state"] == "done" || j["state"] == "failed";
        if over(&a) || over(&b) || Instant::now() > deadline {
            app.dump_logs();
            panic!("the second job was never in hand while the first rendered: {a}\n{b}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut done_at = vec![];
    for id in &ids {
        let job = app
            .wait_for_job(&client, id, Duration::from_secs(60), "done", |j| {
                j["state"].as_str().is_some_and(|s| s == "done" || s == "failed")
            })
            .await;
        assert_eq!(job["state"], "done", "{job}");
        assert_eq!(job["attempts"], 1, "{job}");
        let at = job["timeline"].as_array().unwrap().iter().rev().find(|t| t["state"] == "done").unwrap()["at"].clone();
        done_at.push(chrono::DateTime::parse_from_rfc3339(at.as_str().unwrap()).unwrap());
    }
    // One render slot: the renders (1.5 s of stall each) did not overlap.
    let apart = (done_at[1] - done_at[0]).num_milliseconds().abs();
    assert!(apart >= 1400, "the two renders overlapped with one render slot: done {apart} ms apart");
}
