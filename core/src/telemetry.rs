//! Logging setup shared by the binaries: `tracing` to stderr, filtered by RUST_LOG, as
//! readable lines or, with `DARKROOM_LOG_FORMAT=json`, one JSON object per line (with the
//! fields of every enclosing span: a job's lines carry its `job_id`, `attempt` and `worker`),
//! for log collectors.

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// From `DARKROOM_LOG_FORMAT` (`text`, the default, or `json`); anything else is said on
    /// stderr and read as text.
    pub fn from_env() -> LogFormat {
        match std::env::var("DARKROOM_LOG_FORMAT").as_deref().map(str::trim) {
            Ok("json") => LogFormat::Json,
            Ok("text") | Ok("") | Err(_) => LogFormat::Text,
            Ok(other) => {
                eprintln!("DARKROOM_LOG_FORMAT={other:?} is not `text` or `json`; writing text");
                LogFormat::Text
            }
        }
    }
}

/// Install the subscriber; `default_filter` applies when RUST_LOG is unset.
pub fn init(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match LogFormat::from_env() {
        LogFormat::Json => builder.json().with_current_span(false).with_span_list(true).try_init(),
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init(),
    };
}
