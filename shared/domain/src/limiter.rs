//! Per-user limits on failed master-password attempts (429 after repeated failures). The trait
//! lets the relay count in Redis across replicas and api-fn in DynamoDB across Lambda
//! instances; the in-process counter here serves the embedded single-process mode and is the
//! Redis limiter's fallback.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

#[async_trait]
pub trait AttemptLimiter: Send + Sync {
    /// `Err(retry_after)` when `key` has used up its failures for the current window.
    async fn check(&self, key: &str) -> Result<(), Duration>;
    async fn record_failure(&self, key: &str);
    async fn reset(&self, key: &str);
}

/// Fixed-window failure counter. The map is bounded: past `MAX_KEYS` users, expired windows are
/// swept, and if that frees nothing the oldest window is dropped (which can only ever *allow*
/// one user an early retry, never lock anyone out).
pub struct InProcessLimiter {
    max_failures: u32,
    window: Duration,
    state: Mutex<HashMap<String, (u32, Instant)>>,
}

const MAX_KEYS: usize = 100_000;

impl InProcessLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            state: Mutex::new(HashMap::new()),
        }
    }
}

impl Default for InProcessLimiter {
    /// Five wrong master passwords per user per five minutes.
    fn default() -> Self {
        Self::new(5, Duration::from_secs(300))
    }
}

#[async_trait]
impl AttemptLimiter for InProcessLimiter {
    async fn check(&self, key: &str) -> Result<(), Duration> {
        let Ok(state) = self.state.lock() else {
            return Ok(());
        };
        match state.get(key) {
            Some((count, started)) if *count >= self.max_failures => {
                let elapsed = started.elapsed();
                if elapsed < self.window {
                    Err(self.window - elapsed)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    async fn record_failure(&self, key: &str) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let now = Instant::now();
        if state.len() >= MAX_KEYS && !state.contains_key(key) {
            let window = self.window;
            state.retain(|_, (_, started)| now.duration_since(*started) < window);
            if state.len() >= MAX_KEYS {
                if let Some(oldest) = state
                    .iter()
                    .min_by_key(|(_, (_, started))| *started)
                    .map(|(k, _)| k.clone())
                {
                    state.remove(&oldest);
                }
            }
        }
        let entry = state.entry(key.to_owned()).or_insert((0, now));
        if now.duration_since(entry.1) >= self.window {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
    }

    async fn reset(&self, key: &str) {
        if let Ok(mut state) = self.state.lock() {
            state.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn locks_after_max_failures_and_resets_on_success() {
        let limiter = InProcessLimiter::new(2, Duration::from_secs(60));
        limiter.record_failure("a").await;
        assert!(limiter.check("a").await.is_ok());
        limiter.record_failure("a").await;
        assert!(limiter.check("a").await.is_err());
        assert!(limiter.check("b").await.is_ok(), "limits are per user");
        limiter.reset("a").await;
        assert!(limiter.check("a").await.is_ok());
    }

    #[tokio::test]
    async fn window_expiry_lifts_the_limit() {
        let limiter = InProcessLimiter::new(1, Duration::from_millis(50));
        limiter.record_failure("a").await;
        assert!(limiter.check("a").await.is_err());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(limiter.check("a").await.is_ok());
    }
}
