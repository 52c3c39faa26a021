//! The guess limit on master passwords: at most [`MAX_ATTEMPTS`] unverified attempts per user
//! per [`WINDOW`], then 429 until the window ends.
//!
//! An attempt is *reserved* before the password is checked, atomically, and a correct password
//! clears the window. Checking first and recording the failure afterwards would let N parallel
//! guesses all pass the check before any failure is written (they did: twenty at once were all
//! evaluated). The counter lives in the deployment's store (one SQLite file, or the DynamoDB
//! table), so the API and every relay draw on one budget per user.

use std::time::Duration;

use async_trait::async_trait;

use crate::store::StoreError;

/// Unverified master-password attempts allowed per user per window.
pub const MAX_ATTEMPTS: u32 = 5;
/// The fixed window those attempts are counted in.
pub const WINDOW: Duration = Duration::from_secs(300);

/// The answer to a reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reservation {
    /// One attempt taken: go on and check the password.
    Granted,
    /// The window's attempts are used up.
    Refused { retry_after: Duration },
}

#[async_trait]
pub trait AttemptLimiter: Send + Sync {
    /// Take one attempt from `key`'s budget before evaluating it. Of any number of concurrent
    /// calls, at most the budget that remains are granted. A store that cannot answer is an
    /// error (503), never a grant: the vault lives in the same store, so nothing is lost.
    async fn reserve(&self, key: &str) -> Result<Reservation, StoreError>;
    /// The attempt proved the password: `key`'s window starts over.
    async fn clear(&self, key: &str);
}

/// The window arithmetic every implementation shares, on whole seconds of wall-clock time (the
/// counters are shared between processes, so no process-local clock will do).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub started: i64,
    pub attempts: u32,
}

/// What a reservation does to the stored window `current` at time `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Store this window (a new one, or the current one with one more attempt).
    Take(Window),
    /// The budget is spent: retry after this long.
    Refuse(Duration),
}

impl Window {
    pub fn decide(current: Option<Window>, now: i64) -> Decision {
        let window = i64::try_from(WINDOW.as_secs()).unwrap_or(i64::MAX);
        match current {
            Some(w) if now < w.started.saturating_add(window) => {
                if w.attempts < MAX_ATTEMPTS {
                    Decision::Take(Window {
                        started: w.started,
                        attempts: w.attempts + 1,
                    })
                } else {
                    let left = w.started.saturating_add(window).saturating_sub(now);
                    Decision::Refuse(Duration::from_secs(u64::try_from(left).unwrap_or(1).max(1)))
                }
            }
            _ => Decision::Take(Window {
                started: now,
                attempts: 1,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_spent_then_refused_until_the_window_ends() {
        let mut current = None;
        for n in 1..=MAX_ATTEMPTS {
            match Window::decide(current, 1000) {
                Decision::Take(w) => {
                    assert_eq!(w.attempts, n);
                    current = Some(w);
                }
                Decision::Refuse(_) => panic!("attempt {n} refused"),
            }
        }
        assert_eq!(
            Window::decide(current, 1010),
            Decision::Refuse(Duration::from_secs(290))
        );
        let after = 1000 + WINDOW.as_secs() as i64;
        assert_eq!(
            Window::decide(current, after),
            Decision::Take(Window {
                started: after,
                attempts: 1
            })
        );
    }
}
