//! Jobs that would exhaust a processor: amplification (tiny photo, enormous outputs) is
//! refused from sizes alone, at the web app when certain and by the processor in any case;
//! a job past its time or memory limit is stopped for real (its sandbox child is killed and
//! waited for) while the processor and its other jobs carry on.

use std::time::Duration;

use darkroom_core::config::Backend;
use darkroom_e2e::{corpus, on_both_backends, procfs, Kind, TestApp};
use darkroom_protocol::keys;
use darkroom_protocol::lifecycle::JobState;
use serde_json::Value;

use crate::final_statuses;

/// Put `photo` in the store as job `id`'s original and queue the job with `outputs` (JSON),
/// as an outside sender would (no web app).
async fn send_job(backend: &Backend, id: &str, photo: &str, outputs: &str) {
    let bytes = std::fs::read(corpus(photo)).unwrap();
    backend.store.put(&keys::original(id), bytes.into(), "image/jpeg").await.unwrap();
    let message =
        format!(r#"{{"version":1,"type":"job","job_id":"{id}","original_key":"originals/{id}","outputs":{outputs}}}"#);
    backend.jobs.send(&message).await.unwrap();
}

async fn amplification_is_refused_before_anything_is_made(kind: Kind) {
    let app = TestApp::spawn(kind, 1).await;
    let client = TestApp::new_client();
    // Ten outputs of 16384×16384 (268 MP each) from whatever photo: certain from the recipe.
    let huge = r#"{"op":"resize","width":16384,"height":16384,"fit":"fill","enlarge":true}"#;
    let outputs: Vec<String> =
        (0..10).map(|i| format!(r#"{{"name":"x{i}","ops":[{huge}],"format":"png","compression_level":0}}"#)).collect();
    let recipe = format!(r#"{{"outputs":[{}]}}"#, outputs.join(","));
    let resp = app.upload(&client, &["S01_rocket_640x427.jpg"], Some(&recipe)).await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "output_too_large", "{body}");
    assert_eq!(body["error"]["field"], "outputs[0].ops[0]", "{body}");
    // 16000 px wide from a 640×427 photo is 170 MP: known once the photo's header is read.
    let wide = r#"{"outputs":[{"name":"w","ops":[{"op":"resize","width":16000,"enlarge":true}],"format":"png"}]}"#;
    let resp = app.upload(&client, &["S01_rocket_640x427.jpg"], Some(wide)).await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "output_too_large", "{body}");
    let backend = app.site.connect(30, 3).await;
    let queued = backend.jobs.counts().await.unwrap();
    assert_eq!(queued.visible + queued.in_flight, 0, "nothing was queued");
    drop(app);

    // Straight onto the queue, past the web app: the processor plans before it decodes.
    let app = TestApp::spawn_with(kind, false, 1).await;
    let backend = app.site.connect(30, 3).await;
    send_job(&backend, "amplified-1", "S01_rocket_640x427.jpg", &format!("[{}]", outputs_wide())).await;
    let status = final_statuses(&backend, &["amplified-1"], Duration::from_secs(60)).await.remove(0);
    assert_eq!(status.state, JobState::Failed, "{status:?}");
    assert_eq!(status.error.as_ref().unwrap().code.as_str(), "output_too_large", "{status:?}");
    assert!(backend.store.list("outputs/amplified-1/").await.unwrap().is_empty(), "no output was stored");
    let pid = app.processors[0].child.id();
    let peak = procfs::peak_rss_kib(pid);
    eprintln!("processor peak RSS after the amplified job: {} MiB", peak / 1024);
    assert!(peak < 200 * 1024, "the processor peaked at {peak} KiB");
}

fn outputs_wide() -> String {
    r#"{"name":"w","ops":[{"op":"resize","width":16000,"enlarge":true}],"format":"png"}"#.to_string()
}

async fn a_job_past_its_time_is_stopped_and_its_slot_freed(kind: Kind) {
    // One slot; the stalled job's image work would take 10 minutes, its limit is 2 s.
    let env = [
        ("DARKROOM_CONCURRENCY", "1"),
        ("DARKROOM_JOB_TIME_LIMIT", "2"),
        ("DARKROOM_TEST_STALL_ON_OUTPUT", "stall"),
        ("DARKROOM_TEST_STALL_MS", "600000"),
    ];
    let app = TestApp::spawn_with_env(kind, false, 1, &env).await;
    let backend = app.site.connect(30, 3).await;
    let pid = app.processors[0].child.id();
    send_job(&backend, "slow-1", "S01_rocket_640x427.jpg", r#"[{"name":"stall","format":"png"}]"#).await;
    // The sandbox child that runs it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let child = loop {
        if let Some(c) = procfs::children(pid).first() {
            break *c;
        }
        assert!(tokio::time::Instant::now() < deadline, "the processor never started a sandbox child");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    send_job(&backend, "after-1", "S01_rocket_640x427.jpg", r#"[{"name":"small","format":"png"}]"#).await;
    let statuses = final_statuses(&backend, &["slow-1", "after-1"], Duration::from_secs(60)).await;
    assert_eq!(statuses[0].state, JobState::Failed, "{:?}", statuses[0]);
    assert_eq!(statuses[0].error.as_ref().unwrap().code.as_str(), "time_limit", "{:?}", statuses[0]);
    assert_eq!(statuses[1].state, JobState::Done, "the next job used the freed slot: {:?}", statuses[1]);
    // The stalled work is really gone, not running on beside the next job.
    assert!(!procfs::is_alive(child), "the timed-out job's process {child} still runs");
    assert!(procfs::children(pid).len() <= 1, "one slot, at most one sandbox child: {:?}", procfs::children(pid));
}

async fn a_job_past_its_memory_is_stopped_and_nothing_else_is(kind: Kind) {
    let env = [
        ("DARKROOM_CONCURRENCY", "2"),
        ("DARKROOM_JOB_MEMORY_LIMIT", "768MiB"),
        ("DARKROOM_TEST_HOG_ON_OUTPUT", "hog"),
    ];
    let app = TestApp::spawn_with_env(kind, false, 1, &env).await;
    let backend = app.site.connect(30, 3).await;
    send_job(&backend, "hog-1", "S01_rocket_640x427.jpg", r#"[{"name":"hog","format":"png"}]"#).await;
    send_job(
        &backend,
        "fine-1",
        "M03_storm_1920x1280_exif.jpg",
        r#"[{"name":"web","ops":[{"op":"resize","width":800}]}]"#,
    )
    .await;
    let statuses = final_statuses(&backend, &["hog-1", "fine-1"], Duration::from_secs(90)).await;
    assert_eq!(statuses[0].state, JobState::Failed, "{:?}", statuses[0]);
    let error = statuses[0].error.as_ref().unwrap();
    assert_eq!(error.code.as_str(), "memory_limit", "{error:?}");
    assert!(error.message.contains("768 MiB"), "{}", error.message);
    assert_eq!(statuses[1].state, JobState::Done, "{:?}", statuses[1]);
    let mut app = app;
    assert!(app.processors[0].is_running(), "the processor is still up");
    let peak = procfs::peak_rss_kib(app.processors[0].child.id());
    eprintln!("processor peak RSS with a job hogging 768 MiB in its sandbox: {} MiB", peak / 1024);
    assert!(peak < 200 * 1024, "the hog's memory was the processor's own: {peak} KiB");
}

async fn an_original_over_the_upload_limit_is_refused_from_its_size(kind: Kind) {
    // Put there by someone else than the web app: the processor reads its size first.
    let app = TestApp::spawn_with_env(kind, false, 1, &[("DARKROOM_MAX_UPLOAD_BYTES", "100000")]).await;
    let backend = app.site.connect(30, 3).await;
    send_job(&backend, "big-original", "M03_storm_1920x1280_exif.jpg", r#"[{"name":"t","format":"png"}]"#).await;
    let status = final_statuses(&backend, &["big-original"], Duration::from_secs(60)).await.remove(0);
    assert_eq!(status.state, JobState::Failed, "{status:?}");
    assert_eq!(status.error.as_ref().unwrap().code.as_str(), "file_too_large", "{status:?}");
}

async fn a_sandbox_killed_while_idle_is_replaced(kind: Kind) {
    let app = TestApp::spawn_with_env(kind, false, 1, &[("DARKROOM_CONCURRENCY", "1")]).await;
    let backend = app.site.connect(30, 3).await;
    let pid = app.processors[0].child.id();
    send_job(&backend, "first", "S01_rocket_640x427.jpg", r#"[{"name":"t","format":"png"}]"#).await;
    assert_eq!(final_statuses(&backend, &["first"], Duration::from_secs(60)).await[0].state, JobState::Done);
    // The idle sandbox child, killed as the OOM killer would.
    let children = procfs::children(pid);
    assert_eq!(children.len(), 1, "one idle sandbox child is kept: {children:?}");
    let killed = std::process::Command::new("kill").args(["-KILL", &children[0].to_string()]).status().unwrap();
    assert!(killed.success());
    send_job(&backend, "second", "S01_rocket_640x427.jpg", r#"[{"name":"t","format":"png"}]"#).await;
    let second = final_statuses(&backend, &["second"], Duration::from_secs(60)).await.remove(0);
    assert_eq!((second.state, second.attempt), (JobState::Done, 1), "a fresh child took it at once: {second:?}");
}

on_both_backends!(
    a_sandbox_killed_while_idle_is_replaced,
    an_original_over_the_upload_limit_is_refused_from_its_size,
    amplification_is_refused_before_anything_is_made,
    a_job_past_its_time_is_stopped_and_its_slot_freed,
    a_job_past_its_memory_is_stopped_and_nothing_else_is,
);
