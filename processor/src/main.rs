//! `darkroom-processor`: a worker that long-polls the job queue and edits photos.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = darkroom_processor::Config::parse();
    darkroom_processor::telemetry::init();
    darkroom_processor::run_until_signal(config).await
}
