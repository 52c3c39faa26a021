//! The master-password guess budget kept in the embedded SQLite file, next to the vaults it
//! protects: every process on the same `DATA_DIR` (the local binary, relays, the API) draws on
//! one budget per user.
//!
//! A reservation is one `BEGIN IMMEDIATE` transaction (read the window, decide, write), so two
//! processes cannot both take the last slot: SQLite lets one writer in at a time and the busy
//! timeout queues the other. Resolving an attempt is one `UPDATE` or `DELETE`.

use async_trait::async_trait;
use domain::limiter::{AttemptLimiter, Decision, Reservation, Window};
use domain::store::StoreError;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::store::SqliteStore;

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

fn unavailable(err: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

impl SqliteStore {
    /// Run one statement on `key`'s window; a failure is logged (the window expires anyway).
    async fn resolve_attempt(&self, key: &str, statement: &'static str, what: &'static str) {
        let key = key.to_owned();
        let done = self
            .with_conn(move |conn| conn.execute(statement, params![key]).map_err(unavailable))
            .await;
        if let Err(err) = done {
            tracing::warn!(error = %err, what, "could not update the master-password guess window");
        }
    }
}

#[async_trait]
impl AttemptLimiter for SqliteStore {
    async fn reserve(&self, key: &str) -> Result<Reservation, StoreError> {
        let key = key.to_owned();
        let now = now_secs();
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let current = tx
                .query_row(
                    "SELECT started, taken, failures FROM guess_windows WHERE owner_id = ?1",
                    params![key],
                    |row| {
                        Ok(Window {
                            started: row.get(0)?,
                            taken: row.get(1)?,
                            failures: row.get(2)?,
                        })
                    },
                )
                .optional()
                .map_err(unavailable)?;
            match Window::decide(current, now) {
                Decision::Refuse(retry_after) => Ok(Reservation::Refused { retry_after }),
                Decision::Wait => Ok(Reservation::Saturated),
                Decision::Take(window) => {
                    tx.execute(
                        "INSERT INTO guess_windows (owner_id, started, taken, failures) \
                         VALUES (?1, ?2, ?3, ?4) ON CONFLICT(owner_id) DO UPDATE SET \
                         started = excluded.started, taken = excluded.taken, \
                         failures = excluded.failures",
                        params![key, window.started, window.taken, window.failures],
                    )
                    .map_err(unavailable)?;
                    tx.commit().map_err(unavailable)?;
                    Ok(Reservation::Granted)
                }
            }
        })
        .await
    }

    async fn record_failure(&self, key: &str) {
        self.resolve_attempt(
            key,
            "UPDATE guess_windows SET failures = MIN(failures + 1, taken) WHERE owner_id = ?1",
            "record a failure",
        )
        .await;
    }

    async fn release(&self, key: &str) {
        self.resolve_attempt(
            key,
            "UPDATE guess_windows SET taken = MAX(taken - 1, failures) WHERE owner_id = ?1",
            "release an attempt",
        )
        .await;
    }

    async fn clear(&self, key: &str) {
        self.resolve_attempt(
            key,
            "DELETE FROM guess_windows WHERE owner_id = ?1",
            "clear the window",
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::limiter::MAX_ATTEMPTS;

    async fn reserve_all(store: &std::sync::Arc<SqliteStore>, n: usize) -> Vec<Reservation> {
        let reservations = (0..n).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.reserve("victim").await.unwrap() })
        });
        let mut answers = Vec::new();
        for reservation in reservations.collect::<Vec<_>>() {
            answers.push(reservation.await.unwrap());
        }
        answers
    }

    #[tokio::test]
    async fn parallel_reservations_never_exceed_the_budget_and_success_clears_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(SqliteStore::open(dir.path()).unwrap());
        let answers = reserve_all(&store, 20).await;
        let granted = answers
            .iter()
            .filter(|r| **r == Reservation::Granted)
            .count();
        assert_eq!(granted, MAX_ATTEMPTS as usize);
        assert!(
            answers
                .iter()
                .all(|r| matches!(r, Reservation::Granted | Reservation::Saturated)),
            "in-flight slots mean wait, not refuse: {answers:?}"
        );
        for _ in 0..MAX_ATTEMPTS {
            store.record_failure("victim").await;
        }
        assert!(matches!(
            store.reserve("victim").await.unwrap(),
            Reservation::Refused { .. }
        ));
        assert_eq!(
            store.reserve("someone else").await.unwrap(),
            Reservation::Granted
        );
        store.clear("victim").await;
        assert_eq!(store.reserve("victim").await.unwrap(), Reservation::Granted);
    }

    #[tokio::test]
    async fn a_released_attempt_gives_its_slot_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(SqliteStore::open(dir.path()).unwrap());
        reserve_all(&store, MAX_ATTEMPTS as usize).await;
        assert_eq!(
            store.reserve("victim").await.unwrap(),
            Reservation::Saturated
        );
        store.release("victim").await;
        assert_eq!(store.reserve("victim").await.unwrap(), Reservation::Granted);
    }
}
