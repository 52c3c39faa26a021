//! The key-derivation gate: every deliberately expensive computation (Argon2id for the master
//! password, the bcrypt/PBKDF2/scrypt that decrypts an uploaded private key) runs here, on
//! tokio's blocking pool, inside a per-process memory budget.
//!
//! Why a gate and not a bare `spawn_blocking`: off the runtime, a costly key no longer stalls
//! other requests, but nothing would stop sixty parallel connects from each holding a 19 MiB
//! Argon2id at once and exhausting a small relay task. The gate is a weighted, first-come
//! first-served semaphore counted in MiB: a job waits for its weight at most the configured
//! wait and is then refused as busy (503 with `Retry-After`), so a burst queues briefly instead
//! of piling up without end. The permit moves into the blocking job and is released when the
//! job finishes, even if the request that asked for it was cancelled: the memory is in use
//! until then.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::error::DomainError;

/// Default budget: thirteen 19 MiB Argon2id evaluations, or four maximal scrypt keys, at once.
pub const DEFAULT_MEMORY_MIB: u32 = 256;
/// Default longest wait for room in the budget before a request is refused as busy.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

pub struct KdfGate {
    permits: Arc<Semaphore>,
    budget_mib: u32,
    wait: Duration,
    queued: AtomicUsize,
}

impl Default for KdfGate {
    fn default() -> Self {
        Self::new(DEFAULT_MEMORY_MIB, DEFAULT_WAIT)
    }
}

impl KdfGate {
    /// A gate admitting jobs whose weights add up to at most `budget_mib`, each waiting at most
    /// `wait` for room (zero: refuse at once when full).
    pub fn new(budget_mib: u32, wait: Duration) -> Self {
        let budget_mib = budget_mib.max(1);
        Self {
            permits: Arc::new(Semaphore::new(budget_mib as usize)),
            budget_mib,
            wait,
            queued: AtomicUsize::new(0),
        }
    }

    /// Jobs waiting for room right now (for logs and metrics).
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Run `work`, which needs about `weight_mib` of memory, on the blocking pool once the
    /// budget has room for it. A job heavier than the whole budget is admitted alone.
    pub async fn run<T: Send + 'static>(
        &self,
        weight_mib: u32,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, DomainError> {
        let weight = weight_mib.clamp(1, self.budget_mib);
        self.queued.fetch_add(1, Ordering::Relaxed);
        let acquired = tokio::time::timeout(
            self.wait,
            Arc::clone(&self.permits).acquire_many_owned(weight),
        )
        .await;
        self.queued.fetch_sub(1, Ordering::Relaxed);
        let permit = match acquired {
            Ok(Ok(permit)) => permit,
            Ok(Err(_closed)) => return Err(DomainError::Internal("key-derivation gate closed")),
            Err(_elapsed) => {
                tracing::warn!(
                    weight_mib = weight,
                    budget_mib = self.budget_mib,
                    queued = self.queued(),
                    "key-derivation budget full; refusing"
                );
                return Err(DomainError::Busy {
                    retry_after_secs: 2,
                });
            }
        };
        tokio::task::spawn_blocking(move || {
            let _held = permit;
            work()
        })
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "key-derivation task failed");
            DomainError::Internal("key-derivation task failed")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test(flavor = "current_thread")]
    async fn work_runs_off_the_runtime_thread() {
        let gate = KdfGate::default();
        let runtime_thread = std::thread::current().id();
        let job_thread = gate.run(1, || std::thread::current().id()).await.unwrap();
        assert_ne!(job_thread, runtime_thread);
    }

    #[tokio::test]
    async fn concurrent_weight_never_exceeds_the_budget() {
        let gate = Arc::new(KdfGate::new(40, Duration::from_secs(10)));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs = (0..8).map(|_| {
            let (gate, running, most) = (gate.clone(), running.clone(), most.clone());
            tokio::spawn(async move {
                gate.run(19, move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            })
        });
        for job in jobs.collect::<Vec<_>>() {
            job.await.unwrap().unwrap();
        }
        assert_eq!(
            most.load(Ordering::SeqCst),
            2,
            "40 MiB admits two 19 MiB jobs"
        );
    }

    #[tokio::test]
    async fn a_full_gate_refuses_as_busy_after_its_wait() {
        let gate = Arc::new(KdfGate::new(19, Duration::from_millis(50)));
        let holder = {
            let gate = gate.clone();
            tokio::spawn(async move {
                gate.run(19, || std::thread::sleep(Duration::from_millis(400)))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let refused = gate.run(19, || ()).await;
        assert!(
            matches!(refused, Err(DomainError::Busy { .. })),
            "{refused:?}"
        );
        assert!(started.elapsed() < Duration::from_millis(300));
        holder.await.unwrap().unwrap();
        gate.run(19, || ()).await.unwrap();
    }
}
