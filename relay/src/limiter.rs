//! Failed master-password attempts counted in Redis, so the limit holds across relay replicas.
//! It shares the relay's one Redis connection (`crate::redis`) with the ticket table.
//!
//! A fixed window per user: `INCR` and, on the first failure, `PEXPIRE` the window, in one Lua
//! script so a crash between the two cannot leave a counter that never expires. When Redis is
//! unreachable the limiter falls back to an in-process counter rather than either locking every
//! user out (fail closed on an outage) or allowing unlimited guesses (fail open): each replica
//! still limits what it sees. Every call is bounded by the Redis deadline.

use std::time::Duration;

use async_trait::async_trait;
use domain::limiter::{AttemptLimiter, InProcessLimiter};
use redis::aio::ConnectionManager;

use crate::redis::bounded;

const RECORD: &str = r"
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return count
";

pub struct RedisLimiter {
    conn: ConnectionManager,
    max_failures: u32,
    window: Duration,
    record: redis::Script,
    fallback: InProcessLimiter,
}

impl RedisLimiter {
    pub fn new(conn: ConnectionManager, max_failures: u32, window: Duration) -> Self {
        Self {
            conn,
            max_failures,
            window,
            record: redis::Script::new(RECORD),
            fallback: InProcessLimiter::new(max_failures, window),
        }
    }

    /// Five failures per user per five minutes, like the in-process default.
    pub fn with_defaults(conn: ConnectionManager) -> Self {
        Self::new(conn, 5, Duration::from_secs(300))
    }

    fn key(user: &str) -> String {
        format!("sushi:pwfail:{user}")
    }
}

#[async_trait]
impl AttemptLimiter for RedisLimiter {
    async fn check(&self, key: &str) -> Result<(), Duration> {
        let mut conn = self.conn.clone();
        let result: Result<(Option<u32>, i64), _> = bounded(
            redis::pipe()
                .get(Self::key(key))
                .pttl(Self::key(key))
                .query_async(&mut conn),
        )
        .await;
        match result {
            Ok((Some(count), ttl_ms)) if count >= self.max_failures => {
                let left = u64::try_from(ttl_ms).unwrap_or(0);
                Err(Duration::from_millis(left.max(1000)))
            }
            Ok(_) => Ok(()),
            Err(err) => {
                tracing::warn!(error = %err, "rate limiter: redis unavailable, counting in-process");
                self.fallback.check(key).await
            }
        }
    }

    async fn record_failure(&self, key: &str) {
        let mut conn = self.conn.clone();
        let window_ms = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        let result: Result<u32, _> = bounded(
            self.record
                .key(Self::key(key))
                .arg(window_ms)
                .invoke_async(&mut conn),
        )
        .await;
        if let Err(err) = result {
            tracing::warn!(error = %err, "rate limiter: redis unavailable, counting in-process");
            self.fallback.record_failure(key).await;
        }
    }

    async fn reset(&self, key: &str) {
        let mut conn = self.conn.clone();
        let result: Result<i64, _> =
            bounded(redis::cmd("DEL").arg(Self::key(key)).query_async(&mut conn)).await;
        if let Err(err) = result {
            tracing::warn!(error = %err, "rate limiter: could not reset counter in redis");
        }
        self.fallback.reset(key).await;
    }
}
