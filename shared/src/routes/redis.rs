//! Redis route table: any relay can find the relay holding a ticket's session.
//!
//! One key per ticket, named after its bucket: `sushi:ticket:{<uuid>}:<bucket>` (the braces are
//! a cluster hash tag, so both buckets a lookup checks live on one shard). Registration is
//! `SET … NX EXAT <end of next bucket>`: Redis expires tickets itself. Lookup reads the current
//! and previous bucket's keys. Consume is one Lua script, atomic like `GETDEL`, that returns the
//! entry and rewrites it as used with `KEEPTTL`, so a replay inside the ticket's lifetime is
//! recognised as a replay.
//!
//! The connection is a lazy `ConnectionManager` (reconnects by itself after Redis restarts) and
//! every command also runs under our own deadline, so a hung Redis costs a request at most
//! [`OP_TIMEOUT`] and then a 503, never a stuck handler.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use uuid::Uuid;

use super::{Bucket, Lookup, Route, RouteError, RouteTable};

/// Deadline for any single Redis round trip.
pub const OP_TIMEOUT: Duration = Duration::from_secs(2);

const OPEN: char = 'O';
const USED: char = 'U';

const CONSUME: &str = r"
for _, key in ipairs(KEYS) do
  local value = redis.call('GET', key)
  if value then
    if string.sub(value, 1, 1) == 'O' then
      redis.call('SET', key, 'U' .. string.sub(value, 2), 'KEEPTTL')
    end
    return value
  end
end
return false
";

/// A connection manager with short timeouts, shared by the route table and the rate limiter.
/// Creating it makes no network call.
///
/// TLS (`rediss://`) verifies the server's certificate and name. By default the trust anchors
/// are the public web roots compiled in (enough for managed Redis such as ElastiCache); with
/// `ca_pem` (the relay's `REDIS_CA_FILE`), the certificates in it are the only anchors, for a
/// Redis whose certificate a private CA signed. There is deliberately no way to switch
/// verification off.
pub fn connect(url: &str, ca_pem: Option<&[u8]>) -> Result<ConnectionManager, RouteError> {
    let invalid =
        |e: redis::RedisError| RouteError::Unavailable(format!("REDIS_URL is invalid: {e}"));
    let client = match ca_pem {
        None => redis::Client::open(url).map_err(invalid)?,
        Some(pem) => {
            if !url.starts_with("rediss://") {
                return Err(RouteError::Unavailable(
                    "REDIS_CA_FILE is set but REDIS_URL is not a rediss:// (TLS) URL".to_owned(),
                ));
            }
            // An empty or non-PEM file would leave no trust anchor and fail every connection
            // later, far from the cause; refuse it at start instead.
            let marker = b"-----BEGIN CERTIFICATE-----";
            if !pem.windows(marker.len()).any(|w| w == marker) {
                return Err(RouteError::Unavailable(
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
            .map_err(|e| RouteError::Unavailable(format!("REDIS_CA_FILE is not usable: {e}")))?
        }
    };
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(1)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    client
        .get_connection_manager_lazy(config)
        .map_err(|e| RouteError::Unavailable(e.to_string()))
}

/// Run one Redis operation under [`OP_TIMEOUT`].
pub async fn bounded<T>(
    op: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, RouteError> {
    match tokio::time::timeout(OP_TIMEOUT, op).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(RouteError::Unavailable(err.to_string())),
        Err(_) => Err(RouteError::Unavailable("redis timed out".to_owned())),
    }
}

pub struct RedisRoutes {
    conn: ConnectionManager,
    consume: redis::Script,
    describe: String,
}

fn key(ticket: Uuid, bucket: Bucket) -> String {
    format!("sushi:ticket:{{{ticket}}}:{}", bucket.index)
}

fn decode(value: Option<String>) -> Result<Lookup, RouteError> {
    let Some(value) = value else {
        return Ok(Lookup::Missing);
    };
    let mut chars = value.chars();
    let state = chars.next();
    let route: Route = serde_json::from_str(chars.as_str())
        .map_err(|e| RouteError::Unavailable(format!("malformed route entry: {e}")))?;
    match state {
        Some(OPEN) => Ok(Lookup::Open(route)),
        Some(USED) => Ok(Lookup::Used(route)),
        _ => Err(RouteError::Unavailable("malformed route entry".to_owned())),
    }
}

impl RedisRoutes {
    pub fn new(conn: ConnectionManager, url_for_log: &str) -> Self {
        // Never log credentials that may be embedded in the URL.
        let host = url_for_log
            .rsplit_once('@')
            .map_or(url_for_log, |(_, host)| host)
            .trim_start_matches("redis://")
            .trim_start_matches("rediss://");
        Self {
            conn,
            consume: redis::Script::new(CONSUME),
            describe: format!("redis ({host})"),
        }
    }
}

#[async_trait]
impl RouteTable for RedisRoutes {
    async fn register(
        &self,
        ticket: Uuid,
        route: &Route,
        bucket: Bucket,
    ) -> Result<(), RouteError> {
        let value = format!(
            "{OPEN}{}",
            serde_json::to_string(route).map_err(|e| RouteError::Unavailable(e.to_string()))?
        );
        let mut conn = self.conn.clone();
        let set: Option<String> = bounded(
            redis::cmd("SET")
                .arg(key(ticket, bucket))
                .arg(value)
                .arg("NX")
                .arg("EXAT")
                .arg(bucket.expires_at_secs())
                .query_async(&mut conn),
        )
        .await?;
        match set {
            Some(_) => Ok(()),
            // A v4 uuid collision: practically impossible, and refusing is the safe answer.
            None => Err(RouteError::Unavailable(
                "ticket already registered".to_owned(),
            )),
        }
    }

    async fn lookup(&self, ticket: Uuid, now: Bucket) -> Result<Lookup, RouteError> {
        let mut conn = self.conn.clone();
        let values: Vec<Option<String>> = bounded(
            redis::cmd("MGET")
                .arg(key(ticket, now))
                .arg(key(ticket, now.previous()))
                .query_async(&mut conn),
        )
        .await?;
        decode(values.into_iter().flatten().next())
    }

    async fn consume(&self, ticket: Uuid, now: Bucket) -> Result<Lookup, RouteError> {
        let mut conn = self.conn.clone();
        let value: Option<String> = bounded(
            self.consume
                .key(key(ticket, now))
                .key(key(ticket, now.previous()))
                .invoke_async(&mut conn),
        )
        .await?;
        decode(value)
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}
