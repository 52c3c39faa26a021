//! The relay's metrics (names and meanings in `edge::metrics::names`, exposition on the
//! `METRICS_ADDR` listener that `edge::metrics` serves).
//!
//! Handles are resolved once, here: every label value a hot path uses (the two byte directions,
//! each close code) gets its own pre-made counter, so counting a terminal frame is one relaxed
//! atomic add — no label lookup, no lock, no allocation per message — and the keystroke echo
//! pays nothing measurable. Connect outcomes go through a label lookup, which is fine on a path
//! that runs an Argon2id. Values other parts already keep exactly (live and parked sessions, the
//! KDF queue) are read at scrape time instead of being mirrored ([`watch`]).

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use domain::kdf::KdfGate;
use edge::metrics::{self, names};
use edge::{ApiError, ErrorCode};
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge};

use crate::sessions::Sessions;
use crate::ws::protocol::Close;
use crate::ws::ring::Budget;

/// Connect answers take from milliseconds (a refused password) to the SSH timeouts.
const CONNECT_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0,
];
/// Opening a terminal is one ticket-table round trip (and, forwarded, one hop).
const WEBSOCKET_OPEN_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

pub struct RelayMetrics {
    connects: IntCounterVec,
    connect_seconds: HistogramVec,
    pub websocket_open_seconds: Histogram,
    pub bytes_in: IntCounter,
    pub bytes_out: IntCounter,
    /// One counter per [`Close::ALL`] entry, in that order.
    closes: Vec<IntCounter>,
    pub redis_errors: IntCounter,
    pub forwarded_sockets: IntCounter,
    pub forwarded_file_requests: IntCounter,
    pub file_bytes_up: IntCounter,
    pub file_bytes_down: IntCounter,
    pub recording_bytes: IntCounter,
    pub recording_write_failures: IntCounter,
    pub recording_queue_drops: IntCounter,
    terminals_open: IntGauge,
    terminals_detached: IntGauge,
}

/// One terminal in a gauge (`sushi_relay_terminals_open`, `…_detached`), however its pump
/// ends (even cancelled).
pub struct OpenTerminal(&'static IntGauge);

impl Drop for OpenTerminal {
    fn drop(&mut self) {
        self.0.dec();
    }
}

static METRICS: LazyLock<RelayMetrics> = LazyLock::new(|| {
    let bytes = metrics::counter_vec(names::RELAY_TERMINAL_BYTES, &["direction"]);
    let closes = metrics::counter_vec(names::RELAY_WEBSOCKET_CLOSES, &["code"]);
    let connects = metrics::counter_vec(names::RELAY_CONNECTS, &["outcome"]);
    let file_bytes = metrics::counter_vec(names::RELAY_FILE_BYTES, &["direction"]);
    // Every outcome exists from the start at 0, so a rate() sees the first one.
    connects.with_label_values(&["ok"]);
    for code in ErrorCode::ALL {
        connects.with_label_values(&[code.as_str()]);
    }
    RelayMetrics {
        connects,
        connect_seconds: metrics::histogram_vec(
            names::RELAY_CONNECT_SECONDS,
            &["result"],
            CONNECT_BUCKETS,
        ),
        websocket_open_seconds: metrics::histogram(
            names::RELAY_WEBSOCKET_OPEN_SECONDS,
            WEBSOCKET_OPEN_BUCKETS,
        ),
        bytes_in: bytes.with_label_values(&["in"]),
        bytes_out: bytes.with_label_values(&["out"]),
        closes: Close::ALL
            .iter()
            .map(|close| closes.with_label_values(&[close.code().to_string().as_str()]))
            .collect(),
        redis_errors: metrics::counter(names::RELAY_REDIS_ERRORS),
        forwarded_sockets: metrics::counter(names::RELAY_FORWARDED_SOCKETS),
        forwarded_file_requests: metrics::counter(names::RELAY_FORWARDED_FILE_REQUESTS),
        file_bytes_up: file_bytes.with_label_values(&["upload"]),
        file_bytes_down: file_bytes.with_label_values(&["download"]),
        recording_bytes: metrics::counter(names::RELAY_RECORDING_BYTES),
        recording_write_failures: metrics::counter(names::RELAY_RECORDING_WRITE_FAILURES),
        recording_queue_drops: metrics::counter(names::RELAY_RECORDING_QUEUE_DROPS),
        terminals_open: metrics::gauge(names::RELAY_TERMINALS_OPEN),
        terminals_detached: metrics::gauge(names::RELAY_TERMINALS_DETACHED),
    }
});

/// The relay's metric handles.
pub fn get() -> &'static RelayMetrics {
    &METRICS
}

impl RelayMetrics {
    /// One `connect` answer: its outcome is `ok` or the answer's error code, the same mapping
    /// the client sees, so the dashboard and the API cannot disagree on what happened.
    pub fn connect_answered<T>(&self, result: &Result<T, ApiError>, elapsed: Duration) {
        let (outcome, result) = match result {
            Ok(_) => ("ok", "ok"),
            Err(err) => (err.code().as_str(), "error"),
        };
        self.connects.with_label_values(&[outcome]).inc();
        self.connect_seconds
            .with_label_values(&[result])
            .observe(elapsed.as_secs_f64());
    }

    /// Count a terminal as open until the guard drops.
    pub fn terminal_opened(&'static self) -> OpenTerminal {
        self.terminals_open.inc();
        OpenTerminal(&self.terminals_open)
    }

    /// Count a terminal as parked for a resume until the guard drops.
    pub fn terminal_detached(&'static self) -> OpenTerminal {
        self.terminals_detached.inc();
        OpenTerminal(&self.terminals_detached)
    }

    /// A close frame with `close` went to a client.
    pub fn close_sent(&self, close: Close) {
        if let Some(counter) = Close::ALL
            .iter()
            .position(|c| *c == close)
            .and_then(|i| self.closes.get(i))
        {
            counter.inc();
        }
    }
}

/// Scrape-time gauges over this relay's sessions and the KDF gate. Called once per relay; a
/// second relay in the same process (tests) keeps the first one's gauges.
pub fn watch(sessions: &Arc<Sessions>, kdf: &Arc<KdfGate>, rings: &Arc<Budget>) {
    LazyLock::force(&METRICS);
    let rings = Arc::downgrade(rings);
    metrics::gauge_fn(names::RELAY_RESUME_BUFFER_BYTES, move || {
        rings.upgrade().map_or(0, |r| metrics::as_gauge(r.held()))
    });
    let live = Arc::downgrade(sessions);
    metrics::gauge_fn(names::RELAY_SESSIONS, move || {
        live.upgrade().map_or(0, |s| metrics::as_gauge(s.live()))
    });
    let parked = Arc::downgrade(sessions);
    metrics::gauge_fn(names::RELAY_SESSIONS_PARKED, move || {
        parked
            .upgrade()
            .map_or(0, |s| metrics::as_gauge(s.parked()))
    });
    let kdf = Arc::downgrade(kdf);
    metrics::gauge_fn(names::KDF_QUEUED, move || {
        kdf.upgrade().map_or(0, |k| metrics::as_gauge(k.queued()))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_close_code_and_outcome_is_exported() {
        let m = get();
        m.close_sent(Close::TicketUsed);
        m.connect_answered::<()>(
            &Err(ApiError::new(ErrorCode::InvalidMasterPassword, "x")),
            Duration::from_millis(40),
        );
        m.bytes_out.inc_by(5);
        let text = String::from_utf8(metrics::render()).unwrap();
        for close in Close::ALL {
            assert!(
                text.contains(&format!(
                    "sushi_relay_websocket_closes_total{{code=\"{}\"}}",
                    close.code()
                )),
                "{text}"
            );
        }
        assert!(text.contains(r#"sushi_relay_websocket_closes_total{code="4002"} 1"#));
        assert!(
            text.contains(r#"sushi_relay_connects_total{outcome="invalid_master_password"} 1"#)
        );
        assert!(text.contains(r#"sushi_relay_connects_total{outcome="ssh_timeout"} 0"#));
        assert!(text.contains(r#"sushi_relay_terminal_bytes_total{direction="out"} 5"#));
    }
}
