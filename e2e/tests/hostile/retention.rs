//! Data that expires (issue 16), on both backends: the retention sweeper (`DARKROOM_RETENTION`)
//! deletes aged final jobs with every key of theirs, unused old logos and expired idempotency
//! records, and touches nothing else: not a fresh job, not a queued job however old, not a logo
//! a job still names. Two replicas sweeping at once do the work once (the lease), and when the
//! holder dies the other takes over.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use darkroom_core::store::ObjectStore;
use darkroom_e2e::{on_both_backends, Kind, Replica, TestApp};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::RECIPE;

/// Every key in the store under the prefixes a job, a logo or a key record uses.
async fn all_keys(store: &dyn ObjectStore) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for prefix in ["originals/", "outputs/", "jobs/", "owners/", "cancelled/", "logos/", "idempotency/"] {
        out.extend(store.list(prefix).await.unwrap());
    }
    out
}

fn keys_of<'a>(all: &'a BTreeSet<String>, id: &str) -> Vec<&'a String> {
    all.iter().filter(|k| k.contains(id)).collect()
}

/// Rewrite a job's record through the store as if it had been created and last changed `age` ago.
async fn age(store: &dyn ObjectStore, id: &str, age: chrono::Duration) {
    let key = format!("jobs/{id}.json");
    let mut rec: Value = serde_json::from_slice(&store.get(&key).await.unwrap()).unwrap();
    let then = (chrono::Utc::now() - age).to_rfc3339();
    rec["created_at"] = json!(then);
    rec["updated_at"] = json!(then);
    store.put(&key, Bytes::from(serde_json::to_vec(&rec).unwrap()), "application/json").await.unwrap();
}

/// A job made through the store alone (no queue message): its record, original, owner index
/// entry (and cancel marker when cancelled), last changed `age` ago.
async fn forge_job(store: &dyn ObjectStore, owner: &str, state: &str, age: chrono::Duration) -> String {
    let id = darkroom_e2e::unique("forged");
    let then = (chrono::Utc::now() - age).to_rfc3339();
    let original = format!("originals/{id}");
    let rec = json!({
        "id": id, "owner": owner, "filename": "forged.jpg", "state": state,
        "created_at": then, "updated_at": then, "attempts": 0, "worker": null,
        "original_key": original, "original_type": "image/jpeg",
        "original_width": 1, "original_height": 1, "original_bytes": 3,
        "requested": [], "outputs": [], "error": null, "timeline": [],
    });
    store.put(&original, Bytes::from_static(b"jpg"), "image/jpeg").await.unwrap();
    store.put(&format!("jobs/{id}.json"), Bytes::from(rec.to_string()), "application/json").await.unwrap();
    store.put(&format!("owners/{owner}/{id}"), Bytes::from(then.clone()), "text/plain").await.unwrap();
    if state == "cancelled" {
        store.put(&format!("cancelled/{id}"), Bytes::from(then), "text/plain").await.unwrap();
    }
    id
}

async fn upload_logo(app: &TestApp, client: &reqwest::Client) -> String {
    let png = std::fs::read(darkroom_e2e::corpus("S03_camera_512x512_gray.png")).unwrap();
    let form = reqwest::multipart::Form::new().part("logo", reqwest::multipart::Part::bytes(png).file_name("logo.png"));
    let resp = client.post(app.url("/api/logos")).multipart(form).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    body["key"].as_str().unwrap().to_string()
}

async fn done_job(app: &TestApp, client: &reqwest::Client, recipe: &str, key: Option<&str>) -> String {
    let mut form = reqwest::multipart::Form::new().text("recipe", recipe.to_string());
    let bytes = std::fs::read(darkroom_e2e::corpus("S01_rocket_640x427.jpg")).unwrap();
    form = form.part("file", reqwest::multipart::Part::bytes(bytes).file_name("rocket.jpg"));
    let mut req = client.post(app.url("/api/jobs")).multipart(form);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    let id = body["jobs"][0]["id"].as_str().unwrap().to_string();
    let events = app.follow(client, &id).await;
    assert_eq!(events.last().unwrap()["state"], "done", "{events:?}");
    id
}

/// A counter's value on a web app's `/metrics` (0 when the series is not there yet).
async fn counter(base: &str, series: &str) -> u64 {
    let text = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse::<f64>().ok()))
        .map_or(0, |v| v as u64)
}

/// Wait (bounded) until none of `gone` is in the store.
async fn until_gone(store: &dyn ObjectStore, gone: &[String], limit: Duration, log: &str) {
    let deadline = Instant::now() + limit;
    loop {
        let all = all_keys(store).await;
        let left: Vec<&String> = gone.iter().flat_map(|id| keys_of(&all, id)).collect();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "still there after {limit:?}: {left:?}\n{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How old the "old" logo must be: the sweeping replica's retention.
const LOGO_RETENTION_S: u64 = 15;

/// The sweeper logs one line per round and counts what it removed.
async fn the_sweeper_logs_and_counts_its_round(log: &str, base_url: &str) {
    assert!(log.contains("retention sweep: 4 jobs, 1 logos, "), "one line per round:\n{log}");
    assert!(!log.contains("retention sweep stopped"), "{log}");
    assert_eq!(counter(base_url, "darkroom_web_retention_removed_total{kind=\"jobs\"}").await, 4);
    assert_eq!(counter(base_url, "darkroom_web_retention_removed_total{kind=\"logos\"}").await, 1);
    assert_eq!(counter(base_url, "darkroom_web_retention_removed_total{kind=\"idempotency_records\"}").await, 1);
}

/// Through HTTP on both web apps: the swept jobs answer 404 and leave the gallery; the other
/// web app hears of it by a change notice (its cache would keep them for 10 minutes).
async fn swept_jobs_leave_both_web_apps(
    client: &reqwest::Client,
    bases: [&str; 2],
    gone_ids: &[String],
    kept_ids: &[&String],
) {
    for base in bases {
        for id in gone_ids {
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let status = client.get(format!("{base}/api/jobs/{id}")).send().await.unwrap().status();
                if status == 404 {
                    break;
                }
                assert!(Instant::now() < deadline, "{base}: {id} still answers {status}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let page: Value = client.get(format!("{base}/api/jobs?limit=100")).send().await.unwrap().json().await.unwrap();
        let listed: BTreeSet<&str> =
            page["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
        let expected: BTreeSet<&str> = kept_ids.iter().map(|s| s.as_str()).collect();
        assert_eq!(listed, expected, "{base}: the gallery lists the kept jobs only");
        let html = client.get(format!("{base}/")).send().await.unwrap().text().await.unwrap();
        for id in gone_ids {
            assert!(!html.contains(id.as_str()), "{base}: {id} is still on the gallery page");
        }
    }
}

async fn aged_jobs_and_unused_logos_go_and_nothing_else_is_touched(kind: Kind) {
    // A long cache: only the sweeper's change notices can make this web app forget a job.
    let app = TestApp::spawn_with_env(kind, true, 1, &[("DARKROOM_JOB_CACHE_TTL", "600000")]).await;
    let client = TestApp::new_client();
    let backend = app.backend().await;
    let store = &*backend.store;
    let t0 = Instant::now();
    let used_logo = upload_logo(&app, &client).await;
    let unused_logo = upload_logo(&app, &client).await;

    // Two done jobs, then aged by two hours through the store.
    let aged_done = [done_job(&app, &client, RECIPE, None).await, done_job(&app, &client, RECIPE, None).await];
    let owner_rec: Value =
        serde_json::from_slice(&store.get(&format!("jobs/{}.json", aged_done[0])).await.unwrap()).unwrap();
    let owner = owner_rec["owner"].as_str().expect("a record names its owner").to_string();
    for id in &aged_done {
        age(store, id, chrono::Duration::hours(2)).await;
        // Cached by the web app (a GET), so only a notice can drop it.
        app.job(&client, id).await;
    }
    let aged_cancelled = forge_job(store, &owner, "cancelled", chrono::Duration::hours(3)).await;
    let aged_failed = forge_job(store, &owner, "failed", chrono::Duration::hours(3)).await;
    // Queued for a week (no message, no processor would ever take it): never swept.
    let old_queued = forge_job(store, &owner, "queued", chrono::Duration::days(7)).await;
    let old_processing = forge_job(store, &owner, "processing", chrono::Duration::days(7)).await;
    // An idempotency record past its time, and (below) a live one.
    let expired_key = format!("idempotency/{owner}/{}.json", "ab".repeat(32));
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let record = json!({"fingerprint": "f", "claimed_at": past, "expires_at": past});
    store.put(&expired_key, Bytes::from(record.to_string()), "application/json").await.unwrap();

    // The logos must be older than the retention; the fresh jobs, made after, younger.
    tokio::time::sleep_until(t0 + Duration::from_secs(LOGO_RETENTION_S + 1)).await;
    let watermark = format!(
        r#"{{"outputs":[{{"name":"web","ops":[{{"op":"resize","width":200}},{{"op":"watermark","image":"{used_logo}","scale":0.2}}],"format":"png"}}]}}"#
    );
    let fresh = [
        done_job(&app, &client, RECIPE, Some("retention-live-key")).await,
        done_job(&app, &client, &watermark, None).await,
    ];
    let before = all_keys(store).await;
    let live_key: Vec<String> =
        before.iter().filter(|k| k.starts_with("idempotency/") && **k != expired_key).cloned().collect();
    assert_eq!(live_key.len(), 1, "the live Idempotency-Key record: {before:?}");
    let kept_ids: Vec<&String> = fresh.iter().chain([&old_queued, &old_processing]).collect();
    let mut kept: Vec<String> = kept_ids.iter().flat_map(|id| keys_of(&before, id)).cloned().collect();
    kept.extend([used_logo.clone()]);
    kept.extend(live_key);
    for id in &fresh {
        let k = keys_of(&before, id);
        assert!(k.len() >= 5, "original, outputs, preview, manifest, record, index: {k:?}");
    }
    let gone_ids: Vec<String> =
        aged_done.iter().cloned().chain([aged_cancelled.clone(), aged_failed.clone()]).collect();
    for id in &gone_ids {
        assert!(keys_of(&before, id).len() >= 3, "{id} has keys to lose: {before:?}");
    }
    assert!(before.contains(&format!("cancelled/{aged_cancelled}")));
    assert!(before.contains(&unused_logo) && before.contains(&expired_key));

    // A second web app with the sweeper on (one round a second).
    let retention = format!("{LOGO_RETENTION_S}s");
    let sweeper = app
        .start_replica("sweeper", &[("DARKROOM_RETENTION", retention.as_str()), ("DARKROOM_RETENTION_INTERVAL", "1")]);
    let mut gone = gone_ids.clone();
    gone.push(unused_logo.clone());
    gone.push(expired_key.clone());
    until_gone(store, &gone, Duration::from_secs(60), &sweeper.proc.log_text()).await;

    let after = all_keys(store).await;
    for key in &kept {
        assert!(after.contains(key), "{key} was swept; left: {after:?}");
    }
    the_sweeper_logs_and_counts_its_round(&sweeper.proc.log_text(), &sweeper.base_url).await;
    swept_jobs_leave_both_web_apps(&client, [&app.base_url, &sweeper.base_url], &gone_ids, &kept_ids).await;
    let job = sweeper.job(&client, &fresh[1]).await;
    assert_eq!(job["state"], "done", "fresh jobs are whole: {job}");
    let resp = client.get(format!("{}/api/jobs/{}/preview", sweeper.base_url, fresh[1])).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the preview of a fresh job is still there");
}

async fn two_replicas_sweep_once_and_one_takes_over_when_the_holder_dies(kind: Kind) {
    let app = TestApp::spawn_with_env(kind, false, 0, &[]).await;
    let backend = app.backend().await;
    let store = &*backend.store;
    let mut aged = Vec::new();
    for _ in 0..6 {
        aged.push(forge_job(store, "owner1", "done", chrono::Duration::days(2)).await);
    }
    let env = [("DARKROOM_RETENTION", "1d"), ("DARKROOM_RETENTION_INTERVAL", "1")];
    let mut replicas: Vec<Replica> = (0..2).map(|n| app.start_replica(&format!("sweeper{n}"), &env)).collect();
    let logs_of = |replicas: &[Replica]| replicas.iter().map(|r| r.proc.log_text()).collect::<Vec<_>>().join("\n");
    until_gone(store, &aged, Duration::from_secs(60), &logs_of(&replicas)).await;

    // A few more rounds on both, then count: the work was done once, the lease was seen.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut rounds = 0;
        for r in &replicas {
            for outcome in ["swept", "skipped"] {
                rounds +=
                    counter(&r.base_url, &format!("darkroom_web_retention_rounds_total{{outcome=\"{outcome}\"}}"))
                        .await;
            }
        }
        if rounds >= 8 {
            break;
        }
        assert!(Instant::now() < deadline, "fewer than 8 rounds in 60 s:\n{}", logs_of(&replicas));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut removed = 0;
    let mut skipped = 0;
    let mut holder = None;
    for (n, r) in replicas.iter().enumerate() {
        let jobs = counter(&r.base_url, "darkroom_web_retention_removed_total{kind=\"jobs\"}").await;
        removed += jobs;
        skipped += counter(&r.base_url, "darkroom_web_retention_rounds_total{outcome=\"skipped\"}").await;
        assert_eq!(counter(&r.base_url, "darkroom_web_retention_rounds_total{outcome=\"failed\"}").await, 0);
        if jobs > 0 {
            holder = Some(n);
        }
    }
    assert_eq!(removed, 6, "six aged jobs, each removed once in all:\n{}", logs_of(&replicas));
    assert!(skipped > 0, "one replica found the lease held:\n{}", logs_of(&replicas));
    assert!(!logs_of(&replicas).contains("retention sweep stopped"), "{}", logs_of(&replicas));

    // The holder dies; its lease runs out and the other sweeps the next aged jobs.
    let holder = holder.expect("one replica removed the jobs");
    let mut dead = replicas.remove(holder);
    dead.proc.kill();
    let survivor_before = counter(&replicas[0].base_url, "darkroom_web_retention_removed_total{kind=\"jobs\"}").await;
    let more = [
        forge_job(store, "owner2", "failed", chrono::Duration::days(3)).await,
        forge_job(store, "owner2", "cancelled", chrono::Duration::days(3)).await,
    ];
    until_gone(store, &more, Duration::from_secs(60), &logs_of(&replicas)).await;
    let survivor = &replicas[0];
    let survivor_after = counter(&survivor.base_url, "darkroom_web_retention_removed_total{kind=\"jobs\"}").await;
    assert_eq!(
        survivor_after - survivor_before,
        2,
        "the survivor took the lease over and swept:\n{}",
        logs_of(&replicas)
    );
}

on_both_backends!(
    aged_jobs_and_unused_logos_go_and_nothing_else_is_touched,
    two_replicas_sweep_once_and_one_takes_over_when_the_holder_dies,
);
