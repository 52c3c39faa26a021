//! The guess limit on master passwords: at most [`MAX_ATTEMPTS`] wrong passwords per user per
//! [`WINDOW`], then 429 until the window ends.
//!
//! An attempt is *reserved* before the password is checked, atomically: a window counts the
//! attempts `taken` (in flight or failed) and, of those, the `failures`. Checking first and
//! recording the failure afterwards would let N parallel guesses all pass the check before any
//! failure is written (they did: twenty at once were all evaluated). With reservations, at most
//! [`MAX_ATTEMPTS`] are ever in flight or failed. A correct password clears the window; a wrong
//! one turns its reservation into a failure; an attempt that could not be evaluated (a backend
//! error) gives its reservation back.
//!
//! A full window is not always a refusal. When the slots are held by attempts still in flight
//! (the user opening several terminals at once with the right password), the answer is
//! [`Reservation::Saturated`] and the caller waits briefly for them to resolve; only spent
//! failures make a 429. The counter lives in the deployment's store (one SQLite file, or the
//! DynamoDB table), so the API and every relay draw on one budget per user.

use std::time::Duration;

use async_trait::async_trait;

use crate::store::StoreError;

/// Wrong master passwords (plus attempts in flight) allowed per user per window.
pub const MAX_ATTEMPTS: u32 = 5;
/// The fixed window those attempts are counted in.
pub const WINDOW: Duration = Duration::from_secs(300);

/// The answer to a reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reservation {
    /// One attempt taken: go on and check the password.
    Granted,
    /// Every slot is held by an attempt still being checked: ask again shortly.
    Saturated,
    /// The window's failures are spent.
    Refused { retry_after: Duration },
}

#[async_trait]
pub trait AttemptLimiter: Send + Sync {
    /// Take one attempt from `key`'s budget before evaluating it. Of any number of concurrent
    /// calls, at most the budget that remains are granted. A store that cannot answer is an
    /// error (503), never a grant: the vault lives in the same store, so nothing is lost.
    async fn reserve(&self, key: &str) -> Result<Reservation, StoreError>;
    /// The reserved attempt was a wrong password: it stays taken, as a failure.
    async fn record_failure(&self, key: &str);
    /// The reserved attempt was not evaluated (a backend failed): its slot is given back.
    async fn release(&self, key: &str);
    /// The attempt proved the password: `key`'s window starts over.
    async fn clear(&self, key: &str);
}

/// One user's window, on whole seconds of wall-clock time (the counters are shared between
/// processes, so no process-local clock will do).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub started: i64,
    /// Attempts reserved in this window: in flight or failed.
    pub taken: u32,
    /// Of those, the ones that were wrong.
    pub failures: u32,
}

/// What a reservation does to the stored window `current` at time `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Store this window (a new one, or the current one with one more attempt taken).
    Take(Window),
    /// Every slot is in flight; nothing changes.
    Wait,
    /// The failures are spent: retry after this long.
    Refuse(Duration),
}

impl Window {
    fn window_secs() -> i64 {
        i64::try_from(WINDOW.as_secs()).unwrap_or(i64::MAX)
    }

    /// Whether the window still counts at `now`.
    pub fn live(&self, now: i64) -> bool {
        now < self.started.saturating_add(Self::window_secs())
    }

    /// The rule every store applies inside its atomic read-modify-write.
    pub fn decide(current: Option<Window>, now: i64) -> Decision {
        match current {
            Some(w) if w.live(now) && w.taken < MAX_ATTEMPTS => Decision::Take(Window {
                taken: w.taken + 1,
                ..w
            }),
            Some(w) if w.live(now) && w.failures >= MAX_ATTEMPTS => {
                let left = w.started.saturating_add(Self::window_secs()) - now;
                Decision::Refuse(Duration::from_secs(u64::try_from(left).unwrap_or(1).max(1)))
            }
            Some(w) if w.live(now) => Decision::Wait,
            _ => Decision::Take(Window {
                started: now,
                taken: 1,
                failures: 0,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(current: Option<Window>, now: i64) -> Window {
        match Window::decide(current, now) {
            Decision::Take(w) => w,
            other => panic!("expected a slot, got {other:?}"),
        }
    }

    #[test]
    fn failures_spend_the_budget_until_the_window_ends() {
        let mut current = None;
        for _ in 0..MAX_ATTEMPTS {
            let mut w = take(current, 1000);
            w.failures += 1;
            current = Some(w);
        }
        assert_eq!(
            Window::decide(current, 1010),
            Decision::Refuse(Duration::from_secs(290))
        );
        let after = 1000 + WINDOW.as_secs() as i64;
        assert_eq!(take(current, after).taken, 1, "a new window starts");
    }

    #[test]
    fn slots_held_in_flight_mean_wait_not_refuse() {
        let mut current = None;
        for _ in 0..MAX_ATTEMPTS {
            current = Some(take(current, 1000));
        }
        assert_eq!(Window::decide(current, 1001), Decision::Wait);
        let mut w = current.unwrap();
        w.taken -= 1; // one attempt resolved (released or cleared by a success)
        assert_eq!(take(Some(w), 1002).taken, MAX_ATTEMPTS);
    }
}
