//! Reading a binary's Prometheus metrics as an operator's scraper does: over HTTP from the
//! `METRICS_ADDR` listener the process announced (`metrics on http://…/metrics`), parsed from
//! the text exposition into `series → value`.

use std::collections::HashMap;
use std::time::Duration;

use crate::Process;

/// One scrape: each sample line's series (`name{labels}` exactly as exposed) and its value.
pub struct Scrape(pub HashMap<String, f64>);

impl Scrape {
    /// The value of `series` (`name` or `name{label="v",…}` with labels in the exposed,
    /// alphabetical order); 0 when absent, as a counter that never moved.
    pub fn value(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    pub fn has(&self, series: &str) -> bool {
        self.0.contains_key(series)
    }
}

/// Parse the text exposition format (comments skipped).
pub fn parse(text: &str) -> Scrape {
    Scrape(
        text.lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect(),
    )
}

/// The metrics URL `process` printed, waiting up to 10 s for the line.
pub async fn url(process: &Process) -> String {
    assert!(
        process
            .printed("metrics on http://", Duration::from_secs(10))
            .await,
        "no metrics listener announced:\n{}",
        process.output()
    );
    process
        .output()
        .lines()
        .find_map(|line| line.strip_prefix("metrics on "))
        .map(|url| url.trim().to_owned())
        .unwrap_or_default()
}

/// A plain HTTP client for probing a metrics listener (10 s timeout).
pub fn http() -> reqwest::Client {
    edge::tls::http_client()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// GET `url` and parse it, asserting a 200 in the Prometheus text format.
pub async fn scrape(url: &str) -> Scrape {
    let response = http().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "scrape of {url}");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    parse(&response.text().await.unwrap())
}
