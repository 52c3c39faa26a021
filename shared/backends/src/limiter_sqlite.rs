//! The master-password guess budget kept in the embedded SQLite file, next to the vaults it
//! protects: every process on the same `DATA_DIR` (the local binary, relays, the API) draws on
//! one budget per user.
//!
//! A reservation is one `BEGIN IMMEDIATE` transaction (read the window, decide, write), so two
//! processes cannot both take the last attempt: SQLite lets one writer in at a time and the
//! busy timeout queues the other.

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
                    "SELECT started, attempts FROM attempts WHERE owner_id = ?1",
                    params![key],
                    |row| {
                        Ok(Window {
                            started: row.get(0)?,
                            attempts: row.get(1)?,
                        })
                    },
                )
                .optional()
                .map_err(unavailable)?;
            match Window::decide(current, now) {
                Decision::Refuse(retry_after) => Ok(Reservation::Refused { retry_after }),
                Decision::Take(window) => {
                    tx.execute(
                        "INSERT INTO attempts (owner_id, started, attempts) VALUES (?1, ?2, ?3) \
                         ON CONFLICT(owner_id) DO UPDATE SET started = excluded.started, \
                         attempts = excluded.attempts",
                        params![key, window.started, window.attempts],
                    )
                    .map_err(unavailable)?;
                    tx.commit().map_err(unavailable)?;
                    Ok(Reservation::Granted)
                }
            }
        })
        .await
    }

    async fn clear(&self, key: &str) {
        let key = key.to_owned();
        let cleared = self
            .with_conn(move |conn| {
                conn.execute("DELETE FROM attempts WHERE owner_id = ?1", params![key])
                    .map_err(unavailable)
            })
            .await;
        if let Err(err) = cleared {
            tracing::warn!(error = %err, "could not clear the master-password attempt window");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::limiter::MAX_ATTEMPTS;

    #[tokio::test]
    async fn parallel_reservations_never_exceed_the_budget_and_success_clears_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(SqliteStore::open(dir.path()).unwrap());
        let reservations = (0..20).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.reserve("victim").await.unwrap() })
        });
        let mut granted = 0;
        for reservation in reservations.collect::<Vec<_>>() {
            if reservation.await.unwrap() == Reservation::Granted {
                granted += 1;
            }
        }
        assert_eq!(granted, MAX_ATTEMPTS);
        assert_eq!(
            store.reserve("someone else").await.unwrap(),
            Reservation::Granted
        );
        store.clear("victim").await;
        assert_eq!(store.reserve("victim").await.unwrap(), Reservation::Granted);
    }
}
