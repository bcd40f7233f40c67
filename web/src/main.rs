//! `darkroom-web`: the web app (upload, job API, live status, pages).

use clap::Parser;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    darkroom_web::telemetry::init();
    let config = darkroom_web::Config::parse();
    darkroom_web::run(config).await
}
