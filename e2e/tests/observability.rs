//! Observability (issue 13): the Prometheus `/metrics` of the web app (its HTTP port) and of a
//! processor (its probe port, `DARKROOM_PROCESSOR_BIND`) count a real batch, and the web app's
//! `/livez` stays up through a queue outage while `/readyz` reports it.
//!
//! The exposition is parsed here (OpenMetrics text: a counter's `# TYPE` names the family,
//! its sample ends in `_total`), so a renamed metric or a wrong value fails the test.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use darkroom_e2e::{on_both_backends, Kind, TestApp};
use serde_json::Value;

/// A parsed exposition: `# TYPE` per family and every sample's value by its full text key
/// (`name{label="v",…}` as printed).
struct Scrape {
    text: String,
    types: HashMap<String, String>,
    samples: HashMap<String, f64>,
}

impl Scrape {
    fn parse(text: String) -> Scrape {
        let mut types = HashMap::new();
        let mut samples = HashMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("`# TYPE name kind`");
                types.insert(name.to_string(), kind.to_string());
            } else if !line.starts_with('#') && !line.is_empty() {
                let (key, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("sample without a value: {line}"));
                let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a number in {line}"));
                samples.insert(key.to_string(), value);
            }
        }
        assert!(text.trim_end().ends_with("# EOF"), "an OpenMetrics exposition ends with # EOF:\n{text}");
        Scrape { text, types, samples }
    }

    /// The value of the sample printed as `key`, or a panic that shows the scrape.
    fn value(&self, key: &str) -> f64 {
        *self.samples.get(key).unwrap_or_else(|| panic!("no sample {key} in\n{}", self.text))
    }

    fn assert_type(&self, family: &str, kind: &str) {
        assert_eq!(self.types.get(family).map(String::as_str), Some(kind), "# TYPE of {family} in\n{}", self.text);
    }
}

async fn scrape(client: &reqwest::Client, url: &str) -> Scrape {
    let resp = client.get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(resp.status(), 200, "GET {url}");
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/openmetrics-text"), "content type of {url}: {ct}");
    Scrape::parse(resp.text().await.unwrap())
}

/// The address a processor's probe port listens on, from its log (`probe port … addr=…`).
async fn probe_addr(app: &TestApp, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = app.processors[n].log_text();
        if let Some(line) = log.lines().find(|l| l.contains("probe port")) {
            let addr = line.split("addr=").nth(1).expect("the probe port line names its address");
            return addr.split_whitespace().next().unwrap().to_string();
        }
        if Instant::now() >= deadline {
            app.dump_logs();
            panic!("processor {n} did not log its probe port");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Three small photos that pass, and one (2.5 MP) over the processor's pixel limit of 1 MP
/// (the web app's limit is the default 100 MP, so it is queued and fails in the processor).
const BATCH: [&str; 4] = [
    "S01_rocket_640x427.jpg",
    "S02_chelsea_451x300.png",
    "S03_camera_512x512_gray.png",
    "M03_storm_1920x1280_exif.jpg",
];
const FAILS: &str = "M03_storm_1920x1280_exif.jpg";

/// The processor's counters once every job of the batch is over (it counts a job right after
/// posting its final status: poll briefly for the last).
async fn check_processor_metrics(c: &reqwest::Client, processor_metrics: &str) {
    let n = BATCH.len() as f64;
    let done = n - 1.0;
    let deadline = Instant::now() + Duration::from_secs(10);
    let p = loop {
        let p = scrape(c, processor_metrics).await;
        let counted = p.samples.get("darkroom_processor_jobs_done_total").copied().unwrap_or(0.0)
            + p.samples.get("darkroom_processor_jobs_failed_total{code=\"too_many_pixels\"}").copied().unwrap_or(0.0);
        if counted == n || Instant::now() >= deadline {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    p.assert_type("darkroom_processor_jobs_received", "counter");
    p.assert_type("darkroom_processor_jobs_done", "counter");
    p.assert_type("darkroom_processor_jobs_failed", "counter");
    p.assert_type("darkroom_processor_jobs_retried", "counter");
    p.assert_type("darkroom_processor_queue_wait_seconds", "histogram");
    p.assert_type("darkroom_processor_stage_duration_seconds", "histogram");
    p.assert_type("darkroom_processor_job_slots", "gauge");
    p.assert_type("darkroom_processor_job_slots_busy", "gauge");
    p.assert_type("darkroom_processor_visibility_extensions", "counter");
    assert_eq!(p.value("darkroom_processor_jobs_received_total"), n);
    assert_eq!(p.value("darkroom_processor_jobs_done_total"), done);
    assert_eq!(p.value("darkroom_processor_jobs_failed_total{code=\"too_many_pixels\"}"), 1.0);
    assert_eq!(p.value("darkroom_processor_queue_wait_seconds_count"), n);
    assert!(p.value("darkroom_processor_queue_wait_seconds_sum") > 0.0);
    // The failed job has no store time: it failed in the sandbox, before any output.
    for (stage, jobs) in [("download", n), ("render", n), ("store", done), ("status", n)] {
        let count = p.value(&format!("darkroom_processor_stage_duration_seconds_count{{stage=\"{stage}\"}}"));
        assert_eq!(count, jobs, "{stage} times");
    }
    assert!(p.value("darkroom_processor_stage_duration_seconds_sum{stage=\"render\"}") > 0.0);
    assert_eq!(p.value("darkroom_processor_job_slots"), 2.0, "DARKROOM_CONCURRENCY of the test processors");
    assert_eq!(p.value("darkroom_processor_job_slots_busy"), 0.0, "every job is over");
    assert_eq!(p.value("darkroom_processor_jobs_retried_total{reason=\"error\"}"), 0.0);
}

/// The web app's counters once every job of the batch is over.
async fn check_web_metrics(c: &reqwest::Client, web_metrics: &str) -> Scrape {
    let n = BATCH.len() as f64;
    let done = n - 1.0;
    let w = scrape(c, web_metrics).await;
    w.assert_type("darkroom_web_http_requests", "counter");
    w.assert_type("darkroom_web_http_request_duration_seconds", "histogram");
    w.assert_type("darkroom_web_jobs_submitted", "counter");
    w.assert_type("darkroom_web_statuses_applied", "counter");
    w.assert_type("darkroom_web_sse_clients", "gauge");
    w.assert_type("darkroom_web_queue_messages_visible", "gauge");
    w.assert_type("darkroom_web_queue_messages_in_flight", "gauge");
    w.assert_type("darkroom_web_queue_up", "gauge");
    assert_eq!(w.value("darkroom_web_jobs_submitted_total"), n);
    assert_eq!(w.value("darkroom_web_http_requests_total{method=\"POST\",route=\"/api/jobs\",status=\"202\"}"), 1.0);
    assert_eq!(
        w.value("darkroom_web_http_requests_total{method=\"GET\",route=\"/api/jobs/{id}/events\",status=\"200\"}"),
        n,
        "one event stream per job, counted by its route pattern"
    );
    assert_eq!(w.value("darkroom_web_statuses_applied_total{state=\"done\"}"), done);
    assert_eq!(w.value("darkroom_web_statuses_applied_total{state=\"failed\"}"), 1.0);
    assert_eq!(w.value("darkroom_web_statuses_applied_total{state=\"processing\"}"), n);
    for queue in ["jobs", "replies", "dead_letters"] {
        assert_eq!(w.value(&format!("darkroom_web_queue_up{{queue=\"{queue}\"}}")), 1.0);
        w.value(&format!("darkroom_web_queue_messages_visible{{queue=\"{queue}\"}}"));
        w.value(&format!("darkroom_web_queue_messages_in_flight{{queue=\"{queue}\"}}"));
    }
    w
}

async fn a_batch_is_counted_on_both_metrics_endpoints(kind: Kind) {
    let mut app = TestApp::new(kind, &[]);
    app.start_web();
    app.start_processor_with(&[("DARKROOM_PROCESSOR_BIND", "127.0.0.1:0"), ("DARKROOM_MAX_PIXELS", "1000000")]);
    let processor_metrics = format!("http://{}/metrics", probe_addr(&app, 0).await);
    let web_metrics = app.url("/metrics");
    let c = &app.client;

    let resp = app.upload(c, &BATCH, Some(r#"{"preset":"thumbnail"}"#)).await;
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    let ids: Vec<String> = body["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().into()).collect();
    assert_eq!(ids.len(), BATCH.len());

    // An open event feed is an SSE client (the feed of all the caller's jobs never ends by itself).
    let feed = c.get(app.url("/api/events")).send().await.unwrap();
    assert_eq!(feed.status(), 200);

    // One scrape of each while the batch runs (for the issue's note).
    let during_web = scrape(c, &web_metrics).await;
    assert_eq!(during_web.value("darkroom_web_sse_clients"), 1.0, "the open feed");
    drop(feed);
    let during_processor = scrape(c, &processor_metrics).await;
    println!("==== {kind:?}: web /metrics during a batch of {} ====\n{}", BATCH.len(), during_web.text);
    println!("==== {kind:?}: processor /metrics during a batch of {} ====\n{}", BATCH.len(), during_processor.text);

    for (id, file) in ids.iter().zip(BATCH) {
        let events = app.follow(c, id).await;
        let last = events.last().unwrap();
        let expect = if file == FAILS { "failed" } else { "done" };
        if last["state"] != expect {
            app.dump_logs();
        }
        assert_eq!(last["state"], expect, "{file}: {last}");
    }

    check_processor_metrics(c, &processor_metrics).await;
    let w = check_web_metrics(c, &web_metrics).await;
    w.value("darkroom_web_sse_clients");
    for id in &ids {
        assert!(!w.text.contains(id.as_str()), "a job id in the web app's labels:\n{}", w.text);
    }
}

async fn liveness_holds_through_a_queue_outage_while_readiness_fails(kind: Kind) {
    let mut app = TestApp::new(kind, &[]);
    let proxy = darkroom_e2e::chaos::proxy_for(&mut app).await;
    app.start_web();
    app.start_processor_with(&[("DARKROOM_PROCESSOR_BIND", "127.0.0.1:0"), ("DARKROOM_POLL_WAIT", "1")]);
    let probe = format!("http://{}", probe_addr(&app, 0).await);
    let client = TestApp::new_client();
    let get = |path: &str| client.get(app.url(path)).send();
    let processor = |path: &str| client.get(format!("{probe}{path}")).send();
    wait_for_status(&processor, "/readyz", 200, "the processor is ready").await;

    assert_eq!(get("/livez").await.unwrap().status(), 200);
    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "ready");

    // The outage: the server cut off (moto), or the queue database locked (embedded).
    let lock = darkroom_e2e::chaos::begin_outage(proxy.as_ref(), &app.site.data_dir);
    let started = Instant::now();
    let live = get("/livez").await.unwrap();
    assert_eq!(live.status(), 200, "liveness never depends on the queues");
    assert!(started.elapsed() < Duration::from_secs(2), "/livez answered at once: {:?}", started.elapsed());
    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "not_ready", "{body}");
    let down: Vec<&str> = body["unreachable"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(down.contains(&"the job queue"), "{body}");
    // The queue depths the web app cannot read are reported as down, not as stale numbers.
    let w = scrape(&client, &app.url("/metrics")).await;
    assert_eq!(w.value("darkroom_web_queue_up{queue=\"jobs\"}"), 0.0);
    assert!(!w.text.contains("darkroom_web_queue_messages_visible{queue=\"jobs\"}"), "{}", w.text);
    assert_eq!(get("/livez").await.unwrap().status(), 200);
    // The processor too: alive, not ready once a receive from the job queue has failed.
    wait_for_status(&processor, "/readyz", 503, "the processor is not ready during the outage").await;
    assert_eq!(processor("/livez").await.unwrap().status(), 200);

    // Back up: ready again.
    match &proxy {
        Some(p) => p.up(),
        None => drop(lock),
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if get("/readyz").await.unwrap().status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "/readyz did not come back after the outage");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for_status(&processor, "/readyz", 200, "the processor is ready again after the outage").await;
    assert!(app.web.as_ref().unwrap().log_text().contains("readiness check: the job queue"));
}

/// Poll `path` through `get` (every 100 ms, up to 30 s) until it answers `status`.
async fn wait_for_status<F, Fut>(get: &F, path: &str, status: u16, what: &str)
where
    F: Fn(&str) -> Fut,
    Fut: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = get(path).await {
            if r.status() == status {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{what}: {path} did not answer {status} within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One worker row of the ops page: `data-worker`, `data-worker-state`, `data-busy`, `data-slots`.
#[derive(Debug, PartialEq)]
struct WorkerRow {
    name: String,
    state: String,
    busy: String,
    slots: Option<String>,
}

fn worker_rows(page: &str) -> Vec<WorkerRow> {
    let attr = |tag: &str, name: &str| {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        Some(tag[start..][..tag[start..].find('"')?].to_string())
    };
    page.split("<tr data-worker=")
        .skip(1)
        .map(|rest| {
            let tag = format!(" data-worker={}", &rest[..rest.find('>').unwrap()]);
            WorkerRow {
                name: attr(&tag, "data-worker").unwrap(),
                state: attr(&tag, "data-worker-state").unwrap_or_default(),
                busy: attr(&tag, "data-busy").unwrap_or_default(),
                slots: attr(&tag, "data-slots"),
            }
        })
        .collect()
}

/// Poll the ops page (signed in as `ops`) until `want` holds for its worker rows (30 s).
async fn await_workers(app: &TestApp, ops: &reqwest::Client, what: &str, want: impl Fn(&[WorkerRow]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp = ops.get(app.url("/ops")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "signed in to the ops page");
        let rows = worker_rows(&resp.text().await.unwrap());
        if want(&rows) {
            return;
        }
        if Instant::now() >= deadline {
            app.dump_logs();
            panic!("the ops page did not show {what} within 30 s; its workers: {rows:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Issue 13: the ops page shows workers as soon as they start, idle ones included (presence
/// messages on the reply queue, not job statuses: no job is submitted here), with their slots;
/// one stopped with SIGTERM as stopped, one killed outright as silent after three missed
/// presence intervals; and the web app's `darkroom_web_workers` gauge agrees.
async fn idle_workers_show_on_the_ops_page_then_stopped_and_silent(kind: Kind) {
    const TOKEN: &str = "observability-admin-token-0123456789";
    let env = [("DARKROOM_ADMIN_TOKEN", TOKEN), ("DARKROOM_WORKER_HEARTBEAT", "1")];
    let mut app = TestApp::spawn_with_env(kind, true, 2, &env).await;
    let (w0, w1) = (app.worker_id(0), app.worker_id(1));
    let ops = ops_client(&app, TOKEN).await;

    let state = |rows: &[WorkerRow], name: &str| rows.iter().find(|r| r.name == name).map(|r| r.state.clone());
    await_workers(&app, &ops, "both workers idle with 2 slots each", |rows| {
        rows.len() == 2 && rows.iter().all(|r| r.state == "idle" && r.busy == "0" && r.slots.as_deref() == Some("2"))
    })
    .await;
    let page = ops.get(app.url("/ops")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(">idle</span>"), "the state in words: {page}");
    assert!(page.contains("2 slots · "), "each worker's slots, host and pid: {page}");
    let m = scrape(&ops, &app.url("/metrics")).await;
    m.assert_type("darkroom_web_workers", "gauge");
    assert_eq!(m.value("darkroom_web_workers{state=\"idle\"}"), 2.0);
    assert_eq!(m.value("darkroom_web_workers{state=\"busy\"}"), 0.0);
    assert_eq!(m.value("darkroom_web_worker_slots"), 4.0, "2 workers × DARKROOM_CONCURRENCY 2");

    // Scaled in: SIGTERM, the drain (nothing to finish), a last presence.
    app.processors[0].terminate();
    let exit = app.processors[0].wait_exit(Duration::from_secs(30)).await;
    assert!(exit.is_some_and(|s| s.success()), "a drained processor exits 0: {exit:?}");
    await_workers(&app, &ops, &format!("{w0} stopped, {w1} idle"), |rows| {
        state(rows, &w0).as_deref() == Some("stopped") && state(rows, &w1).as_deref() == Some("idle")
    })
    .await;

    // Killed outright: it says nothing more, and after 3 s (3 × 1 s) it is silent.
    let killed = Instant::now();
    app.processors[1].kill();
    await_workers(&app, &ops, &format!("{w1} silent"), |rows| state(rows, &w1).as_deref() == Some("silent")).await;
    assert!(
        killed.elapsed() >= Duration::from_secs(2),
        "not silent before its intervals passed: {:?}",
        killed.elapsed()
    );
    let m = scrape(&ops, &app.url("/metrics")).await;
    assert_eq!(m.value("darkroom_web_workers{state=\"stopped\"}"), 1.0);
    assert_eq!(m.value("darkroom_web_workers{state=\"silent\"}"), 1.0);
    assert_eq!(m.value("darkroom_web_workers{state=\"idle\"}"), 0.0);
    assert_eq!(m.value("darkroom_web_worker_slots"), 0.0, "no live worker");
    assert!(
        !app.web.as_ref().unwrap().log_text().contains("not a Darkroom status"),
        "the web app takes presence messages in, it does not drop them"
    );
}

/// Sign in to the ops page with `token`; the client keeps the session.
async fn ops_client(app: &TestApp, token: &str) -> reqwest::Client {
    let ops = TestApp::new_client();
    let resp = ops
        .post(app.url("/ops/login"))
        .header("origin", app.base_url.clone())
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "signed in and sent on to /ops");
    ops
}

/// A worker on a job is `busy 1 of 2`; after SIGTERM it is `stopping, 1 job left` while it
/// finishes the job (its presence keeps coming during the drain), then `stopped`, and the job
/// is done.
async fn a_busy_worker_shows_busy_then_stopping_while_it_drains(kind: Kind) {
    const TOKEN: &str = "observability-admin-token-0123456789";
    let env = [
        ("DARKROOM_ADMIN_TOKEN", TOKEN),
        ("DARKROOM_WORKER_HEARTBEAT", "1"),
        ("DARKROOM_TEST_STALL_ON_OUTPUT", "slow"),
        ("DARKROOM_TEST_STALL_MS", "6000"),
    ];
    let mut app = TestApp::spawn_with_env(kind, true, 1, &env).await;
    let w0 = app.worker_id(0);
    let ops = ops_client(&app, TOKEN).await;
    let recipe = r#"{"outputs":[{"name":"slow","ops":[{"op":"resize","width":100}],"format":"jpeg"}]}"#;
    let resp = app.upload(&app.client, &["S01_rocket_640x427.jpg"], Some(recipe)).await;
    assert_eq!(resp.status(), 202);
    let id = resp.json::<Value>().await.unwrap()["jobs"][0]["id"].as_str().unwrap().to_string();

    let row = |rows: &[WorkerRow]| rows.iter().find(|r| r.name == w0).map(|r| (r.state.clone(), r.busy.clone()));
    await_workers(&app, &ops, "the worker busy with 1 job", |rows| row(rows) == Some(("busy".into(), "1".into())))
        .await;
    let page = ops.get(app.url("/ops")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(">busy 1 of 2</span>"), "{page}");

    app.processors[0].terminate();
    await_workers(&app, &ops, "the worker stopping with 1 job left", |rows| {
        row(rows) == Some(("stopping".into(), "1".into()))
    })
    .await;
    let page = ops.get(app.url("/ops")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(">stopping, 1 job left</span>"), "{page}");
    let exit = app.processors[0].wait_exit(Duration::from_secs(60)).await;
    assert!(exit.is_some_and(|s| s.success()), "a drained processor exits 0: {exit:?}");
    await_workers(&app, &ops, "the worker stopped", |rows| row(rows) == Some(("stopped".into(), "0".into()))).await;
    let last = app.follow(&app.client, &id).await.pop().unwrap();
    assert_eq!(last["state"], "done", "the job finished in the drain: {last}");
}

on_both_backends!(
    a_batch_is_counted_on_both_metrics_endpoints,
    liveness_holds_through_a_queue_outage_while_readiness_fails,
    idle_workers_show_on_the_ops_page_then_stopped_and_silent,
    a_busy_worker_shows_busy_then_stopping_while_it_drains,
);
