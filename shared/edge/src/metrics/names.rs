//! Every metric name the product exports, with its help text, in one table: the Prometheus
//! scrape (`GET /metrics` on `METRICS_ADDR`), the CloudWatch EMF lines api-fn prints in Lambda
//! and `docs/operations.md` all use these, and a test below checks that the document lists
//! each of them, so an operator's dashboard and the code cannot drift apart.
//!
//! Labels never carry a user's identity, a machine id or a ticket: routes are the matched
//! templates (`/api/v1/machine/{id}`), outcomes are `ErrorCode` strings, close codes are the
//! protocol's numbers. Their sets are therefore small and fixed.

/// A metric's name and the one-line help Prometheus shows.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    pub name: &'static str,
    pub help: &'static str,
}

/// HTTP requests answered, by `route` (the matched template, or `unmatched`), `method` and
/// `status_class` (`2xx` … `5xx`). Every binary.
pub const HTTP_REQUESTS: Metric = Metric {
    name: "sushi_http_requests_total",
    help: "HTTP requests answered, by route template, method and status class",
};
/// Time to produce the answer, by `route`.
pub const HTTP_REQUEST_SECONDS: Metric = Metric {
    name: "sushi_http_request_duration_seconds",
    help: "Time to answer an HTTP request, by route template",
};
/// Argon2id/scrypt derivations waiting for memory budget (`KDF_BUDGET_MIB`).
pub const KDF_QUEUED: Metric = Metric {
    name: "sushi_kdf_queued",
    help: "Key derivations waiting for the KDF memory budget",
};
/// Audit log entries that could not be written since the process started (the action they
/// record went ahead; see docs/audit.md). A gauge read from the domain's counter.
pub const AUDIT_WRITE_FAILURES: Metric = Metric {
    name: "sushi_audit_write_failures",
    help: "Audit log entries not written since start (the actions went ahead)",
};

/// SSH sessions alive on this relay: parked (waiting for their WebSocket) plus open terminals.
pub const RELAY_SESSIONS: Metric = Metric {
    name: "sushi_relay_sessions",
    help: "SSH sessions alive on this relay (parked plus open terminals)",
};
/// Sessions connected and waiting for their WebSocket (a ticket not yet opened).
pub const RELAY_SESSIONS_PARKED: Metric = Metric {
    name: "sushi_relay_sessions_parked",
    help: "SSH sessions waiting for their WebSocket (ticket issued, not yet opened)",
};
/// Terminals being pumped on this relay (WebSocket open).
pub const RELAY_TERMINALS_OPEN: Metric = Metric {
    name: "sushi_relay_terminals_open",
    help: "Terminals with an open WebSocket on this relay",
};
/// Terminals whose client left without closing them, parked for a resume.
pub const RELAY_TERMINALS_DETACHED: Metric = Metric {
    name: "sushi_relay_terminals_detached",
    help: "Terminals parked for a resume (client gone, SSH session kept for the grace)",
};
/// Bytes of unacknowledged output kept for resumes, all terminals together.
pub const RELAY_RESUME_BUFFER_BYTES: Metric = Metric {
    name: "sushi_relay_resume_buffer_bytes",
    help: "Unacknowledged terminal output held for resumes (all terminals)",
};
/// `connect` answers, by `outcome`: `ok` or the answer's `ErrorCode` (`invalid_master_password`,
/// `too_many_attempts`, `user_limit_reached`, `unavailable`, `ssh_failed`, `ssh_timeout`,
/// `target_not_allowed`, `host_key_changed`, …).
pub const RELAY_CONNECTS: Metric = Metric {
    name: "sushi_relay_connects_total",
    help: "connect answers, by outcome (ok or the error code)",
};
/// Time to answer `connect` (vault, SSH dial and handshake, ticket), by `result` (`ok`, `error`).
pub const RELAY_CONNECT_SECONDS: Metric = Metric {
    name: "sushi_relay_connect_duration_seconds",
    help: "Time to answer connect, by result (ok or error)",
};
/// Time from the WebSocket request to its terminal running (ticket consumed, pump started).
pub const RELAY_WEBSOCKET_OPEN_SECONDS: Metric = Metric {
    name: "sushi_relay_websocket_open_duration_seconds",
    help: "Time from the terminal WebSocket request to the terminal running",
};
/// Terminal payload bytes, by `direction`: `in` (keystrokes to SSH), `out` (output to the client).
pub const RELAY_TERMINAL_BYTES: Metric = Metric {
    name: "sushi_relay_terminal_bytes_total",
    help: "Terminal bytes through this relay, by direction (in: to SSH, out: to the client)",
};
/// Close frames sent to WebSocket clients, by `code` (the protocol's close codes).
pub const RELAY_WEBSOCKET_CLOSES: Metric = Metric {
    name: "sushi_relay_websocket_closes_total",
    help: "WebSocket close frames sent, by close code",
};
/// Redis round trips that failed or timed out (ticket table, hop key).
pub const RELAY_REDIS_ERRORS: Metric = Metric {
    name: "sushi_relay_redis_errors_total",
    help: "Redis operations that failed or timed out",
};
/// Terminal WebSockets this relay forwarded to the relay holding their session.
pub const RELAY_FORWARDED_SOCKETS: Metric = Metric {
    name: "sushi_relay_forwarded_sockets_total",
    help: "Terminal WebSockets forwarded to another relay",
};

/// File requests forwarded to the relay holding their terminal.
pub const RELAY_FORWARDED_FILE_REQUESTS: Metric = Metric {
    name: "sushi_relay_forwarded_file_requests_total",
    help: "File requests (list, transfer, change) forwarded to another relay",
};

/// File bytes moved over SFTP, by direction (`upload`, `download`).
pub const RELAY_FILE_BYTES: Metric = Metric {
    name: "sushi_relay_file_bytes_total",
    help: "File bytes transferred over SFTP by this relay",
};

/// Sealed recording bytes stored (chunks, as written to the recording storage).
pub const RELAY_RECORDING_BYTES: Metric = Metric {
    name: "sushi_relay_recording_bytes_total",
    help: "Sealed session-recording bytes written to recording storage",
};
/// Recording writes (a chunk, the header probe, the end) that failed or timed out.
pub const RELAY_RECORDING_WRITE_FAILURES: Metric = Metric {
    name: "sushi_relay_recording_write_failures_total",
    help: "Session-recording writes that failed or timed out",
};
/// Terminal events the recorder's bounded queue had no room for (each leaves a marked gap).
pub const RELAY_RECORDING_QUEUE_DROPS: Metric = Metric {
    name: "sushi_relay_recording_queue_drops_total",
    help: "Terminal events dropped because a recorder's queue was full",
};

/// Every metric, for the documentation check.
pub const ALL: &[Metric] = &[
    HTTP_REQUESTS,
    HTTP_REQUEST_SECONDS,
    KDF_QUEUED,
    AUDIT_WRITE_FAILURES,
    RELAY_SESSIONS,
    RELAY_SESSIONS_PARKED,
    RELAY_TERMINALS_OPEN,
    RELAY_TERMINALS_DETACHED,
    RELAY_RESUME_BUFFER_BYTES,
    RELAY_CONNECTS,
    RELAY_CONNECT_SECONDS,
    RELAY_WEBSOCKET_OPEN_SECONDS,
    RELAY_TERMINAL_BYTES,
    RELAY_WEBSOCKET_CLOSES,
    RELAY_REDIS_ERRORS,
    RELAY_FORWARDED_SOCKETS,
    RELAY_FORWARDED_FILE_REQUESTS,
    RELAY_FILE_BYTES,
    RELAY_RECORDING_BYTES,
    RELAY_RECORDING_WRITE_FAILURES,
    RELAY_RECORDING_QUEUE_DROPS,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_doc_lists_every_metric() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/operations.md");
        let doc = std::fs::read_to_string(path).unwrap_or_default();
        for metric in ALL {
            assert!(
                doc.contains(&format!("`{}`", metric.name)),
                "docs/operations.md does not list {}",
                metric.name
            );
        }
    }

    #[test]
    fn names_are_unique_and_prometheus_shaped() {
        let mut seen = std::collections::HashSet::new();
        for metric in ALL {
            assert!(seen.insert(metric.name), "{} twice", metric.name);
            assert!(metric.name.starts_with("sushi_"));
            assert!(
                metric
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
        }
    }
}
