//! `darkroom-web`: the web app (upload, job API, live status, pages).

use std::process::ExitCode;

use clap::Parser;

#[actix_web::main]
async fn main() -> ExitCode {
    darkroom_web::telemetry::init();
    let config = darkroom_web::Config::parse();
    match darkroom_web::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        // A configuration error is one line (exit status 78), never a backtrace.
        Err(e) => darkroom_core::misconfig::report_exit(&e),
    }
}
