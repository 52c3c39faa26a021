//! Logging and tracing set-up: `tracing` with structured fields, JSON when running in Lambda or
//! when `LOG_FORMAT=json`, human-readable otherwise; `RUST_LOG` filters (default `info`).
//!
//! With the `otlp` feature and `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) set, the
//! same spans are also exported as OpenTelemetry traces ([`crate::otlp`]): the request span
//! carries `request_id`, method and path as attributes. Unset, nothing is exported and no
//! exporter thread starts. The returned [`Telemetry`] flushes what is queued when dropped, at
//! the end of `main`.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Keeps the trace exporter alive; dropping it flushes and stops it (bounded by the exporter's
/// timeout).
#[must_use = "dropping it stops trace export"]
pub struct Telemetry {
    #[cfg(feature = "otlp")]
    traces: Option<crate::otlp::Traces>,
}

/// Install the global subscriber for the binary `service` (the default OpenTelemetry service
/// name; `OTEL_SERVICE_NAME` overrides it). Call before the runtime starts.
pub fn init(service: &'static str) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v == "json") || in_lambda();
    #[cfg(feature = "otlp")]
    let (traces, otel_layer) = match crate::otlp::Traces::from_env(service) {
        Some((traces, layer)) => (Some(traces), Some(layer)),
        None => (None, None),
    };
    #[cfg(not(feature = "otlp"))]
    let otel_layer: Option<tracing_subscriber::layer::Identity> = {
        let _ = service;
        None
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed()
    } else {
        fmt.compact().boxed()
    };
    // try_init: a second call (tests starting several servers in one process) is harmless.
    let _ = tracing_subscriber::registry()
        .with(otel_layer)
        .with(fmt)
        .with(filter)
        .try_init();
    Telemetry {
        #[cfg(feature = "otlp")]
        traces,
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        #[cfg(feature = "otlp")]
        if let Some(traces) = self.traces.take() {
            traces.shutdown();
        }
    }
}

/// Whether this process runs in AWS Lambda (the runtime sets `AWS_LAMBDA_FUNCTION_NAME`): logs
/// are JSON there, and request metrics are printed as EMF lines. Read once.
pub fn in_lambda() -> bool {
    static IN_LAMBDA: std::sync::LazyLock<bool> =
        std::sync::LazyLock::new(|| std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some());
    *IN_LAMBDA
}
