//! OpenTelemetry traces over OTLP/HTTP (protobuf), off unless an endpoint is configured.
//!
//! The exporter is the SDK's batch processor: spans are queued in memory (bounded: 2,048 by
//! default, the excess dropped rather than buffered) and sent from the SDK's own thread with a
//! blocking HTTP client under `OTEL_EXPORTER_OTLP_TIMEOUT` (10 s), so a slow or absent collector
//! never holds up a request. Every standard `OTEL_EXPORTER_OTLP_*` variable (endpoint, headers,
//! timeout, compression) is read by the exporter itself; we only decide whether to start it.
//! Built only with the `otlp` feature, which the Lambda build leaves out.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::SpanExporter;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::Registry;

/// The variables that name a collector; with neither set, tracing stays local.
const ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// Whether `lookup` (the environment) names a collector.
pub fn configured(lookup: impl Fn(&str) -> Option<String>) -> bool {
    ENDPOINT_VARS
        .iter()
        .any(|name| lookup(name).is_some_and(|value| !value.trim().is_empty()))
}

/// The running exporter.
pub struct Traces {
    provider: SdkTracerProvider,
}

/// The layer that turns `tracing` spans into OpenTelemetry spans.
pub type OtelLayer = Box<dyn Layer<Registry> + Send + Sync>;

impl Traces {
    /// Start exporting if the environment names a collector; `None` (no thread, no client)
    /// otherwise, or if the exporter cannot be built (logged on stderr: the subscriber that
    /// would log it is not installed yet).
    pub fn from_env(service: &'static str) -> Option<(Self, OtelLayer)> {
        if !configured(|name| std::env::var(name).ok()) {
            return None;
        }
        // The exporter's HTTP client is rustls without a built-in provider, like every client
        // here: choose the process's provider first (idempotent).
        crate::tls::install_crypto_provider();
        let exporter = match SpanExporter::builder().with_http().build() {
            Ok(exporter) => exporter,
            Err(err) => {
                eprintln!("OpenTelemetry exporter not started: {err}");
                return None;
            }
        };
        let resource = if std::env::var_os("OTEL_SERVICE_NAME").is_some() {
            Resource::builder().build()
        } else {
            Resource::builder().with_service_name(service).build()
        };
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(service))
            .boxed();
        Some((Self { provider }, layer))
    }

    /// Flush queued spans and stop the exporter thread.
    pub fn shutdown(self) {
        if let Err(err) = self.provider.shutdown() {
            eprintln!("OpenTelemetry exporter shutdown: {err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_unless_an_endpoint_is_set() {
        assert!(!configured(|_| None), "the default is no export");
        assert!(
            !configured(|_| Some("  ".to_owned())),
            "an empty value is unset"
        );
        assert!(configured(|name| (name == "OTEL_EXPORTER_OTLP_ENDPOINT")
            .then(|| "http://127.0.0.1:4318".to_owned())));
        assert!(configured(|name| (name
            == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .then(|| "http://127.0.0.1:4318/v1/traces".to_owned())));
    }
}
