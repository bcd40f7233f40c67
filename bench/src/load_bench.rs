//! End-to-end benchmark (issue 14): the whole service measured through its public HTTP API,
//! beside the engine alone on the same photos and recipes in the same run.
//!
//! `cargo run --release -p darkroom-bench --bin load-bench` builds the release binaries, and
//! for each backend (embedded, moto) and processor count (1, 2) starts a fresh system (the web
//! app and its processors, as e2e does), then runs the workloads with C concurrent clients. A client
//! uploads one photo (`POST /api/jobs`, its own browser identity) and follows the job's event
//! stream to `done`; it then starts the next. Per run it prints: upload latency and upload →
//! done latency (p50/p95/p99), jobs/s, input MP/s, CPU seconds per job of every process (web,
//! processors with their sandbox children, the queue server, this generator) and peak RSS,
//! and efficiency = end-to-end jobs/s ÷ engine-only jobs/s of the same mix, measured here
//! first with one thread per core (the processors' best case: no upload, no queue, no store).
//!
//! The generator is this process: tokio with two worker threads, reqwest, no image work;
//! its own CPU time per job is in the table so its cost is visible.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use darkroom_core::config::Backend;
use darkroom_e2e::{corpus, procfs, Kind, TestApp};
use futures_util::StreamExt;
use serde_json::Value;

#[derive(Parser, Clone)]
#[command(about = "End-to-end benchmark through the HTTP API (see bench/README.md)")]
struct Args {
    /// Backends to run: embedded, moto.
    #[arg(long, value_delimiter = ',', default_value = "embedded,moto")]
    backends: Vec<String>,
    /// Processor processes per system.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    processors: Vec<usize>,
    /// Workloads: idle, mix, small, big, web.
    #[arg(long, value_delimiter = ',', default_value = "idle,mix,small,big,web")]
    workloads: Vec<String>,
    /// Concurrent clients for the mixed workload.
    #[arg(long, value_delimiter = ',', default_value = "4,8")]
    clients: Vec<usize>,
    /// Jobs per mixed run (a multiple of 3: M03, M01, L02 in turn).
    #[arg(long, default_value_t = 90)]
    mix_jobs: usize,
    /// Jobs per small-photo run.
    #[arg(long, default_value_t = 200)]
    small_jobs: usize,
    /// Jobs of the idle (one client, one at a time) run.
    #[arg(long, default_value_t = 30)]
    idle_jobs: usize,
    /// Jobs of the 20 MP, three-output run.
    #[arg(long, default_value_t = 12)]
    big_jobs: usize,
    /// Render slots per processor (DARKROOM_CONCURRENCY); default: cores ÷ processors (at
    /// least 1), so the renders at once match the cores. Each processor also prefetches one job
    /// (DARKROOM_PREFETCH's default).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Run the capacity simulation instead: many processors on one queue, the engine replaced
    /// by a fixed cost (DARKROOM_SIMULATE_ENGINE_MS), jobs sent straight to the queue.
    #[arg(long)]
    simulate: bool,
    /// Processor counts of the simulation, in the order they are reached.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    sim_processors: Vec<usize>,
    /// The simulated engine's cost per job, in milliseconds.
    #[arg(long, default_value_t = 50)]
    sim_cost_ms: u64,
    /// Job slots per simulated processor.
    #[arg(long, default_value_t = 4)]
    sim_concurrency: usize,
    /// Seconds of work per simulation step at the ideal rate (jobs = ideal jobs/s × this),
    /// capped by --sim-max-jobs.
    #[arg(long, default_value_t = 8.0)]
    sim_seconds: f64,
    #[arg(long, default_value_t = 3000)]
    sim_max_jobs: usize,
}

/// The thumbnail recipe of the peers' mix (T1: fit in 400×400, JPEG q80).
const THUMB: &str = r#"{"outputs":[{"name":"thumb","ops":[{"op":"resize","width":400,"height":400,"fit":"inside"}],"format":"jpeg","quality":80}]}"#;
/// One 20 MP photo, three outputs: a thumbnail, a 1920 preview, a full-size WebP.
const BIG3: &str = r#"{"outputs":[
  {"name":"thumb","ops":[{"op":"resize","width":400,"height":400,"fit":"inside"}],"format":"jpeg","quality":80},
  {"name":"preview","ops":[{"op":"resize","width":1920,"height":1920,"fit":"inside"}],"format":"jpeg","quality":85},
  {"name":"webp","format":"webp","quality":80}]}"#;

const MIX: [&str; 3] = ["M03_storm_1920x1280_exif.jpg", "M01_picosdeeuropa_3264x2448.jpg", "L02_kleiber_6028x3391.jpg"];
const SMALL: &str = "S01_rocket_640x427.jpg";
const BIG: &str = "L02_kleiber_6028x3391.jpg";

/// A photo in memory with its size in megapixels.
#[derive(Clone)]
struct Photo {
    name: &'static str,
    bytes: bytes::Bytes,
    mp: f64,
}

fn photo(name: &'static str) -> Photo {
    let bytes = std::fs::read(corpus(name)).unwrap_or_else(|e| panic!("read corpus {name}: {e}"));
    let probe = darkroom_engine::probe(&bytes, &darkroom_engine::Limits::default()).expect("a readable photo");
    Photo { name, mp: probe.width as f64 * probe.height as f64 / 1e6, bytes: bytes.into() }
}

/// One workload: which photos in turn, which recipe, how many jobs by how many clients.
#[derive(Clone)]
struct Workload {
    label: String,
    photos: Vec<Photo>,
    recipe: &'static str,
    jobs: usize,
    clients: usize,
    /// Follow each job to `done` (false: upload only, the web tier alone).
    follow: bool,
}

impl Workload {
    /// A workload whose clients follow each job to `done`.
    fn followed(label: &str, photos: Vec<Photo>, recipe: &'static str, jobs: usize, clients: usize) -> Workload {
        Workload { label: label.into(), photos, recipe, jobs, clients, follow: true }
    }
}

/// What one job took.
#[derive(Clone, Copy)]
struct Sample {
    upload: Duration,
    to_done: Option<Duration>,
}

/// CPU seconds (user + system, reaped children included) of a process and its live descendants.
fn cpu_seconds(pid: u32) -> f64 {
    let mut total = 0.0;
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        total += own_cpu_seconds(p, true);
        stack.extend(procfs::children(p));
    }
    total
}

/// CPU seconds of one process: user + system, and its reaped children's if `reaped`.
fn own_cpu_seconds(pid: u32, reaped: bool) -> f64 {
    let tick = 100.0; // USER_HZ on Linux
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    let Some((_, rest)) = stat.rsplit_once(')') else { return 0.0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // fields 14..17 of stat (utime stime cutime cstime) are 11..14 after the name
    let n = if reaped { 4 } else { 2 };
    f[11..11 + n].iter().map(|v| v.parse::<f64>().unwrap_or(0.0)).sum::<f64>() / tick
}

/// This generator's own CPU seconds (the system under test runs as its child processes).
fn generator_cpu() -> f64 {
    own_cpu_seconds(std::process::id(), false)
}

/// Peak RSS (KiB) of a process and, separately, the largest of its descendants'.
fn peak_rss(pid: u32) -> (u64, u64) {
    let own = procfs::peak_rss_kib(pid);
    let mut kids = 0;
    let mut stack = procfs::children(pid);
    while let Some(p) = stack.pop() {
        kids = kids.max(procfs::peak_rss_kib(p));
        stack.extend(procfs::children(p));
    }
    (own, kids)
}

/// Reset the peak RSS of a process and its descendants (`/proc/PID/clear_refs`), so each
/// workload reports its own peak.
fn reset_peaks(pid: u32) {
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        let _ = std::fs::write(format!("/proc/{p}/clear_refs"), "5");
        stack.extend(procfs::children(p));
    }
}

/// The processes of one system, by role.
struct Roles {
    web: u32,
    processors: Vec<u32>,
    queue: Option<u32>,
}

impl Roles {
    fn of(app: &TestApp) -> Roles {
        Roles {
            web: app.web.as_ref().unwrap().child.id(),
            processors: app.processors.iter().map(|p| p.child.id()).collect(),
            queue: app.site.moto.as_ref().map(|m| m.pid()),
        }
    }
    fn cpu(&self) -> Cpu {
        Cpu {
            web: cpu_seconds(self.web),
            processors: self.processors.iter().map(|p| cpu_seconds(*p)).sum(),
            queue: self.queue.map(cpu_seconds).unwrap_or(0.0),
            generator: generator_cpu(),
        }
    }
    fn reset(&self) {
        for p in std::iter::once(self.web).chain(self.processors.iter().copied()).chain(self.queue) {
            reset_peaks(p);
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Cpu {
    web: f64,
    processors: f64,
    queue: f64,
    generator: f64,
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, o: Cpu) -> Cpu {
        Cpu {
            web: self.web - o.web,
            processors: self.processors - o.processors,
            queue: self.queue - o.queue,
            generator: self.generator - o.generator,
        }
    }
}

/// One row of the table.
struct Row {
    backend: String,
    processors: usize,
    workload: String,
    clients: usize,
    jobs: usize,
    failed: usize,
    wall: Duration,
    mp: f64,
    upload: [f64; 3],
    done: Option<[f64; 3]>,
    cpu: Cpu,
    /// Peak RSS MiB: web, largest processor, largest sandbox child, queue server.
    rss: [f64; 4],
    efficiency: Option<f64>,
}

fn percentiles(mut ms: Vec<f64>) -> [f64; 3] {
    if ms.is_empty() {
        return [f64::NAN; 3];
    }
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    [at(0.50), at(0.95), at(0.99)]
}

/// Upload one photo; the job id and how long the POST took.
async fn upload(client: &reqwest::Client, base: &str, p: &Photo, recipe: &str) -> Result<(String, Duration), String> {
    let t = Instant::now();
    let form = reqwest::multipart::Form::new()
        .text("recipe", recipe.to_string())
        .part("file", reqwest::multipart::Part::stream(p.bytes.clone()).file_name(p.name));
    let resp = client.post(format!("{base}/api/jobs")).multipart(form).send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body: Value = resp.json().await.map_err(|e| e.to_string())?;
    if status != 202 {
        return Err(format!("upload answered {status}: {body}"));
    }
    let id = body["jobs"][0]["id"].as_str().ok_or("no job id")?.to_string();
    Ok((id, t.elapsed()))
}

/// Follow the job's event stream until it is final; true if `done`.
async fn follow(client: &reqwest::Client, base: &str, id: &str) -> Result<bool, String> {
    let resp = client.get(format!("{base}/api/jobs/{id}/events")).send().await.map_err(|e| e.to_string())?;
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    while let Some(chunk) = stream.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk.map_err(|e| e.to_string())?));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                let v: Value = serde_json::from_str(data).map_err(|e| e.to_string())?;
                match v["state"].as_str() {
                    Some("done") => return Ok(true),
                    Some("failed") => return Ok(false),
                    _ => {}
                }
            }
        }
    }
    Err(format!("event stream of {id} ended early"))
}

/// Run `w` against `base`; the samples (failed jobs counted apart) and the wall time.
async fn drive(base: &str, w: &Workload) -> (Vec<Sample>, usize, Duration) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t = Instant::now();
    let mut tasks = vec![];
    for _ in 0..w.clients {
        let (next, base, w) = (next.clone(), base.to_string(), w.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().cookie_store(true).tcp_nodelay(true).build().unwrap();
            let (mut samples, mut failed) = (vec![], 0);
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= w.jobs {
                    break;
                }
                let p = &w.photos[i % w.photos.len()];
                let t0 = Instant::now();
                match upload(&client, &base, p, w.recipe).await {
                    Ok((id, up)) if w.follow => match follow(&client, &base, &id).await {
                        Ok(true) => samples.push(Sample { upload: up, to_done: Some(t0.elapsed()) }),
                        Ok(false) | Err(_) => failed += 1,
                    },
                    Ok((_, up)) => samples.push(Sample { upload: up, to_done: None }),
                    Err(e) => {
                        eprintln!("  upload failed: {e}");
                        failed += 1;
                    }
                }
            }
            (samples, failed)
        }));
    }
    let (mut all, mut failed) = (vec![], 0);
    for t in tasks {
        let (s, f) = t.await.expect("client task");
        all.extend(s);
        failed += f;
    }
    (all, failed, t.elapsed())
}

/// Engine-only jobs/s of `w`'s photos and recipe with one thread per core, no I/O: the
/// ceiling the service is measured against.
fn engine_only(w: &Workload, threads: usize) -> f64 {
    let recipe: Value = serde_json::from_str(w.recipe).unwrap();
    let specs: Vec<darkroom_engine::OutputSpec> = serde_json::from_value(recipe["outputs"].clone()).unwrap();
    let limits = darkroom_engine::Limits::default();
    darkroom_engine::memory::keep_freed_memory();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let jobs = w.jobs.max(threads * 3);
    // One warm-up per photo, as a processor that has run a few jobs.
    for p in &w.photos {
        darkroom_engine::process(&p.bytes, &specs, &limits).expect("engine");
    }
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= jobs {
                    break;
                }
                let p = &w.photos[i % w.photos.len()];
                darkroom_engine::process(&p.bytes, &specs, &limits).expect("engine");
            });
        }
    });
    jobs as f64 / t.elapsed().as_secs_f64()
}

fn workloads(args: &Args) -> Vec<Workload> {
    let mix: Vec<Photo> = MIX.iter().map(|n| photo(n)).collect();
    let mut out = vec![];
    for name in &args.workloads {
        match name.as_str() {
            "idle" => out.push(Workload::followed("idle M03 thumb", vec![mix[0].clone()], THUMB, args.idle_jobs, 1)),
            "mix" => {
                for &c in &args.clients {
                    out.push(Workload::followed("mixed thumbs", mix.clone(), THUMB, args.mix_jobs, c))
                }
            }
            "small" => out.push(Workload::followed("small photos", vec![photo(SMALL)], THUMB, args.small_jobs, 8)),
            "big" => out.push(Workload::followed("20 MP, 3 outputs", vec![photo(BIG)], BIG3, args.big_jobs, 2)),
            "web" => {} // run on a system without processors, below
            other => panic!("unknown workload {other}"),
        }
    }
    out
}

fn settings(args: &Args, processors: usize, cores: usize) -> Vec<(&'static str, String)> {
    let slots = args.concurrency.unwrap_or((cores / processors.max(1)).max(1));
    vec![
        ("DARKROOM_CONCURRENCY", slots.to_string()),
        ("DARKROOM_UPLOAD_RATE", "1000000/min".into()),
        ("DARKROOM_UPLOAD_RATE_PER_IP", "1000000/min".into()),
        ("DARKROOM_MAX_JOBS_PER_IDENTITY", "1000000".into()),
        ("DARKROOM_MAX_CONCURRENT_UPLOADS", "64".into()),
        ("RUST_LOG", "warn".into()),
    ]
}

async fn measure(app: &TestApp, backend: &str, w: &Workload, engine: Option<f64>) -> Row {
    let roles = Roles::of(app);
    roles.reset();
    let before = roles.cpu();
    let (samples, failed, wall) = drive(&app.base_url, w).await;
    let cpu = roles.cpu() - before;
    let jobs = samples.len();
    let (web_rss, _) = peak_rss(roles.web);
    let procs: Vec<(u64, u64)> = roles.processors.iter().map(|p| peak_rss(*p)).collect();
    let mib = |k: u64| k as f64 / 1024.0;
    let jobs_per_s = jobs as f64 / wall.as_secs_f64();
    let per_photo_mp: f64 = w.photos.iter().map(|p| p.mp).sum::<f64>() / w.photos.len() as f64;
    Row {
        backend: backend.into(),
        processors: roles.processors.len(),
        workload: w.label.clone(),
        clients: w.clients,
        jobs,
        failed,
        wall,
        mp: jobs_per_s * per_photo_mp,
        upload: percentiles(samples.iter().map(|s| s.upload.as_secs_f64() * 1e3).collect()),
        done: w
            .follow
            .then(|| percentiles(samples.iter().filter_map(|s| s.to_done).map(|d| d.as_secs_f64() * 1e3).collect())),
        cpu,
        rss: [
            mib(web_rss),
            mib(procs.iter().map(|p| p.0).max().unwrap_or(0)),
            mib(procs.iter().map(|p| p.1).max().unwrap_or(0)),
            mib(roles.queue.map(procfs::peak_rss_kib).unwrap_or(0)),
        ],
        efficiency: engine.map(|e| jobs_per_s / e),
    }
}

fn print_table(rows: &[Row], engine: &BTreeMap<String, f64>) {
    println!();
    println!("Engine only, one thread per core, no I/O (same photos and recipes, this run):");
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
    for (label, jps) in engine {
        // Every thread busy the whole time: the engine's CPU per job.
        println!("- {label}: {jps:.1} jobs/s ({:.1} ms of CPU per job)", cores * 1e3 / jps);
    }
    println!();
    println!(
        "| backend | procs | workload | clients | jobs | failed | jobs/s | MP/s | upload p50/p95/p99 ms | upload→done p50/p95/p99 ms | efficiency | CPU ms/job web / processors / queue / generator | peak RSS MiB web / processor / sandbox / queue |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let n = r.jobs.max(1) as f64;
        let f3 = |v: [f64; 3]| format!("{:.1} / {:.1} / {:.1}", v[0], v[1], v[2]);
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {} | {} | {} | {:.1} / {:.1} / {:.1} / {:.1} | {:.0} / {:.0} / {:.0} / {:.0} |",
            r.backend,
            r.processors,
            r.workload,
            r.clients,
            r.jobs,
            r.failed,
            r.jobs as f64 / r.wall.as_secs_f64(),
            r.mp,
            f3(r.upload),
            r.done.map(f3).unwrap_or_else(|| "-".into()),
            r.efficiency.map(|e| format!("{:.2}", e)).unwrap_or_else(|| "-".into()),
            r.cpu.web * 1e3 / n,
            r.cpu.processors * 1e3 / n,
            r.cpu.queue * 1e3 / n,
            r.cpu.generator * 1e3 / n,
            r.rss[0],
            r.rss[1],
            r.rss[2],
            r.rss[3],
        );
    }
}

/// Every processor ready before the clock starts (the warning it logs once connected).
async fn wait_until_simulating(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !app.processors.iter().all(|p| p.log_text().contains("SIMULATION")) {
        assert!(Instant::now() < deadline, "processors did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each job's original (the processor checks `originals/{job_id}`), stored before the clock starts.
async fn store_placeholder_originals(b: &Backend, ids: &[String]) {
    futures_util::stream::iter(ids.iter().map(|id| {
        let store = b.store.clone();
        let key = darkroom_protocol::keys::original(id);
        async move { store.put(&key, bytes::Bytes::from_static(b"placeholder"), "image/jpeg").await.unwrap() }
    }))
    .buffer_unordered(16)
    .collect::<Vec<()>>()
    .await;
}

/// Send one job per id straight to the job queue (in batches of 10, from a task) and read the
/// reply queue, as the web app would, until every job is done.
async fn send_and_await_done(b: &Backend, ids: &[String], spec: &darkroom_protocol::OutputSpec) {
    use darkroom_protocol::lifecycle::JobState;
    use darkroom_protocol::message::{JobMessage, Reply};
    let t = Instant::now();
    let jobs = ids.len();
    let bodies: Vec<String> = ids
        .iter()
        .map(|id| {
            JobMessage {
                job_id: id.clone(),
                original_key: darkroom_protocol::keys::original(id),
                outputs: vec![spec.clone()],
                submitted_at: chrono::Utc::now(),
                traceparent: None,
            }
            .to_json()
        })
        .collect();
    let sender = {
        let jobs_q = b.jobs.clone();
        tokio::spawn(async move {
            for chunk in bodies.chunks(10) {
                let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                jobs_q.send_batch(&refs).await.expect("send jobs");
            }
        })
    };
    let mut done = 0;
    while done < jobs {
        assert!(t.elapsed() < Duration::from_secs(600), "simulation step stalled at {done}/{jobs}");
        let got = b.replies.receive(10, Duration::from_secs(2)).await.expect("receive replies");
        let receipts: Vec<&str> = got.iter().map(|m| m.receipt.as_str()).collect();
        for m in &got {
            if let Ok(Reply::Status(s)) = Reply::from_json(&m.body) {
                if s.state == JobState::Done {
                    done += 1;
                }
            }
        }
        if !receipts.is_empty() {
            b.replies.delete_batch(&receipts).await.expect("delete replies");
        }
    }
    sender.await.unwrap();
}

/// The capacity simulation: for each backend, processors are added step by step (1, 2, 4, …)
/// on one queue; each step sends jobs straight to the job queue and reads the statuses back
/// itself (as the web app would), so the web tier is out of the picture. With the engine a
/// fixed sleep, jobs/s should grow as processors × slots ÷ cost until the queue backend (or
/// this machine's two cores, which every processor's queue and store calls share) stops it.
async fn simulate(args: &Args) {
    use darkroom_protocol::{Format, OutputSpec};
    println!();
    println!(
        "Capacity simulation: engine replaced by a {} ms wait, {} slots per processor, jobs sent straight to the job queue",
        args.sim_cost_ms, args.sim_concurrency
    );
    println!();
    println!("| backend | processors | slots | jobs | ideal jobs/s | jobs/s | of ideal | CPU ms/job processors / queue / generator |");
    println!("|---|---|---|---|---|---|---|---|");
    for backend in &args.backends {
        let kind = if backend == "moto" { Kind::Moto } else { Kind::Embedded };
        let cost = args.sim_cost_ms.to_string();
        let slots = args.sim_concurrency.to_string();
        let env = [
            ("DARKROOM_SIMULATE_ENGINE_MS", cost.as_str()),
            ("DARKROOM_CONCURRENCY", slots.as_str()),
            ("DARKROOM_WORKER_HEARTBEAT", "0"),
            ("RUST_LOG", "warn"),
        ];
        let mut app = TestApp::spawn_with_env(kind, false, 0, &env).await;
        let b = app.backend().await;
        let spec = OutputSpec::new("sim", vec![], Format::Jpeg);
        for (round, &p) in args.sim_processors.iter().enumerate() {
            while app.processors.len() < p {
                app.start_processor();
            }
            wait_until_simulating(&app).await;
            let ideal = (p * args.sim_concurrency) as f64 * 1000.0 / args.sim_cost_ms as f64;
            let jobs = ((ideal * args.sim_seconds) as usize).clamp(20, args.sim_max_jobs);
            let pids: Vec<u32> = app.processors.iter().map(|p| p.child.id()).collect();
            let queue_pid = app.site.moto.as_ref().map(|m| m.pid());
            let cpu = |pids: &[u32]| pids.iter().map(|p| cpu_seconds(*p)).sum::<f64>();
            let ids: Vec<String> = (0..jobs).map(|i| format!("sim-{round}-{i}")).collect();
            store_placeholder_originals(&b, &ids).await;
            let (p0, q0, g0) = (cpu(&pids), queue_pid.map(cpu_seconds).unwrap_or(0.0), generator_cpu());
            let t = Instant::now();
            send_and_await_done(&b, &ids, &spec).await;
            let wall = t.elapsed().as_secs_f64();
            let n = jobs as f64;
            println!(
                "| {backend} | {p} | {} | {jobs} | {ideal:.0} | {:.1} | {:.0} % | {:.2} / {:.2} / {:.2} |",
                p * args.sim_concurrency,
                n / wall,
                100.0 * n / wall / ideal,
                (cpu(&pids) - p0) * 1e3 / n,
                (queue_pid.map(cpu_seconds).unwrap_or(0.0) - q0) * 1e3 / n,
                (generator_cpu() - g0) * 1e3 / n,
            );
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    if args.simulate {
        eprintln!("==> building the release binaries");
        darkroom_e2e::bin_dir();
        simulate(&args).await;
        return;
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    eprintln!("==> building the release binaries");
    darkroom_e2e::bin_dir();
    let loads = workloads(&args);
    let mut engine = BTreeMap::new();
    for w in loads.iter().filter(|w| w.clients > 1) {
        if !engine.contains_key(&w.label) {
            let jps = engine_only(w, cores);
            eprintln!("==> engine only, {}: {jps:.1} jobs/s ({cores} threads)", w.label);
            engine.insert(w.label.clone(), jps);
        }
    }
    let mut rows = vec![];
    for backend in &args.backends {
        let kind = match backend.as_str() {
            "embedded" => Kind::Embedded,
            "moto" => Kind::Moto,
            other => panic!("unknown backend {other}"),
        };
        for &p in &args.processors {
            let env = settings(&args, p, cores);
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            eprintln!("==> {backend}, {p} processor(s), {env:?}");
            let app = TestApp::spawn_with_env(kind, true, p, &env).await;
            // The processors are ready when they said so; one job through warms everything.
            let warm = Workload { jobs: 2, clients: 1, ..loads[0].clone() };
            let _ = drive(&app.base_url, &warm).await;
            for w in &loads {
                eprintln!("  {} × {} with {} client(s)", w.label, w.jobs, w.clients);
                // Efficiency compares throughput: not for one client waiting on each job.
                let ceiling = engine.get(&w.label).copied().filter(|_| w.clients > 1);
                rows.push(measure(&app, backend, w, ceiling).await);
            }
        }
        if args.workloads.iter().any(|w| w == "web") {
            eprintln!("==> {backend}, web tier alone (no processors)");
            let env = settings(&args, 1, cores);
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let app = TestApp::spawn_with_env(kind, true, 0, &env).await;
            let small = Workload {
                label: "web tier alone, small".into(),
                photos: vec![photo(SMALL)],
                recipe: THUMB,
                jobs: args.small_jobs,
                clients: 8,
                follow: false,
            };
            rows.push(measure(&app, backend, &small, None).await);
            // What taking the mixed photos in costs, with nothing processed: with the engine's
            // CPU per job, the ceiling of the mixed workload's efficiency on a machine that runs
            // the web app and the clients too.
            let mix = Workload {
                label: "web tier alone, mixed photos".into(),
                photos: MIX.iter().map(|n| photo(n)).collect(),
                recipe: THUMB,
                jobs: args.mix_jobs,
                clients: 4,
                follow: false,
            };
            rows.push(measure(&app, backend, &mix, None).await);
        }
    }
    print_table(&rows, &engine);
}
