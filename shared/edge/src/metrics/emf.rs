//! CloudWatch Embedded Metric Format: in Lambda, each answered request prints one JSON line on
//! stdout whose `_aws.CloudWatchMetrics` block tells CloudWatch Logs to extract metrics from it.
//! No API call, no agent, no extra latency beyond one write: Lambda ships stdout to CloudWatch
//! Logs anyway.
//!
//! The metric names are the Prometheus ones ([`super::names`]), so one dashboard vocabulary
//! covers the relay's scrape and the function's logs. Dimensions are the route template and the
//! status class (a handful of values each); the request id and method ride along as properties,
//! searchable in Logs Insights, not dimensions (a dimension per request id would be a metric per
//! request).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::names;

/// The CloudWatch namespace the metrics land in.
pub const NAMESPACE: &str = "sushi";

/// What one request contributes.
pub struct RequestMetrics<'a> {
    pub route: &'a str,
    pub method: &'a str,
    pub status_class: &'a str,
    pub seconds: f64,
    pub request_id: &'a str,
}

/// The EMF document for one request, stamped `timestamp_ms` (milliseconds since the epoch).
pub fn document(metrics: &RequestMetrics<'_>, timestamp_ms: u64) -> Value {
    let mut doc = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["route", "status_class"]],
                "Metrics": [
                    { "Name": names::HTTP_REQUESTS.name, "Unit": "Count" },
                    { "Name": names::HTTP_REQUEST_SECONDS.name, "Unit": "Seconds" },
                ],
            }],
        },
        "route": metrics.route,
        "status_class": metrics.status_class,
        "method": metrics.method,
        "request_id": metrics.request_id,
    });
    if let Some(object) = doc.as_object_mut() {
        object.insert(names::HTTP_REQUESTS.name.to_owned(), json!(1));
        object.insert(
            names::HTTP_REQUEST_SECONDS.name.to_owned(),
            json!(metrics.seconds),
        );
    }
    doc
}

/// Print the request's EMF line on stdout, as one write (so lines of concurrent requests never
/// interleave). A closed stdout loses the line and nothing else.
pub fn print(metrics: &RequestMetrics<'_>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default();
    let mut line = document(metrics, now).to_string();
    line.push('\n');
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_declares_every_metric_it_carries() {
        let doc = document(
            &RequestMetrics {
                route: "/api/v1/machines",
                method: "GET",
                status_class: "2xx",
                seconds: 0.012,
                request_id: "abc",
            },
            1_700_000_000_000,
        );
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "sushi");
        for dimension in directive["Dimensions"][0].as_array().unwrap() {
            assert!(doc[dimension.as_str().unwrap()].is_string());
        }
        for metric in directive["Metrics"].as_array().unwrap() {
            assert!(doc[metric["Name"].as_str().unwrap()].is_number());
        }
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000_u64);
    }
}
