//! What Darkroom's gallery preview (processor/src/preview.rs: fit in 320×320, JPEG q75, one
//! more output of the job's single pass) adds to a job:
//! `cargo run --release -p darkroom-engine --example preview_cost -- <photo>...` renders the
//! `web` and `thumbnail` presets' outputs with and without it and prints the median of 7 runs.

use std::time::Instant;

use darkroom_engine::{process_each, Filter, Fit, Format, Gravity, Limits, Op, OutputSpec, Resources};

fn fit(size: u32) -> Op {
    Op::Resize {
        width: Some(size),
        height: Some(size),
        fit: Fit::Inside,
        gravity: Gravity::Centre,
        enlarge: false,
        filter: Filter::default(),
    }
}

fn median(photo: &[u8], specs: &[OutputSpec]) -> (f64, usize) {
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..7 {
        let t = Instant::now();
        process_each(photo, specs, &Limits::default(), &Resources::new(), None, &mut |r| {
            if r.name == "preview.small" {
                bytes = r.bytes.len();
            }
            Ok(())
        })
        .expect("renders");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    (times[3], bytes)
}

fn main() {
    let preview = OutputSpec { quality: Some(75), ..OutputSpec::new("preview.small", vec![fit(320)], Format::Jpeg) };
    for path in std::env::args().skip(1) {
        let photo = std::fs::read(&path).expect("readable photo");
        for (name, size, q) in [("web", 1600, 85), ("thumbnail", 400, 80)] {
            let outputs = vec![OutputSpec { quality: Some(q), ..OutputSpec::new(name, vec![fit(size)], Format::Jpeg) }];
            let (alone, _) = median(&photo, &outputs);
            let with_preview = [outputs.clone(), vec![preview.clone()]].concat();
            let (with, bytes) = median(&photo, &with_preview);
            let (only, _) = median(&photo, std::slice::from_ref(&preview));
            println!(
                "{path} {name}: {alone:.1} ms alone, {with:.1} ms with the preview (+{:.1} ms, +{:.0} %); preview alone {only:.1} ms, {bytes} bytes",
                with - alone,
                100.0 * (with - alone) / alone
            );
        }
    }
}
