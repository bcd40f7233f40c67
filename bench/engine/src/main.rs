//! In-process benchmark of Darkroom's engine, shaped like ../shared/bench/scripts/sharp_bench.js:
//! `darkroom-engine-bench TASK THREADS REPS IMAGE [OUTDIR]` prints one JSON line with the
//! median time of REPS runs (after one warm-up). The engine is single-threaded per job by
//! design (a worker runs one job per core), so THREADS must be 1.
//!
//! Tasks (same parameters as the peers):
//! T1 auto-orient, fit in 400×400, JPEG q80 · T2 auto-orient, fit in 1920×1920 no upscaling,
//! JPEG q85 · T3 full-size re-encode JPEG q85 · T4 auto-orient, centre crop 50%×50%, rotate 90°
//! cw, grey, Gaussian blur σ=2, PNG zlib 6.

use std::time::Instant;

use darkroom_engine::decode::oriented_dimensions;
use darkroom_engine::{process, Limits, Op, OutputSpec};

fn spec(task: &str, bytes: &[u8]) -> OutputSpec {
    let json = match task {
        "T1" => r#"{"name":"t1","ops":[{"op":"resize","width":400,"height":400,"fit":"inside"}],"format":"jpeg","quality":80}"#.to_string(),
        "T2" => r#"{"name":"t2","ops":[{"op":"resize","width":1920,"height":1920,"fit":"inside"}],"format":"jpeg","quality":85}"#.to_string(),
        "T3" => r#"{"name":"t3","format":"jpeg","quality":85,"auto_orient":false}"#.to_string(),
        "T4" => {
            let (w, h) = oriented_dimensions(bytes, true).expect("readable image");
            let (cw, ch) = (w / 2, h / 2);
            format!(
                r#"{{"name":"t4","ops":[{{"op":"crop","x":{},"y":{},"width":{cw},"height":{ch}}},{{"op":"rotate","degrees":90}},{{"op":"grayscale"}},{{"op":"blur","sigma":2}}],"format":"png","compression_level":6}}"#,
                (w - cw) / 2,
                (h - ch) / 2
            )
        }
        other => panic!("unknown task {other}"),
    };
    let spec: OutputSpec = serde_json::from_str(&json).expect("valid spec");
    for op in &spec.ops {
        Op::validate(op, &Limits::default()).expect("valid op");
    }
    spec
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [task, threads, reps, image, rest @ ..] = args.as_slice() else {
        eprintln!("usage: darkroom-engine-bench TASK THREADS REPS IMAGE [OUTDIR]");
        std::process::exit(2);
    };
    assert_eq!(threads, "1", "the engine runs one job per thread");
    let reps: usize = reps.parse().expect("REPS is a number");
    let bytes = std::fs::read(image).expect("read IMAGE");
    let limits = Limits::default();
    if std::env::var_os("DARKROOM_BENCH_FRESH_MEMORY").is_none() {
        darkroom_engine::memory::keep_freed_memory(); // as the processor does
    }
    let specs = [spec(task, &bytes)];
    let probe = darkroom_engine::probe(&bytes, &limits).expect("probe");
    // On a thread of its own, as the processor runs jobs (tokio's blocking pool): a thread's
    // allocations come from its own arena, which behaves unlike the main thread's.
    let (out, mut times) = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut out = process(&bytes, &specs, &limits).expect("warm-up run");
                let mut times = Vec::with_capacity(reps);
                for _ in 0..reps {
                    let t = Instant::now();
                    out = process(&bytes, &specs, &limits).expect("run");
                    times.push(t.elapsed().as_secs_f64());
                }
                (out, times)
            })
            .join()
            .expect("the bench thread")
    });
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let name = std::path::Path::new(image).file_name().unwrap().to_string_lossy().into_owned();
    if let Some(dir) = rest.first() {
        let ext = if task == "T4" { "png" } else { "jpg" };
        std::fs::write(format!("{dir}/darkroom_{task}_{name}.{ext}"), &out[0].bytes).expect("write output");
    }
    println!(
        "{}",
        serde_json::json!({
            "tool": "darkroom", "task": task, "threads": 1, "reps": reps, "image": name,
            "mp": probe.width as f64 * probe.height as f64 / 1e6,
            "median_s": times[(times.len() - 1) / 2], "min_s": times[0],
            "out_bytes": out[0].bytes.len(),
            "versions": { "darkroom": env!("CARGO_PKG_VERSION"), "turbojpeg": darkroom_engine::jpeg::turbo::AVAILABLE },
        })
    );
}
