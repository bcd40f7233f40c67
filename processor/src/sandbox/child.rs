//! The sandbox's child: `darkroom-processor --sandbox-child <memory limit in bytes>`. It caps
//! its own address space, then renders one job after another as the parent asks (see
//! [`super::wire`]) until its stdin closes. It does no I/O of its own besides the two pipes:
//! the parent fetches and stores.

use std::io::{self, BufReader, BufWriter, Write};
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use darkroom_engine::{self as engine, EngineError};

use super::wire::{self, Frame};

/// The argument that makes `darkroom-processor` a sandbox child.
pub const ARG: &str = "--sandbox-child";

/// Run as a sandbox child if the command line says so (the first argument is [`ARG`]).
pub fn main_if_child() -> Option<ExitCode> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some(ARG) {
        return None;
    }
    let limit = args.next().and_then(|a| a.parse::<u64>().ok()).unwrap_or(0);
    Some(run(limit))
}

fn run(memory_limit: u64) -> ExitCode {
    if let Err(e) = limit_memory(memory_limit) {
        eprintln!("sandbox: cannot set the memory limit: {e}");
        return ExitCode::FAILURE;
    }
    // Panics are reported to the parent in a frame; the default hook's backtrace adds nothing.
    std::panic::set_hook(Box::new(|_| {}));
    engine::memory::keep_freed_memory();
    let simulated = simulated_engine();
    let mut input = BufReader::new(io::stdin().lock());
    let mut out = BufWriter::new(io::stdout().lock());
    loop {
        let (request, bytes, resources) = match wire::read_request(&mut input) {
            Ok(Some(r)) => r,
            Ok(None) => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sandbox: unreadable request: {e}");
                return ExitCode::FAILURE;
            }
        };
        let deadline = Some((Instant::now() + Duration::from_secs(request.time_limit_secs), request.time_limit_secs));
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            test_hooks(&request.outputs);
            let mut hand_over = |r: engine::Rendered| {
                wire::write_output(&mut out, &r)
                    .map_err(|e| EngineError::Encode { format: "pipe", detail: e.to_string() })
            };
            match simulated {
                Some(cost) => simulate(cost, &request.outputs, &mut hand_over),
                None => engine::pipeline::process_each(
                    &bytes,
                    &request.outputs,
                    &request.limits,
                    &resources,
                    deadline,
                    &mut hand_over,
                ),
            }
        }));
        drop((bytes, resources));
        let (frame, last) = match result {
            Ok(Ok(())) => (Frame::Done, false),
            Ok(Err(e)) => (Frame::Failed { code: e.code().to_string(), message: e.to_string() }, false),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                (Frame::Panicked { message }, true)
            }
        };
        if wire::write_frame(&mut out, &frame).and_then(|()| out.flush()).is_err() {
            return ExitCode::FAILURE; // the parent is gone
        }
        if last {
            return ExitCode::FAILURE; // a panicked engine may have left state behind: start afresh
        }
    }
}

/// `DARKROOM_SIMULATE_ENGINE_MS`: for capacity simulations only (bench/src/load_bench.rs
/// `--simulate`), replace the image work by a fixed cost: wait that long, then hand over a
/// placeholder output (a few bytes, 1×1) per requested output. Everything around the engine
/// (queue, store, statuses, the sandbox pipe) runs as usual, so many processors can be run on
/// one machine to find where the queue backend, not the CPU, stops the growth. The processor
/// says so loudly at start (crate::worker).
pub const SIMULATE_ENV: &str = "DARKROOM_SIMULATE_ENGINE_MS";

fn simulated_engine() -> Option<Duration> {
    std::env::var(SIMULATE_ENV).ok().and_then(|v| v.parse().ok()).map(Duration::from_millis)
}

fn simulate(
    cost: Duration,
    outputs: &[engine::OutputSpec],
    hand_over: &mut dyn FnMut(engine::Rendered) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    std::thread::sleep(cost);
    for o in outputs {
        hand_over(engine::Rendered {
            name: o.name.clone(),
            format: o.format,
            width: 1,
            height: 1,
            bytes: b"simulated output".to_vec(),
        })?;
    }
    Ok(())
}

/// Cap this process's address space (RLIMIT_AS): an allocation past it fails, and the Rust
/// allocator aborts the child with "memory allocation of N bytes failed", which the parent
/// reports as `memory_limit`. C libraries see malloc return NULL and fail their decode.
/// No core files: a child killed at its limit is expected, not a bug to debug.
fn limit_memory(bytes: u64) -> io::Result<()> {
    let set = |resource, value: u64| {
        let limit = libc::rlimit { rlim_cur: value as libc::rlim_t, rlim_max: value as libc::rlim_t };
        // SAFETY: setrlimit reads the struct we pass and nothing else.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    set(libc::RLIMIT_CORE, 0)?;
    if bytes > 0 {
        set(libc::RLIMIT_AS, bytes)?;
    }
    Ok(())
}

/// Test hooks (debug builds only), as a misbehaving engine would act:
/// - `DARKROOM_TEST_PANIC_ON_OUTPUT=<name>`: panic inside the image work;
/// - `DARKROOM_TEST_STALL_ON_OUTPUT=<name>` (+ `DARKROOM_TEST_STALL_MS`, default 5000): take
///   that much longer, like a huge photo (the shutdown and time-limit tests);
/// - `DARKROOM_TEST_HOG_ON_OUTPUT=<name>`: allocate and touch memory without end, like a
///   decoder running away (the memory-limit test).
fn test_hooks(specs: &[engine::OutputSpec]) {
    if !cfg!(debug_assertions) {
        return;
    }
    let asks = |var: &str| std::env::var(var).is_ok_and(|name| specs.iter().any(|o| o.name == name));
    if asks("DARKROOM_TEST_PANIC_ON_OUTPUT") {
        panic!("test hook: a panic inside the image engine");
    }
    if asks("DARKROOM_TEST_STALL_ON_OUTPUT") {
        let ms = std::env::var("DARKROOM_TEST_STALL_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
        std::thread::sleep(Duration::from_millis(ms));
    }
    if asks("DARKROOM_TEST_HOG_ON_OUTPUT") {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 64 * 1024 * 1024]);
            std::hint::black_box(&hoard);
        }
    }
}
