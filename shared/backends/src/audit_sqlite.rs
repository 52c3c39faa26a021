//! The audit log in the embedded SQLite file (table `audit_log`, see the store's schema), next
//! to the machines it records: every process on the same `DATA_DIR` appends to one chain per
//! user.
//!
//! An append is a plain `INSERT`: the `(owner_id, seq)` primary key refuses a second entry with
//! the same sequence number, which is the conditional write the domain's retry loop expects
//! (`Conflict`). Reads use the reader connections; writes the writer, on the blocking pool like
//! every other SQLite call.

use async_trait::async_trait;
use domain::audit::{AuditEntry, AuditKind, AuditLog};
use domain::store::{Store, StoreError};
use rusqlite::{ErrorCode, OptionalExtension, Row, params};

use crate::store::SqliteStore;

const COLUMNS: &str =
    "owner_id, seq, at, kind, details, ip, user_agent, request_id, prev_hash, hash, actor";

fn unavailable(err: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<Result<AuditEntry, StoreError>> {
    let kind: String = row.get(3)?;
    let seq: i64 = row.get(1)?;
    let Some(kind) = AuditKind::parse(&kind) else {
        return Ok(Err(StoreError::Corrupt(format!("audit kind {kind:?}"))));
    };
    Ok(Ok(AuditEntry {
        owner_id: row.get(0)?,
        seq: u64::try_from(seq).unwrap_or_default(),
        at: row.get(2)?,
        kind,
        details: row.get(4)?,
        ip: row.get(5)?,
        user_agent: row.get(6)?,
        request_id: row.get(7)?,
        prev_hash: row.get(8)?,
        hash: row.get(9)?,
        actor: row.get(10)?,
    }))
}

fn seq_param(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

impl SqliteStore {
    async fn audit_query(
        &self,
        sql: String,
        owner_id: &str,
        bound: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let owner_id = owner_id.to_owned();
        self.with_reader(move |conn| {
            let mut statement = conn.prepare_cached(&sql).map_err(unavailable)?;
            let rows = statement
                .query_map(
                    params![owner_id, seq_param(bound), limit as i64],
                    entry_from_row,
                )
                .map_err(unavailable)?;
            rows.map(|row| row.map_err(unavailable).and_then(|entry| entry))
                .collect()
        })
        .await
    }
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn append(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let entry = entry.clone();
        self.with_conn(move |conn| {
            let inserted = conn.execute(
                &format!("INSERT INTO audit_log ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
                params![
                    entry.owner_id,
                    seq_param(entry.seq),
                    entry.at,
                    entry.kind.as_str(),
                    entry.details,
                    entry.ip,
                    entry.user_agent,
                    entry.request_id,
                    entry.prev_hash,
                    entry.hash,
                    entry.actor,
                ],
            );
            match inserted {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(err, _))
                    if err.code == ErrorCode::ConstraintViolation =>
                {
                    Err(StoreError::Conflict)
                }
                Err(other) => Err(unavailable(other)),
            }
        })
        .await
    }

    async fn last(&self, owner_id: &str) -> Result<Option<AuditEntry>, StoreError> {
        let owner_id = owner_id.to_owned();
        // The writer connection: the tail must be the latest committed one, and appends are
        // serialised on it anyway.
        self.with_conn(move |conn| {
            conn.query_row(
                &format!(
                    "SELECT {COLUMNS} FROM audit_log WHERE owner_id = ?1 ORDER BY seq DESC LIMIT 1"
                ),
                params![owner_id],
                entry_from_row,
            )
            .optional()
            .map_err(unavailable)?
            .transpose()
        })
        .await
    }

    async fn page(
        &self,
        owner_id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_log WHERE owner_id = ?1 AND seq < ?2 \
             ORDER BY seq DESC LIMIT ?3"
        );
        self.audit_query(sql, owner_id, before.unwrap_or(u64::MAX), limit)
            .await
    }

    async fn after(
        &self,
        owner_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_log WHERE owner_id = ?1 AND seq > ?2 \
             ORDER BY seq ASC LIMIT ?3"
        );
        self.audit_query(sql, owner_id, after, limit).await
    }

    fn describe(&self) -> String {
        format!("SQLite audit_log in {}", Store::describe(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::audit::{AuditContext, next_entry, verify};

    #[tokio::test]
    async fn appends_are_conditional_and_pages_run_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut previous: Option<AuditEntry> = None;
        for i in 0..5 {
            let entry = next_entry(
                previous.as_ref(),
                "alice@example.com",
                None,
                i,
                AuditKind::SignIn,
                &serde_json::json!({}),
                &AuditContext::default(),
            );
            store.append(&entry).await.unwrap();
            previous = Some(entry);
        }
        let again = previous.clone().unwrap();
        assert!(matches!(
            store.append(&again).await,
            Err(StoreError::Conflict)
        ));
        let page = store.page("alice@example.com", None, 2).await.unwrap();
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [5, 4]);
        let next = store.page("alice@example.com", Some(4), 10).await.unwrap();
        assert_eq!(next.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 2, 1]);
        let chain = store.after("alice@example.com", 0, 100).await.unwrap();
        assert!(verify(&chain).ok);
        assert!(
            store
                .page("bob@example.com", None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.last("alice@example.com").await.unwrap(), previous);
    }

    /// A file from before organization chains: the audit log gains `actor`, its entries read
    /// without one and still verify, and an organization's entry appends after them.
    #[tokio::test]
    async fn a_log_from_before_actors_still_verifies_and_takes_actors() {
        let dir = tempfile::tempdir().unwrap();
        let old = rusqlite::Connection::open(dir.path().join("sushi.db")).unwrap();
        old.execute_batch(
            "CREATE TABLE audit_log (owner_id TEXT NOT NULL, seq INTEGER NOT NULL,
                 at INTEGER NOT NULL, kind TEXT NOT NULL, details TEXT NOT NULL, ip TEXT,
                 user_agent TEXT, request_id TEXT, prev_hash TEXT NOT NULL, hash TEXT NOT NULL,
                 PRIMARY KEY (owner_id, seq)) WITHOUT ROWID;",
        )
        .unwrap();
        let first = next_entry(
            None,
            "org:platform",
            None,
            1,
            AuditKind::OrgCreated,
            &serde_json::json!({}),
            &AuditContext::default(),
        );
        old.execute(
            "INSERT INTO audit_log VALUES (?1, 1, 1, 'org_created', ?2, NULL, NULL, NULL, ?3, ?4)",
            params![first.owner_id, first.details, first.prev_hash, first.hash],
        )
        .unwrap();
        drop(old);
        let store = SqliteStore::open(dir.path()).unwrap();
        let second = next_entry(
            Some(&first),
            "org:platform",
            Some("alice@example.com"),
            2,
            AuditKind::OrgJoined,
            &serde_json::json!({}),
            &AuditContext::default(),
        );
        store.append(&second).await.unwrap();
        let chain = store.after("org:platform", 0, 10).await.unwrap();
        assert_eq!(chain, vec![first, second]);
        assert!(verify(&chain).ok);
        drop(store);
        // Opening again finds the column and leaves it alone.
        SqliteStore::open(dir.path()).unwrap();
    }
}
