//! Metrics: one process-wide Prometheus registry that every binary's parts register into, the
//! HTTP request metrics every router records through [`crate::layers`], and the separate
//! listener that serves the text exposition (`GET /metrics` on `METRICS_ADDR`).
//!
//! Why a separate listener and not a route on the public port: the public listener faces the
//! internet (or a browser on a laptop), and metrics are for the operator's scraper. A port of
//! its own is off unless `METRICS_ADDR` is set, is bound where the operator says (loopback in
//! the examples), carries no cookies or sessions, and on loopback answers only loopback
//! `Host` names, so a web page cannot read it by DNS rebinding either.
//!
//! Why globals: a metric is a handle to atomics that any part of the process increments; the
//! registry is what a scrape reads. Handles are created once (statics in the modules that own
//! them) so the byte path costs one atomic add, with no lookup and no allocation.
//!
//! In AWS Lambda nobody scrapes a process, so each request also prints one CloudWatch Embedded
//! Metric Format line there ([`emf`]), with the same names ([`names`]).

pub mod emf;
pub mod names;

use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};
use tokio::net::TcpListener;

use self::names::Metric;
use crate::serve::ServeError;

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

/// The registry a scrape reads.
pub fn registry() -> &'static Registry {
    &REGISTRY
}

/// Register `collector` and hand back a handle to it. Registering the same name twice (two
/// relays in one test process) keeps the first and logs: metrics never stop a server.
fn register<C: Collector + Clone + 'static>(collector: C) -> C {
    if let Err(err) = REGISTRY.register(Box::new(collector.clone())) {
        tracing::warn!(error = %err, "metric not registered");
    }
    collector
}

/// A metric built from static options. Construction fails only for an invalid name, label or
/// bucket list, which are constants: every metric is built by the unit tests of the module that
/// owns it (and at start-up, when a binary touches its statics), so a bad definition fails the
/// test suite, never a request.
#[allow(clippy::expect_used)]
fn defined<T>(result: prometheus::Result<T>) -> T {
    result.expect("metric definitions are constants checked by the unit tests")
}

/// A registered counter.
pub fn counter(metric: Metric) -> IntCounter {
    register(defined(IntCounter::new(metric.name, metric.help)))
}

/// A registered counter with labels.
pub fn counter_vec(metric: Metric, labels: &[&str]) -> IntCounterVec {
    register(defined(IntCounterVec::new(
        Opts::new(metric.name, metric.help),
        labels,
    )))
}

/// A registered gauge.
pub fn gauge(metric: Metric) -> IntGauge {
    register(defined(IntGauge::new(metric.name, metric.help)))
}

/// A registered histogram with `buckets` (upper bounds, seconds).
pub fn histogram(metric: Metric, buckets: &[f64]) -> Histogram {
    register(defined(Histogram::with_opts(
        HistogramOpts::new(metric.name, metric.help).buckets(buckets.to_vec()),
    )))
}

/// A registered histogram with labels.
pub fn histogram_vec(metric: Metric, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    register(defined(HistogramVec::new(
        HistogramOpts::new(metric.name, metric.help).buckets(buckets.to_vec()),
        labels,
    )))
}

/// A gauge read when scraped, for values another part already keeps exactly (live sessions,
/// the KDF queue): nothing to keep in step on the hot path.
#[derive(Clone)]
struct GaugeFn {
    gauge: IntGauge,
    read: std::sync::Arc<dyn Fn() -> i64 + Send + Sync>,
}

impl Collector for GaugeFn {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.gauge.set((self.read)());
        self.gauge.collect()
    }
}

/// Register a gauge whose value is `read()` at each scrape.
pub fn gauge_fn(metric: Metric, read: impl Fn() -> i64 + Send + Sync + 'static) {
    register(GaugeFn {
        gauge: defined(IntGauge::new(metric.name, metric.help)),
        read: std::sync::Arc::new(read),
    });
}

/// [`names::AUDIT_WRITE_FAILURES`] read from `audit` at each scrape.
pub fn watch_audit(audit: &std::sync::Arc<domain::audit::Auditor>) {
    let audit = std::sync::Arc::downgrade(audit);
    gauge_fn(names::AUDIT_WRITE_FAILURES, move || {
        audit
            .upgrade()
            .map_or(0, |a| i64::try_from(a.failures()).unwrap_or(i64::MAX))
    });
}

/// A count as a gauge value (saturating: a gauge is an i64).
pub fn as_gauge(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Latency buckets for HTTP answers, in seconds.
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0,
];

/// The request metrics every router records.
struct Http {
    requests: IntCounterVec,
    seconds: HistogramVec,
}

static HTTP: LazyLock<Http> = LazyLock::new(|| Http {
    requests: counter_vec(names::HTTP_REQUESTS, &["route", "method", "status_class"]),
    seconds: histogram_vec(names::HTTP_REQUEST_SECONDS, &["route"], HTTP_BUCKETS),
});

/// `2xx` for 200…299 and so on; the label stays one of five values whatever a handler answers.
pub fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The method as a label: the standard ones by name, anything else (HTTP allows any token as a
/// method) as `other`, so a client cannot mint label values and grow the registry.
pub fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// One answered request: counted and timed here, and in Lambda also printed as an EMF line.
/// `route` is the matched route template (`None` for the fallback), never the raw path, so a
/// machine id or a probe's random path cannot become a label.
pub fn observe_request(
    route: Option<&str>,
    method: &http::Method,
    status: StatusCode,
    elapsed: Duration,
    request_id: &str,
) {
    let route = route.unwrap_or("unmatched");
    let class = status_class(status);
    let method = method_label(method);
    HTTP.requests
        .with_label_values(&[route, method, class])
        .inc();
    HTTP.seconds
        .with_label_values(&[route])
        .observe(elapsed.as_secs_f64());
    if crate::telemetry::in_lambda() {
        emf::print(&emf::RequestMetrics {
            route,
            method,
            status_class: class,
            seconds: elapsed.as_secs_f64(),
            request_id,
        });
    }
}

/// The Prometheus text exposition of everything registered.
pub fn render() -> Vec<u8> {
    let mut body = Vec::new();
    if let Err(err) = TextEncoder::new().encode(&REGISTRY.gather(), &mut body) {
        tracing::error!(error = %err, "metrics encoding failed");
    }
    body
}

async fn scrape() -> Response {
    let mut response = render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// The metrics listener's router: `GET /metrics` and nothing else.
pub fn router() -> Router {
    Router::new().route("/metrics", get(scrape))
}

/// `METRICS_ADDR` (`IP:PORT`), if set: where the metrics listener binds.
pub fn configured_addr() -> Result<Option<SocketAddr>, ServeError> {
    match std::env::var("METRICS_ADDR") {
        Ok(raw) if !raw.trim().is_empty() => raw
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ServeError::BadMetricsAddress(raw)),
        _ => Ok(None),
    }
}

/// Start the metrics listener when `METRICS_ADDR` is set: bound before this returns (so a bad
/// address stops the binary at start), served by a task that lives as long as the runtime.
/// Prints `metrics on http://ADDR/metrics` (tests and scripts read it; `:0` picks a port).
pub async fn serve_from_env() -> Result<Option<SocketAddr>, ServeError> {
    let Some(addr) = configured_addr()? else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener.local_addr()?;
    let app = crate::serve::loopback_guard(router(), local);
    tracing::info!(%local, "metrics listening");
    println!("metrics on http://{local}/metrics");
    // Owned by the runtime: it ends when the binary does. Scrapes are short reads of atomics,
    // so there is nothing to drain.
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(error = %err, "metrics listener failed");
        }
    });
    Ok(Some(local))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_metrics_are_defined_and_counted_by_template() {
        observe_request(
            Some("/api/v1/machine/{id}"),
            &http::Method::GET,
            StatusCode::NOT_FOUND,
            Duration::from_millis(3),
            "req-1",
        );
        let text = String::from_utf8(render()).unwrap();
        assert!(text.contains(
            r#"sushi_http_requests_total{method="GET",route="/api/v1/machine/{id}",status_class="4xx"} 1"#
        ), "{text}");
        assert!(text.contains("sushi_http_request_duration_seconds_bucket"));
    }

    #[test]
    fn unknown_methods_share_one_label() {
        let custom = http::Method::from_bytes(b"RANDOM123").unwrap();
        assert_eq!(method_label(&custom), "other");
        assert_eq!(method_label(&http::Method::DELETE), "DELETE");
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(StatusCode::OK), "2xx");
        assert_eq!(status_class(StatusCode::SWITCHING_PROTOCOLS), "1xx");
        assert_eq!(status_class(StatusCode::TOO_MANY_REQUESTS), "4xx");
        assert_eq!(status_class(StatusCode::GATEWAY_TIMEOUT), "5xx");
    }

    #[test]
    fn gauge_fn_reads_at_scrape_time() {
        let value = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(7));
        let read = std::sync::Arc::clone(&value);
        gauge_fn(names::KDF_QUEUED, move || {
            read.load(std::sync::atomic::Ordering::Relaxed)
        });
        assert!(
            String::from_utf8(render())
                .unwrap()
                .contains("sushi_kdf_queued 7")
        );
        value.store(2, std::sync::atomic::Ordering::Relaxed);
        assert!(
            String::from_utf8(render())
                .unwrap()
                .contains("sushi_kdf_queued 2")
        );
    }
}
