//! Logging set-up: `tracing` with structured fields, JSON when running in Lambda or when
//! `LOG_FORMAT=json`, human-readable otherwise; `RUST_LOG` filters (default `info`).

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v == "json") || in_lambda();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init: a second call (tests starting several servers in one process) is harmless.
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.compact().try_init()
    };
}

/// Whether this process runs in AWS Lambda (the runtime sets `AWS_LAMBDA_FUNCTION_NAME`): logs
/// are JSON there, and request metrics are printed as EMF lines. Read once.
pub fn in_lambda() -> bool {
    static IN_LAMBDA: std::sync::LazyLock<bool> =
        std::sync::LazyLock::new(|| std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some());
    *IN_LAMBDA
}
