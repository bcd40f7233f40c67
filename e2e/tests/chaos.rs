//! Chaos on real processes, both backends: workers killed with SIGKILL at random moments,
//! workers stopped with SIGTERM mid-job, the S3/SQS server (or the embedded database) gone for
//! 30 s, the web app restarted during a batch. In every case every job reaches its final state
//! exactly once and nothing is lost.
//!
//! Jobs here use the debug-only stall hook (DARKROOM_TEST_STALL_ON_OUTPUT, see
//! processor/src/job.rs) so that each one is reliably in flight for a while: a job that takes
//! a few hundred milliseconds, like a big photo would, without burning the CI machine's cores.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use darkroom_e2e::{decode, Kind, TestApp};
use futures_util::StreamExt;
use serde_json::Value;

const PHOTO: &str = "M03_storm_1920x1280_exif.jpg";
/// Two outputs; the one named `slow` stalls (in test builds) for DARKROOM_TEST_STALL_MS.
const RECIPE: &str = r#"{"outputs":[
    {"name":"slow","ops":[{"op":"resize","width":800,"height":800}],"format":"jpeg","quality":80},
    {"name":"thumb","ops":[{"op":"resize","width":200,"height":200,"fit":"cover"}],"format":"webp"}]}"#;

/// A small, seedable random source (the seed is printed so a failing run can be replayed).
struct Rng(u64);
impl Rng {
    fn from_env() -> Rng {
        let seed = std::env::var("DARKROOM_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        });
        eprintln!("chaos seed: {seed} (set DARKROOM_CHAOS_SEED to replay)");
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Upload `n` copies of the photo (at most 10 per request) and return their job ids.
async fn submit(app: &TestApp, client: &reqwest::Client, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    while ids.len() < n {
        let files = vec![PHOTO; (n - ids.len()).min(10)];
        let resp = app.upload(client, &files, Some(RECIPE)).await;
        assert_eq!(resp.status(), 202);
        let body: Value = resp.json().await.unwrap();
        ids.extend(body["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_string()));
    }
    ids
}

/// Every job of this client, by id (every page of `GET /api/jobs`).
async fn jobs(app: &TestApp, client: &reqwest::Client) -> HashMap<String, Value> {
    let mut all = HashMap::new();
    let mut url = app.url("/api/jobs?limit=100");
    loop {
        let body: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
        all.extend(body["jobs"].as_array().unwrap().iter().map(|j| (j["id"].as_str().unwrap().to_string(), j.clone())));
        match body["next_cursor"].as_str() {
            Some(cursor) => url = app.url(&format!("/api/jobs?limit=100&cursor={cursor}")),
            None => return all,
        }
    }
}

fn is_final(job: &Value) -> bool {
    matches!(job["state"].as_str(), Some("done" | "failed"))
}

/// Await the first job of `ids` that reaches `state`.
async fn await_any(app: &TestApp, client: &reqwest::Client, ids: &[String], state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = jobs(app, client).await;
        if let Some(j) = ids.iter().filter_map(|id| all.get(id)).find(|j| j["state"] == state) {
            return j.clone();
        }
        assert!(Instant::now() < deadline, "no job reached {state} within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until every job is final (polling the API, restarting dead processors as a supervisor
/// would); returns them.
async fn await_all_final(app: &mut TestApp, client: &reqwest::Client, ids: &[String], limit: Duration) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        app.restart_dead_processors();
        let all = jobs(app, client).await;
        let finals: Vec<Value> = ids.iter().filter_map(|id| all.get(id)).filter(|j| is_final(j)).cloned().collect();
        if finals.len() == ids.len() {
            return finals;
        }
        if Instant::now() >= deadline {
            app.dump_logs();
            let open: Vec<_> = ids.iter().filter_map(|id| all.get(id)).filter(|j| !is_final(j)).collect();
            panic!("{} of {} jobs not final within {limit:?}; e.g. {}", open.len(), ids.len(), open[0]);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every job done exactly once (one `done` entry, no `failed`), with valid outputs.
async fn assert_all_done_once(app: &TestApp, client: &reqwest::Client, finals: &[Value]) {
    for job in finals {
        assert_eq!(job["state"], "done", "{job}");
        let full = app.job(client, job["id"].as_str().unwrap()).await;
        let states: Vec<&str> =
            full["timeline"].as_array().unwrap().iter().map(|t| t["state"].as_str().unwrap()).collect();
        assert_eq!(states.iter().filter(|s| **s == "done").count(), 1, "done exactly once: {full}");
        assert!(!states.contains(&"failed"), "{full}");
        let outputs = full["outputs"].as_array().unwrap();
        assert_eq!(outputs.len(), 2, "{full}");
        for o in outputs {
            let url = app.url(o["url"].as_str().unwrap());
            let bytes = client.get(&url).send().await.unwrap().bytes().await.unwrap();
            let (_, w, h) = decode(&bytes);
            assert_eq!((w, h), (o["width"].as_u64().unwrap() as u32, o["height"].as_u64().unwrap() as u32), "{url}");
        }
    }
}

async fn assert_no_dead_letters(app: &TestApp) {
    let dlq = app.backend().await.dead_letters.counts().await.unwrap();
    assert_eq!(dlq.visible + dlq.in_flight, 0, "nothing in the dead-letter queue: {dlq:?}");
}

/// Entries of the timeline that record a lost worker.
fn lost_entries(job: &Value) -> Vec<Value> {
    job["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["note"].as_str().unwrap_or("").starts_with("worker lost"))
        .cloned()
        .collect()
}

/// When a timeline entry happened, in milliseconds.
fn at(entry: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(entry["at"].as_str().unwrap()).unwrap().timestamp_millis()
}

/// 50 jobs, 3 workers; SIGKILL a worker that is processing a job, at random moments, until
/// all are done (killed workers are restarted, as a supervisor would).
async fn fifty_jobs_survive_random_kill_9s(kind: Kind) {
    // Receive counts climb faster than kills: each job of a killed worker counts a receive, and
    // on SQS (and moto) the killed process's pending long poll is still answered, taking up to
    // `concurrency` messages that nobody works on until their visibility timeout (a "phantom"
    // receive). With the default of 3 receives a job could be dead-lettered by bad luck alone,
    // so this test allows 10; the poison-job test (faults.rs) covers the dead-letter path.
    let mut app = TestApp::spawn_with_env(
        kind,
        true,
        0,
        &[
            ("DARKROOM_VISIBILITY_TIMEOUT", "3"),
            ("DARKROOM_MAX_RECEIVES", "10"),
            ("DARKROOM_TEST_STALL_ON_OUTPUT", "slow"),
            ("DARKROOM_TEST_STALL_MS", "800"),
        ],
    )
    .await;
    let client = app.client.clone();
    // The whole batch is queued before the 3 workers start, so it is busy from the first kill.
    let ids = submit(&app, &client, 50).await;
    for _ in 0..3 {
        app.start_processor();
    }
    let mut rng = Rng::from_env();
    let mut kills = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    while kills.len() < 6 {
        let all = jobs(&app, &client).await;
        // Kill while the batch is busy: near its end every kill would hit the same last jobs,
        // which tests bad luck, not recovery.
        if ids.iter().filter(|id| !all.get(*id).is_some_and(is_final)).count() < 10 {
            break;
        }
        let busy: Vec<&Value> = all.values().filter(|j| j["state"] == "processing").collect();
        if !busy.is_empty() {
            // A random worker among those working on a job right now.
            let victim = busy[rng.below(busy.len())]["worker"].as_str().unwrap().to_string();
            if let Some(n) = (0..app.processors.len()).find(|&n| app.worker_id(n) == victim) {
                if app.processors[n].is_running() {
                    app.processors[n].kill();
                    eprintln!("kill -9 {victim}");
                    kills.push(victim);
                }
            }
        }
        app.restart_dead_processors();
        assert!(Instant::now() < deadline, "the batch did not finish within 240 s");
        // The next kill comes at a random moment 0.2-1.2 s later.
        tokio::time::sleep(Duration::from_millis(200 + rng.below(1000) as u64)).await;
    }
    let finals = await_all_final(&mut app, &client, &ids, Duration::from_secs(240)).await;
    assert!(kills.len() >= 3, "the batch ended before 3 kills ({kills:?}); make the jobs slower");
    assert_all_done_once(&app, &client, &finals).await;
    assert_no_dead_letters(&app).await;

    // The kills hit jobs mid-way: those jobs' timelines name the lost worker, and another
    // attempt finished them. Print how long redelivery took.
    let mut redelivered = 0;
    for job in &finals {
        let full = app.job(&client, job["id"].as_str().unwrap()).await;
        for lost in lost_entries(&full) {
            redelivered += 1;
            let t = full["timeline"].as_array().unwrap();
            let began = t.iter().find(|e| e["state"] == "processing" && e["attempt"] == lost["attempt"]).unwrap();
            // The next attempt: `processing`, or `done` re-announced if the lost one had
            // already stored the outputs.
            let next = t
                .iter()
                .find(|e| e["state"] != "retrying" && e["attempt"].as_u64() > lost["attempt"].as_u64())
                .unwrap_or_else(|| panic!("no attempt after the lost one: {full}"));
            eprintln!(
                "job {}: {} lost during attempt {}, attempt {} began {} ms after the lost one",
                full["id"],
                lost["worker"],
                lost["attempt"],
                next["attempt"],
                at(next) - at(began)
            );
            assert!(kills.contains(&lost["worker"].as_str().unwrap().to_string()), "{lost} was not killed: {kills:?}");
        }
        assert!(full["attempts"].as_u64().unwrap() >= 1);
    }
    assert!(redelivered >= 1, "no kill hit a job mid-way (kills: {kills:?})");
}

/// SIGTERM while a job runs: the worker finishes it within the grace period and exits 0.
async fn sigterm_mid_job_finishes_the_job_and_exits_0(kind: Kind) {
    let mut app = TestApp::spawn_with_env(
        kind,
        true,
        0,
        &[
            ("DARKROOM_SHUTDOWN_GRACE", "30"),
            ("DARKROOM_TEST_STALL_ON_OUTPUT", "slow"),
            ("DARKROOM_TEST_STALL_MS", "3000"),
        ],
    )
    .await;
    app.start_processor();
    let client = app.client.clone();
    let id = submit(&app, &client, 1).await.remove(0);
    app.wait_for_job(&client, &id, Duration::from_secs(60), "processing", |j| j["state"] == "processing").await;
    app.processors[0].terminate();
    let status = app.processors[0].wait_exit(Duration::from_secs(30)).await;
    let status = status.unwrap_or_else(|| panic!("the worker did not exit within the 30 s grace period"));
    assert!(status.success(), "exit status {status:?}\n{}", app.processors[0].log_text());
    let job = app.wait_for_job(&client, &id, Duration::from_secs(10), "final", is_final).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!((job["attempts"].as_u64(), job["worker"].as_str()), (Some(1), Some("worker-0")), "{job}");
    assert!(app.processors[0].log_text().contains("finishing in-flight jobs"));
}

/// SIGTERM with a job that cannot finish within the grace period: the worker releases it at
/// once (not after the visibility timeout), exits 0, and another worker finishes it.
async fn sigterm_past_the_grace_period_releases_the_job_to_another_worker(kind: Kind) {
    let mut app = TestApp::spawn_with_env(kind, true, 0, &[("DARKROOM_VISIBILITY_TIMEOUT", "120")]).await;
    app.start_processor_with(&[
        ("DARKROOM_SHUTDOWN_GRACE", "1"),
        ("DARKROOM_TEST_STALL_ON_OUTPUT", "slow"),
        ("DARKROOM_TEST_STALL_MS", "600000"),
    ]);
    let client = app.client.clone();
    let id = submit(&app, &client, 1).await.remove(0);
    app.wait_for_job(&client, &id, Duration::from_secs(60), "processing", |j| j["state"] == "processing").await;
    app.start_processor(); // worker-1, no stall
    app.processors[0].terminate();
    let status = app.processors[0].wait_exit(Duration::from_secs(15)).await;
    let status = status.unwrap_or_else(|| panic!("worker-0 did not exit within grace + release time"));
    assert!(status.success(), "exit status {status:?}\n{}", app.processors[0].log_text());

    // Without the release the message would stay hidden for the 120 s visibility timeout.
    let job = app.wait_for_job(&client, &id, Duration::from_secs(60), "final", is_final).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!((job["attempts"].as_u64(), job["worker"].as_str()), (Some(2), Some("worker-1")), "{job}");
    let released = job["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["state"] == "retrying" && t["worker"] == "worker-0")
        .unwrap_or_else(|| panic!("no `retrying` entry from worker-0: {job}"))
        .clone();
    assert!(released["note"].as_str().unwrap().starts_with("released"), "{released}");
    assert!(lost_entries(&job).is_empty(), "a released job is not a lost one: {job}");
}

/// A worker that dies after storing the outputs but before reporting: the next attempt finds
/// them and re-announces `done` without rendering again.
async fn a_redelivered_finished_job_is_re_announced_not_redone(kind: Kind) {
    let mut app = TestApp::spawn_with_env(kind, true, 0, &[("DARKROOM_VISIBILITY_TIMEOUT", "2")]).await;
    app.start_processor_with(&[("DARKROOM_TEST_ABORT_AFTER_OUTPUTS", "slow")]);
    let client = app.client.clone();
    let id = submit(&app, &client, 1).await.remove(0);
    assert!(app.processors[0].wait_exit(Duration::from_secs(60)).await.is_some(), "the hook aborts worker-0");
    app.start_processor();
    let job = app.wait_for_job(&client, &id, Duration::from_secs(60), "final", is_final).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["worker"], "worker-1", "{job}");
    let t = job["timeline"].as_array().unwrap();
    let done = t.last().unwrap();
    assert!(done["note"].as_str().unwrap_or("").contains("re-announced"), "{job}");
    assert!(
        !t.iter().any(|e| e["state"] == "processing" && e["worker"] == "worker-1"),
        "worker-1 rendered again: {job}"
    );
    assert_all_done_once(&app, &client, &[job]).await;
}

/// The S3/SQS server (through a proxy that cuts it off) or the embedded queue database (held
/// locked) is unavailable for 30 s during a batch: every process logs it, backs off and
/// recovers by itself; every job ends done.
async fn a_thirty_second_outage_during_a_batch_loses_nothing(kind: Kind) {
    let outage = Duration::from_secs(
        std::env::var("DARKROOM_TEST_OUTAGE_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(30),
    );
    let env = [
        ("DARKROOM_VISIBILITY_TIMEOUT", "5"),
        ("DARKROOM_TEST_STALL_ON_OUTPUT", "slow"),
        ("DARKROOM_TEST_STALL_MS", "1000"),
    ];
    let mut app = TestApp::new(kind, &env);
    let proxy = darkroom_e2e::chaos::proxy_for(&mut app).await;
    app.start_web();
    app.start_processor();
    app.start_processor();
    let client = app.client.clone();
    let ids = submit(&app, &client, 12).await;
    await_any(&app, &client, &ids, "processing").await;

    let began = Instant::now();
    let lock = darkroom_e2e::chaos::begin_outage(proxy.as_ref(), &app.site.data_dir);
    eprintln!("outage begins ({kind:?})");
    tokio::time::sleep(outage).await; // the outage itself: its length is the point of the test
    match (&proxy, lock) {
        (Some(p), _) => {
            p.up();
            assert!(p.refused() > 0, "no process tried to reach the server during the outage");
        }
        (None, Some(db)) => db.execute_batch("ROLLBACK").unwrap(),
        (None, None) => unreachable!(),
    }
    eprintln!("outage over after {:?}", began.elapsed());

    let finals = await_all_final(&mut app, &client, &ids, Duration::from_secs(180)).await;
    eprintln!("all {} jobs final {:?} after the outage began", ids.len(), began.elapsed());
    for p in app.processors.iter_mut() {
        assert!(p.is_running(), "no process needed a restart: {}", p.log.display());
    }
    assert!(app.web.as_mut().unwrap().is_running());
    for p in app.web.iter().chain(app.processors.iter()) {
        assert!(p.log_text().contains(" WARN "), "{} logged nothing about the outage", p.log.display());
    }
    assert_all_done_once(&app, &client, &finals).await;
}

/// The web app is killed (SIGKILL) and restarted during a batch: no job is lost, statuses that
/// arrived meanwhile are applied, every job reaches its final state in the API, and a live
/// event stream reconnects (with Last-Event-ID, as EventSource does) and sees the job finish.
async fn restarting_the_web_app_during_a_batch_loses_nothing(kind: Kind) {
    let mut app = TestApp::spawn_with_env(
        kind,
        true,
        2,
        // No presence messages: what arrives in the reply queue while the web app is down is statuses.
        &[
            ("DARKROOM_TEST_STALL_ON_OUTPUT", "slow"),
            ("DARKROOM_TEST_STALL_MS", "300"),
            ("DARKROOM_WORKER_HEARTBEAT", "0"),
        ],
    )
    .await;
    let client = app.client.clone();
    let ids = submit(&app, &client, 20).await;
    let watched = ids.last().unwrap().clone(); // queued last, so still open after the restart
    let events = client.get(app.url(&format!("/api/jobs/{watched}/events"))).send().await.unwrap();
    assert_eq!(events.status(), 200);
    let mut stream = events.bytes_stream();
    let first = String::from_utf8_lossy(&stream.next().await.unwrap().unwrap()).into_owned();
    let last_id = first.lines().find_map(|l| l.strip_prefix("id: ")).expect("events carry an id").to_string();
    await_any(&app, &client, &ids, "processing").await;

    app.web.as_mut().unwrap().kill();
    // The stream ends with the web app.
    let ended = tokio::time::timeout(Duration::from_secs(10), async { while let Some(Ok(_)) = stream.next().await {} });
    assert!(ended.await.is_ok(), "the event stream did not end when the web app died");
    // Statuses keep arriving in the reply queue while the web app is down.
    let backend = app.backend().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while backend.replies.counts().await.unwrap().visible == 0 {
        assert!(Instant::now() < deadline, "no status arrived while the web app was down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.restart_web_same_port();

    // Reconnect as a browser's EventSource does: same URL, Last-Event-ID.
    let resp = client
        .get(app.url(&format!("/api/jobs/{watched}/events")))
        .header("Last-Event-ID", &last_id)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "same cookie, same job after the restart");
    let seen = darkroom_e2e::follow_response(resp, &watched).await;
    assert_eq!(seen.last().unwrap()["state"], "done", "{seen:?}");

    let finals = await_all_final(&mut app, &client, &ids, Duration::from_secs(120)).await;
    assert_all_done_once(&app, &client, &finals).await;
    for job in &finals {
        let full = app.job(&client, job["id"].as_str().unwrap()).await;
        let states: Vec<&str> =
            full["timeline"].as_array().unwrap().iter().map(|t| t["state"].as_str().unwrap()).collect();
        assert_eq!(states.first(), Some(&"queued"), "{full}");
        assert_eq!(states.last(), Some(&"done"), "statuses applied in order: {full}");
    }
}

darkroom_e2e::on_both_backends!(
    fifty_jobs_survive_random_kill_9s,
    sigterm_mid_job_finishes_the_job_and_exits_0,
    sigterm_past_the_grace_period_releases_the_job_to_another_worker,
    a_redelivered_finished_job_is_re_announced_not_redone,
    a_thirty_second_outage_during_a_batch_loses_nothing,
    restarting_the_web_app_during_a_batch_loses_nothing,
);
