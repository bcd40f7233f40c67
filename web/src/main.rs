//! `darkroom-web`: the web app (upload, job API, live status, pages).

use std::process::ExitCode;

use clap::Parser;

#[actix_web::main]
async fn main() -> ExitCode {
    darkroom_web::telemetry::init();
    let config = darkroom_web::Config::parse();
    match darkroom_web::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        // A setting of its own that is missing or wrong: one line too, as configuration errors.
        Err(e) if is_bad_setting(&e) => {
            eprintln!("Error: {e:#}");
            ExitCode::from(darkroom_core::misconfig::EXIT_CONFIGURATION)
        }
        // A configuration error is one line (exit status 78), never a backtrace.
        Err(e) => darkroom_core::exit::report_exit(&e),
    }
}

/// DARKROOM_COOKIE_SECRET missing or short, DARKROOM_PUBLIC_ORIGIN not an origin.
fn is_bad_setting(e: &anyhow::Error) -> bool {
    use darkroom_web::identity::CookieKeyError;
    matches!(e.downcast_ref(), Some(CookieKeyError::MissingSecret | CookieKeyError::ShortSecret(_)))
        || e.downcast_ref::<darkroom_web::csrf::BadOrigin>().is_some()
}
