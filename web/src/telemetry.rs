//! Logging setup: see [`darkroom_core::telemetry`] (`RUST_LOG`, `DARKROOM_LOG_FORMAT`).

pub fn init() {
    darkroom_core::telemetry::init("info,aws_config=error,aws_smithy_runtime=warn,actix_server=warn");
}
