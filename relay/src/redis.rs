//! The relay's one Redis connection module: the ticket table (tickets, routes, the hop key) uses
//! one lazily connected `ConnectionManager` made here, and runs every command through
//! [`bounded`].
//!
//! The manager reconnects by itself after Redis restarts, and every command also runs under our
//! own deadline, so a hung Redis costs a request at most [`OP_TIMEOUT`] and then a 503 (or a
//! 4011 close), never a stuck handler. TLS (`rediss://`) always verifies the server.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Deadline for any single Redis round trip.
pub const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// Redis could not be used: unreachable, timed out, misconfigured or answered garbage.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// A connection manager with short timeouts, for the ticket table.
/// Creating it makes no network call.
///
/// TLS (`rediss://`) verifies the server's certificate and name. By default the trust anchors
/// are the public web roots compiled in (enough for managed Redis such as ElastiCache); with
/// `ca_pem` (the relay's `REDIS_CA_FILE`), the certificates in it are the only anchors, for a
/// Redis whose certificate a private CA signed. There is deliberately no way to switch
/// verification off.
pub fn connect(url: &str, ca_pem: Option<&[u8]>) -> Result<ConnectionManager, Unavailable> {
    let invalid = |e: redis::RedisError| Unavailable(format!("REDIS_URL is invalid: {e}"));
    let client = match ca_pem {
        None => redis::Client::open(url).map_err(invalid)?,
        Some(pem) => {
            if !url.starts_with("rediss://") {
                return Err(Unavailable(
                    "REDIS_CA_FILE is set but REDIS_URL is not a rediss:// (TLS) URL".to_owned(),
                ));
            }
            // An empty or non-PEM file would leave no trust anchor and fail every connection
            // later, far from the cause; refuse it at start instead.
            let marker = b"-----BEGIN CERTIFICATE-----";
            if !pem.windows(marker.len()).any(|w| w == marker) {
                return Err(Unavailable(
                    "REDIS_CA_FILE holds no PEM certificate".to_owned(),
                ));
            }
            redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.to_vec()),
                },
            )
            .map_err(|e| Unavailable(format!("REDIS_CA_FILE is not usable: {e}")))?
        }
    };
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(1)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    client
        .get_connection_manager_lazy(config)
        .map_err(|e| Unavailable(e.to_string()))
}

/// Run one Redis operation under [`OP_TIMEOUT`]; a failure is counted
/// (`sushi_relay_redis_errors_total`) here, the one place every command passes.
pub async fn bounded<T>(
    op: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, Unavailable> {
    let failed = match tokio::time::timeout(OP_TIMEOUT, op).await {
        Ok(Ok(value)) => return Ok(value),
        Ok(Err(err)) => Unavailable(err.to_string()),
        Err(_) => Unavailable("redis timed out".to_owned()),
    };
    crate::metrics::get().redis_errors.inc();
    Err(failed)
}
