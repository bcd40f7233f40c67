//! `darkroom-processor`: a worker that long-polls the job queue and edits photos.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

fn main() -> ExitCode {
    // A sandbox child renders jobs for its parent processor (processor/src/sandbox).
    if let Some(code) = darkroom_processor::sandbox::child::main_if_child() {
        return code;
    }
    if let Some(args) = darkroom_processor::supervisor::args_if_supervise() {
        let config = darkroom_processor::supervisor::Config::parse_from(args);
        darkroom_processor::telemetry::init();
        return run(darkroom_processor::supervise_until_signal(config));
    }
    let config = darkroom_processor::Config::parse();
    if config.engine_info {
        let engine = darkroom_engine::capabilities();
        println!("{}", serde_json::json!({ "engine": engine, "missing": engine.missing() }));
        return if config.require_complete && !engine.complete() { ExitCode::FAILURE } else { ExitCode::SUCCESS };
    }
    darkroom_processor::telemetry::init();
    // Jobs allocate tens of MB at once; keep freed blocks for the next job instead of taking
    // fresh, zeroed pages from the kernel each time (engine/src/memory.rs).
    darkroom_engine::memory::keep_freed_memory();
    run(darkroom_processor::run_until_signal(config))
}

/// Run `main` on a multi-threaded runtime; a failure is printed as one `Error:` line with its causes.
fn run(main: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(main);
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A configuration error is one line (exit status 78), never a backtrace.
        Err(e) => darkroom_core::exit::report_exit(&e),
    }
}
