//! The embedded default store: one SQLite file under `DATA_DIR`.
//!
//! SQLite calls block, so each runs on tokio's blocking pool (`spawn_blocking`) holding a
//! connection behind a `std::sync::Mutex`: a sync mutex is right here because it is only ever
//! locked on a blocking thread and never across an `.await`. One writer connection serialises
//! writes, which SQLite does anyway; reads go to a small pool of reader connections (WAL mode
//! lets them run beside the writer), so concurrent list/get requests use every core instead of
//! queueing on one lock.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params};

use domain::machine::{FieldChange, FieldValue, Machine, MachineSummary, SealedSecrets};
use domain::store::{Store, StoreError, VaultPrecondition};
use domain::vault::{KdfParams, OrgKeyCopy, PreviousKey, VaultRecord};

pub struct SqliteStore {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    readers: Vec<Arc<Mutex<Connection>>>,
    next_reader: AtomicUsize,
}

/// Reader connections: a few per core is plenty; each holds its own page cache.
const READERS: usize = 4;

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters (name, value) VALUES ('machine_id', 0);
CREATE TABLE IF NOT EXISTS machines (
    id INTEGER PRIMARY KEY,
    owner_id TEXT NOT NULL,
    name TEXT NOT NULL,
    hostname TEXT NOT NULL,
    port INTEGER NOT NULL,
    username TEXT NOT NULL,
    organization TEXT,
    host_key_fingerprint TEXT,
    vault_gen INTEGER NOT NULL,
    wrapped_data_key BLOB NOT NULL,
    hpke_enc BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    persistent_shell INTEGER NOT NULL DEFAULT 0,
    recording INTEGER NOT NULL DEFAULT 1,
    record_input INTEGER NOT NULL DEFAULT 0
);
DROP INDEX IF EXISTS machines_by_owner;
CREATE TABLE IF NOT EXISTS vaults (
    owner_id TEXT PRIMARY KEY,
    generation INTEGER NOT NULL,
    public_key BLOB NOT NULL,
    kdf_memory_kib INTEGER NOT NULL,
    kdf_iterations INTEGER NOT NULL,
    kdf_parallelism INTEGER NOT NULL,
    kdf_salt BLOB NOT NULL,
    wrapped_seed BLOB NOT NULL,
    prev_generation INTEGER,
    prev_wrapped_seed BLOB
);
-- Organization key copies: an organization's vault seed(s) sealed to one member's vault key
-- (the organization's own vault is a row of `vaults`, owner `org:<slug>`).
CREATE TABLE IF NOT EXISTS org_key_copies (
    org_owner TEXT NOT NULL,
    member TEXT NOT NULL,
    org_gen INTEGER NOT NULL,
    member_gen INTEGER NOT NULL,
    hpke_enc BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    PRIMARY KEY (org_owner, member)
) WITHOUT ROWID;
-- Master-password guess windows (limiter_sqlite.rs): per user, attempts taken (in flight or
-- failed) and, of those, failures.
CREATE TABLE IF NOT EXISTS guess_windows (
    owner_id TEXT PRIMARY KEY,
    started INTEGER NOT NULL,
    taken INTEGER NOT NULL,
    failures INTEGER NOT NULL
);
-- Signed-out session tokens, until they expire (then their exp refuses them anyway).
CREATE TABLE IF NOT EXISTS revoked_tokens (
    jti TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
-- The audit log (audit_sqlite.rs): one hash chain per owner, append-only. The primary key makes
-- an append conditional on its sequence number; the triggers refuse edits through SQL (someone
-- with the file can still drop them, which is what the hash chain is for).
CREATE TABLE IF NOT EXISTS audit_log (
    owner_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    details TEXT NOT NULL,
    ip TEXT,
    user_agent TEXT,
    request_id TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    actor TEXT,
    PRIMARY KEY (owner_id, seq)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
-- Organizations (orgs_sqlite.rs): the organization, its members (one owner at least, checked in
-- the transaction that would remove the last) and its pending invitations.
CREATE TABLE IF NOT EXISTS orgs (
    slug TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS org_members (
    slug TEXT NOT NULL,
    member TEXT NOT NULL,
    role TEXT NOT NULL,
    since INTEGER NOT NULL,
    PRIMARY KEY (slug, member)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS org_members_by_member ON org_members (member, slug);
CREATE TABLE IF NOT EXISTS org_invitations (
    slug TEXT NOT NULL,
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    invited_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (slug, email)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS org_invitations_by_email ON org_invitations (email, slug);
";

/// Files written before `persistent_shell` existed get the column (old rows read as 0, a
/// plain shell). Checked and altered inside one write transaction, because the relays and the
/// API may open the same file at once.
const ADD_PERSISTENT_SHELL: &str = "
ALTER TABLE machines ADD COLUMN persistent_shell INTEGER NOT NULL DEFAULT 0;
DROP INDEX IF EXISTS machines_listing;
";

/// Files written before the recording toggles existed get their columns (old rows read as
/// recorded, without input), in the same transaction as the migration above.
const ADD_RECORDING: &str = "
ALTER TABLE machines ADD COLUMN recording INTEGER NOT NULL DEFAULT 1;
ALTER TABLE machines ADD COLUMN record_input INTEGER NOT NULL DEFAULT 0;
DROP INDEX IF EXISTS machines_listing;
";

/// Files written before organization chains existed get the audit log's `actor` column (old
/// entries read as having none, which is what they were hashed without).
const ADD_AUDIT_ACTOR: &str = "ALTER TABLE audit_log ADD COLUMN actor TEXT;";

/// The owner's machines in id order with every listed column, so a listing reads the index
/// alone and never visits the rows (whose sealed blobs it has no use for). Get, delete and
/// count use its (owner_id, id) prefix. Created after the migration above, which drops the
/// narrower index of earlier versions.
const LISTING_INDEX: &str = "
CREATE INDEX IF NOT EXISTS machines_listing ON machines
    (owner_id, id, name, hostname, port, username, organization, host_key_fingerprint,
     persistent_shell, recording, record_input);
";

/// Bring an existing file to the current schema (see [`ADD_PERSISTENT_SHELL`]).
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(unavailable)?;
    let has_column_in = |table: &str, name: &str| {
        tx.query_row(
            "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = ?2",
            [table, name],
            |row| row.get::<_, i64>(0),
        )
        .map(|count| count > 0)
        .map_err(unavailable)
    };
    let has_column = |name: &str| has_column_in("machines", name);
    if !has_column("persistent_shell")? {
        tx.execute_batch(ADD_PERSISTENT_SHELL)
            .map_err(unavailable)?;
    }
    if !has_column("recording")? {
        tx.execute_batch(ADD_RECORDING).map_err(unavailable)?;
    }
    if !has_column_in("audit_log", "actor")? {
        tx.execute_batch(ADD_AUDIT_ACTOR).map_err(unavailable)?;
    }
    tx.execute_batch(LISTING_INDEX).map_err(unavailable)?;
    tx.commit().map_err(unavailable)
}

/// The summary columns come first, in [`summary_from_row`]'s order, so one mapper serves both.
const SUMMARY_COLUMNS: &str = "id, owner_id, name, hostname, port, username, organization, \
     host_key_fingerprint, persistent_shell, recording, record_input";
const MACHINE_COLUMNS: &str = "id, owner_id, name, hostname, port, username, organization, \
     host_key_fingerprint, persistent_shell, recording, record_input, vault_gen, wrapped_data_key, hpke_enc, ciphertext, \
     created_at";

impl SqliteStore {
    /// Open (creating if needed) `dir/sushi.db`. Blocking; call at start-up.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let io = |e: std::io::Error| StoreError::Unavailable(e.to_string());
        domain::data_dir::create_private_dir(dir).map_err(io)?;
        let path = dir.join("sushi.db");
        // 0600 before SQLite creates it: its -wal and -shm files copy the database's mode.
        domain::data_dir::ensure_private_file(&path).map_err(io)?;
        for suffix in ["-wal", "-shm"] {
            let mut side = path.clone().into_os_string();
            side.push(suffix);
            domain::data_dir::tighten_if_exists(Path::new(&side)).map_err(io)?;
        }
        let open = || -> Result<Connection, StoreError> {
            let conn = Connection::open(&path).map_err(unavailable)?;
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .map_err(unavailable)?;
            Ok(conn)
        };
        let mut writer = open()?;
        writer.execute_batch(SCHEMA).map_err(unavailable)?;
        migrate(&mut writer)?;
        let readers = (0..READERS)
            .map(|_| open().map(|conn| Arc::new(Mutex::new(conn))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            path,
            writer: Arc::new(Mutex::new(writer)),
            readers,
            next_reader: AtomicUsize::new(0),
        })
    }

    /// Run `f` with the writer connection on the blocking pool.
    pub(crate) async fn with_conn<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        Self::run(Arc::clone(&self.writer), f).await
    }

    /// Run a read-only `f` with one of the reader connections, round robin.
    pub(crate) async fn with_reader<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let index = self.next_reader.fetch_add(1, Ordering::Relaxed) % READERS;
        let conn = self
            .readers
            .get(index)
            .map_or_else(|| Arc::clone(&self.writer), Arc::clone);
        Self::run(conn, f).await
    }

    async fn run<T, F>(conn: Arc<Mutex<Connection>>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Unavailable("store lock poisoned".to_owned()))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }
}

fn unavailable(err: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

fn summary_from_row(row: &Row<'_>) -> rusqlite::Result<MachineSummary> {
    let id: i64 = row.get(0)?;
    let port: i64 = row.get(4)?;
    Ok(MachineSummary {
        id: id as u64,
        owner_id: row.get(1)?,
        name: row.get(2)?,
        hostname: row.get(3)?,
        port: port as u16,
        username: row.get(5)?,
        organization: row.get(6)?,
        host_key_fingerprint: row.get(7)?,
        persistent_shell: row.get(8)?,
        recording: row.get(9)?,
        record_input: row.get(10)?,
    })
}

fn machine_from_row(row: &Row<'_>) -> rusqlite::Result<Machine> {
    let summary = summary_from_row(row)?;
    let vault_gen: i64 = row.get(11)?;
    Ok(Machine {
        id: summary.id,
        owner_id: summary.owner_id,
        name: summary.name,
        hostname: summary.hostname,
        port: summary.port,
        username: summary.username,
        organization: summary.organization,
        host_key_fingerprint: summary.host_key_fingerprint,
        persistent_shell: summary.persistent_shell,
        recording: summary.recording,
        record_input: summary.record_input,
        sealed: SealedSecrets {
            vault_gen: vault_gen as u32,
            wrapped_data_key: row.get(12)?,
            hpke_enc: row.get(13)?,
            ciphertext: row.get(14)?,
        },
        created_at: row.get(15)?,
    })
}

const COPY_COLUMNS: &str = "org_owner, member, org_gen, member_gen, hpke_enc, ciphertext";

fn copy_from_row(row: &Row<'_>) -> rusqlite::Result<OrgKeyCopy> {
    Ok(OrgKeyCopy {
        org_owner: row.get(0)?,
        member: row.get(1)?,
        org_gen: row.get(2)?,
        member_gen: row.get(3)?,
        hpke_enc: row.get(4)?,
        ciphertext: row.get(5)?,
    })
}

fn vault_from_row(row: &Row<'_>) -> rusqlite::Result<VaultRecord> {
    let prev_generation: Option<i64> = row.get(8)?;
    let prev_wrapped_seed: Option<Vec<u8>> = row.get(9)?;
    let generation: i64 = row.get(1)?;
    Ok(VaultRecord {
        owner_id: row.get(0)?,
        generation: generation as u32,
        public_key: row.get(2)?,
        kdf: KdfParams {
            memory_kib: row.get(3)?,
            iterations: row.get(4)?,
            parallelism: row.get(5)?,
            salt: row.get(6)?,
        },
        wrapped_seed: row.get(7)?,
        previous: match (prev_generation, prev_wrapped_seed) {
            (Some(generation), Some(wrapped_seed)) => Some(PreviousKey {
                generation: generation as u32,
                wrapped_seed,
            }),
            _ => None,
        },
    })
}

/// A stored field's value as SQLite holds it.
fn sql_value(value: &FieldValue) -> SqlValue {
    match value {
        FieldValue::Text(text) | FieldValue::OptionalText(Some(text)) => {
            SqlValue::Text(text.clone())
        }
        FieldValue::OptionalText(None) => SqlValue::Null,
        FieldValue::Port(port) => SqlValue::Integer(i64::from(*port)),
        FieldValue::Flag { value, .. } => SqlValue::Integer(i64::from(*value)),
    }
}

/// The one `UPDATE` an edit is: `SET` each changed column (and the sealed columns), `WHERE`
/// each changed column `IS` what was read (`IS` compares NULLs too) and, with new secrets,
/// the owner's vault is at their generation. The column names come from the domain's fixed
/// field list, never from a request. `None` when there is nothing to write.
fn update_statement(
    owner_id: &str,
    id: u64,
    changes: &[FieldChange],
    sealed: Option<&SealedSecrets>,
) -> Option<(String, Vec<SqlValue>)> {
    if changes.is_empty() && sealed.is_none() {
        return None;
    }
    let mut sets = Vec::new();
    let mut conditions = vec!["owner_id = ?1".to_owned(), "id = ?2".to_owned()];
    let mut values = vec![
        SqlValue::Text(owner_id.to_owned()),
        SqlValue::Integer(id as i64),
    ];
    for change in changes {
        values.push(sql_value(&change.written));
        sets.push(format!("{} = ?{}", change.field, values.len()));
        values.push(sql_value(&change.read));
        conditions.push(format!("{} IS ?{}", change.field, values.len()));
    }
    if let Some(sealed) = sealed {
        for (column, value) in [
            ("vault_gen", SqlValue::Integer(i64::from(sealed.vault_gen))),
            (
                "wrapped_data_key",
                SqlValue::Blob(sealed.wrapped_data_key.clone()),
            ),
            ("hpke_enc", SqlValue::Blob(sealed.hpke_enc.clone())),
            ("ciphertext", SqlValue::Blob(sealed.ciphertext.clone())),
        ] {
            values.push(value);
            sets.push(format!("{column} = ?{}", values.len()));
        }
        conditions.push(format!(
            "EXISTS (SELECT 1 FROM vaults WHERE owner_id = ?1 AND generation = ?{})",
            values.len() - 3
        ));
    }
    let sql = format!(
        "UPDATE machines SET {} WHERE {}",
        sets.join(", "),
        conditions.join(" AND ")
    );
    Some((sql, values))
}

#[async_trait]
impl Store for SqliteStore {
    async fn next_machine_id(&self) -> Result<u64, StoreError> {
        self.with_conn(|conn| {
            let id: i64 = conn
                .query_row(
                    "UPDATE counters SET value = value + 1 WHERE name = 'machine_id' RETURNING value",
                    [],
                    |row| row.get(0),
                )
                .map_err(unavailable)?;
            Ok(id as u64)
        })
        .await
    }

    async fn insert_machine(&self, machine: &Machine) -> Result<(), StoreError> {
        let m = machine.clone();
        self.with_conn(move |conn| {
            // One statement, so the vault check and the insert are one atomic step: the row is
            // written only while the owner's vault is at the generation it was sealed to.
            let inserted = conn
                .execute(
                    &format!(
                        "INSERT OR IGNORE INTO machines ({MACHINE_COLUMNS}) \
                         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16 \
                         WHERE EXISTS (SELECT 1 FROM vaults WHERE owner_id = ?2 AND generation = ?12)"
                    ),
                    params![
                        m.id as i64,
                        m.owner_id,
                        m.name,
                        m.hostname,
                        m.port,
                        m.username,
                        m.organization,
                        m.host_key_fingerprint,
                        m.persistent_shell,
                        m.recording,
                        m.record_input,
                        m.sealed.vault_gen,
                        m.sealed.wrapped_data_key,
                        m.sealed.hpke_enc,
                        m.sealed.ciphertext,
                        m.created_at,
                    ],
                )
                .map_err(unavailable)?;
            if inserted == 1 {
                Ok(())
            } else {
                Err(StoreError::Conflict)
            }
        })
        .await
    }

    async fn get_machine(&self, owner_id: &str, id: u64) -> Result<Option<Machine>, StoreError> {
        let owner_id = owner_id.to_owned();
        self.with_reader(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {MACHINE_COLUMNS} FROM machines WHERE owner_id = ?1 AND id = ?2"
            ))
            .and_then(|mut statement| {
                statement
                    .query_row(params![owner_id, id as i64], machine_from_row)
                    .optional()
            })
            .map_err(unavailable)
        })
        .await
    }

    async fn list_machines(&self, owner_id: &str) -> Result<Vec<Machine>, StoreError> {
        let owner_id = owner_id.to_owned();
        self.with_reader(move |conn| {
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT {MACHINE_COLUMNS} FROM machines WHERE owner_id = ?1 ORDER BY id"
                ))
                .map_err(unavailable)?;
            let rows = statement
                .query_map(params![owner_id], machine_from_row)
                .map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }

    async fn list_summaries(&self, owner_id: &str) -> Result<Vec<MachineSummary>, StoreError> {
        let owner_id = owner_id.to_owned();
        self.with_reader(move |conn| {
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT {SUMMARY_COLUMNS} FROM machines WHERE owner_id = ?1 ORDER BY id"
                ))
                .map_err(unavailable)?;
            let rows = statement
                .query_map(params![owner_id], summary_from_row)
                .map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }

    async fn count_machines(&self, owner_id: &str) -> Result<usize, StoreError> {
        let owner_id = owner_id.to_owned();
        self.with_reader(move |conn| {
            let count: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM machines WHERE owner_id = ?1",
                    params![owner_id],
                    |row| row.get(0),
                )
                .map_err(unavailable)?;
            Ok(count as usize)
        })
        .await
    }

    async fn update_machine(
        &self,
        owner_id: &str,
        id: u64,
        changes: &[FieldChange],
        sealed: Option<&SealedSecrets>,
    ) -> Result<bool, StoreError> {
        let owner_id = owner_id.to_owned();
        let changes = changes.to_vec();
        let sealed = sealed.cloned();
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(unavailable)?;
            let exists = tx
                .query_row(
                    "SELECT 1 FROM machines WHERE owner_id = ?1 AND id = ?2",
                    params![owner_id, id as i64],
                    |_| Ok(()),
                )
                .optional()
                .map_err(unavailable)?;
            if exists.is_none() {
                return Ok(false);
            }
            let statement = update_statement(&owner_id, id, &changes, sealed.as_ref());
            let Some((sql, values)) = statement else {
                return Ok(true);
            };
            let updated = tx
                .execute(&sql, rusqlite::params_from_iter(values))
                .map_err(unavailable)?;
            if updated != 1 {
                return Err(StoreError::Conflict);
            }
            tx.commit().map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn move_machine(&self, read: &Machine, moved: &Machine) -> Result<bool, StoreError> {
        let read = read.clone();
        let m = moved.clone();
        self.with_conn(move |conn| {
            // One write transaction: compare the row with what was read, check the new owner's
            // vault, then rewrite the row under its new owner (the id is the table's key, so it
            // stays the same).
            let tx = conn.transaction().map_err(unavailable)?;
            let stored = tx
                .query_row(
                    &format!(
                        "SELECT {MACHINE_COLUMNS} FROM machines WHERE owner_id = ?1 AND id = ?2"
                    ),
                    params![read.owner_id, read.id as i64],
                    machine_from_row,
                )
                .optional()
                .map_err(unavailable)?;
            let Some(stored) = stored else {
                return Ok(false);
            };
            let unchanged = stored.sealed == read.sealed
                && MachineSummary::from(stored) == MachineSummary::from(read.clone());
            let vault_ready = tx
                .query_row(
                    "SELECT 1 FROM vaults WHERE owner_id = ?1 AND generation = ?2",
                    params![m.owner_id, m.sealed.vault_gen],
                    |_| Ok(()),
                )
                .optional()
                .map_err(unavailable)?
                .is_some();
            if !unchanged || !vault_ready {
                return Err(StoreError::Conflict);
            }
            tx.execute(
                "UPDATE machines SET owner_id = ?2, name = ?3, hostname = ?4, port = ?5, \
                     username = ?6, organization = ?7, host_key_fingerprint = ?8, \
                     persistent_shell = ?9, recording = ?10, record_input = ?11, vault_gen = ?12, \
                     wrapped_data_key = ?13, hpke_enc = ?14, ciphertext = ?15 \
                     WHERE id = ?1 AND owner_id = ?16",
                params![
                    m.id as i64,
                    m.owner_id,
                    m.name,
                    m.hostname,
                    m.port,
                    m.username,
                    m.organization,
                    m.host_key_fingerprint,
                    m.persistent_shell,
                    m.recording,
                    m.record_input,
                    m.sealed.vault_gen,
                    m.sealed.wrapped_data_key,
                    m.sealed.hpke_enc,
                    m.sealed.ciphertext,
                    read.owner_id,
                ],
            )
            .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn delete_machine(&self, owner_id: &str, id: u64) -> Result<bool, StoreError> {
        let owner_id = owner_id.to_owned();
        self.with_conn(move |conn| {
            let deleted = conn
                .execute(
                    "DELETE FROM machines WHERE owner_id = ?1 AND id = ?2",
                    params![owner_id, id as i64],
                )
                .map_err(unavailable)?;
            Ok(deleted == 1)
        })
        .await
    }

    async fn replace_sealed(
        &self,
        owner_id: &str,
        id: u64,
        expected_gen: u32,
        sealed: &SealedSecrets,
    ) -> Result<bool, StoreError> {
        let owner_id = owner_id.to_owned();
        let sealed = sealed.clone();
        self.with_conn(move |conn| {
            let updated = conn
                .execute(
                    "UPDATE machines SET vault_gen = ?1, wrapped_data_key = ?2, hpke_enc = ?3, \
                     ciphertext = ?4 WHERE owner_id = ?5 AND id = ?6 AND vault_gen = ?7",
                    params![
                        sealed.vault_gen,
                        sealed.wrapped_data_key,
                        sealed.hpke_enc,
                        sealed.ciphertext,
                        owner_id,
                        id as i64,
                        expected_gen
                    ],
                )
                .map_err(unavailable)?;
            Ok(updated == 1)
        })
        .await
    }

    async fn set_host_key(
        &self,
        owner_id: &str,
        id: u64,
        expected: Option<&str>,
        new: Option<&str>,
    ) -> Result<bool, StoreError> {
        let owner_id = owner_id.to_owned();
        let expected = expected.map(str::to_owned);
        let new = new.map(str::to_owned);
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(unavailable)?;
            let current: Option<Option<String>> = tx
                .query_row(
                    "SELECT host_key_fingerprint FROM machines WHERE owner_id = ?1 AND id = ?2",
                    params![owner_id, id as i64],
                    |row| row.get(0),
                )
                .optional()
                .map_err(unavailable)?;
            let Some(current) = current else {
                return Ok(false);
            };
            if current != expected {
                return Err(StoreError::Conflict);
            }
            tx.execute(
                "UPDATE machines SET host_key_fingerprint = ?1 WHERE owner_id = ?2 AND id = ?3",
                params![new, owner_id, id as i64],
            )
            .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn get_vault(&self, owner_id: &str) -> Result<Option<VaultRecord>, StoreError> {
        let owner_id = owner_id.to_owned();
        self.with_reader(move |conn| {
            conn.query_row(
                "SELECT owner_id, generation, public_key, kdf_memory_kib, kdf_iterations, \
                 kdf_parallelism, kdf_salt, wrapped_seed, prev_generation, prev_wrapped_seed \
                 FROM vaults WHERE owner_id = ?1",
                params![owner_id],
                vault_from_row,
            )
            .optional()
            .map_err(unavailable)
        })
        .await
    }

    async fn put_vault(
        &self,
        vault: &VaultRecord,
        precondition: VaultPrecondition,
    ) -> Result<(), StoreError> {
        let v = vault.clone();
        self.with_conn(move |conn| {
            let prev_generation = v.previous.as_ref().map(|p| p.generation);
            let prev_wrapped = v.previous.as_ref().map(|p| p.wrapped_seed.clone());
            let changed = match precondition {
                VaultPrecondition::Absent => conn.execute(
                    "INSERT OR IGNORE INTO vaults (owner_id, generation, public_key, kdf_memory_kib, \
                     kdf_iterations, kdf_parallelism, kdf_salt, wrapped_seed, prev_generation, \
                     prev_wrapped_seed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        v.owner_id,
                        v.generation,
                        v.public_key,
                        v.kdf.memory_kib,
                        v.kdf.iterations,
                        v.kdf.parallelism,
                        v.kdf.salt,
                        v.wrapped_seed,
                        prev_generation,
                        prev_wrapped
                    ],
                ),
                VaultPrecondition::At {
                    generation,
                    has_previous,
                } => conn.execute(
                    "UPDATE vaults SET generation = ?2, public_key = ?3, kdf_memory_kib = ?4, \
                     kdf_iterations = ?5, kdf_parallelism = ?6, kdf_salt = ?7, wrapped_seed = ?8, \
                     prev_generation = ?9, prev_wrapped_seed = ?10 \
                     WHERE owner_id = ?1 AND generation = ?11 \
                     AND (prev_generation IS NOT NULL) = ?12",
                    params![
                        v.owner_id,
                        v.generation,
                        v.public_key,
                        v.kdf.memory_kib,
                        v.kdf.iterations,
                        v.kdf.parallelism,
                        v.kdf.salt,
                        v.wrapped_seed,
                        prev_generation,
                        prev_wrapped,
                        generation,
                        has_previous
                    ],
                ),
            }
            .map_err(unavailable)?;
            if changed == 1 {
                Ok(())
            } else {
                Err(StoreError::Conflict)
            }
        })
        .await
    }

    async fn put_org_key_copy(&self, copy: &OrgKeyCopy) -> Result<(), StoreError> {
        let c = copy.clone();
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO org_key_copies (org_owner, member, org_gen, member_gen, hpke_enc, \
                 ciphertext) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (org_owner, member) \
                 DO UPDATE SET org_gen = excluded.org_gen, member_gen = excluded.member_gen, \
                 hpke_enc = excluded.hpke_enc, ciphertext = excluded.ciphertext",
                params![
                    c.org_owner,
                    c.member,
                    c.org_gen,
                    c.member_gen,
                    c.hpke_enc,
                    c.ciphertext
                ],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn get_org_key_copy(
        &self,
        org_owner: &str,
        member: &str,
    ) -> Result<Option<OrgKeyCopy>, StoreError> {
        let (org_owner, member) = (org_owner.to_owned(), member.to_owned());
        self.with_reader(move |conn| {
            conn.query_row(
                &format!(
                    "SELECT {COPY_COLUMNS} FROM org_key_copies WHERE org_owner = ?1 AND member = ?2"
                ),
                params![org_owner, member],
                copy_from_row,
            )
            .optional()
            .map_err(unavailable)
        })
        .await
    }

    async fn list_org_key_copies(&self, org_owner: &str) -> Result<Vec<OrgKeyCopy>, StoreError> {
        let org_owner = org_owner.to_owned();
        self.with_reader(move |conn| {
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT {COPY_COLUMNS} FROM org_key_copies WHERE org_owner = ?1 ORDER BY member"
                ))
                .map_err(unavailable)?;
            let rows = statement
                .query_map(params![org_owner], copy_from_row)
                .map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }

    async fn delete_org_key_copy(&self, org_owner: &str, member: &str) -> Result<bool, StoreError> {
        let (org_owner, member) = (org_owner.to_owned(), member.to_owned());
        self.with_conn(move |conn| {
            conn.execute(
                "DELETE FROM org_key_copies WHERE org_owner = ?1 AND member = ?2",
                params![org_owner, member],
            )
            .map(|deleted| deleted > 0)
            .map_err(unavailable)
        })
        .await
    }

    async fn revoke_token(&self, jti: &str, expires_at: u64) -> Result<(), StoreError> {
        let jti = jti.to_owned();
        let expires_at = i64::try_from(expires_at).unwrap_or(i64::MAX);
        self.with_conn(move |conn| {
            // Expired entries are dropped as new ones arrive, so the table stays as small as
            // the number of live signed-out sessions.
            conn.execute(
                "DELETE FROM revoked_tokens WHERE expires_at < ?1",
                params![unix_now()],
            )
            .map_err(unavailable)?;
            conn.execute(
                "INSERT INTO revoked_tokens (jti, expires_at) VALUES (?1, ?2) \
                 ON CONFLICT (jti) DO UPDATE SET expires_at = MAX(expires_at, excluded.expires_at)",
                params![jti, expires_at],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn is_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let jti = jti.to_owned();
        self.with_reader(move |conn| {
            conn.query_row(
                "SELECT 1 FROM revoked_tokens WHERE jti = ?1",
                params![jti],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(unavailable)
        })
        .await
    }

    fn describe(&self) -> String {
        format!("embedded SQLite store {}", self.path.display())
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn revoked_tokens_are_remembered_and_expired_ones_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        assert!(!store.is_token_revoked("a").await.unwrap());
        store.revoke_token("a", 1).await.unwrap();
        assert!(store.is_token_revoked("a").await.unwrap());
        store.revoke_token("b", u64::MAX).await.unwrap();
        // Revoking "b" swept "a", whose expiry (1970) had passed.
        assert!(!store.is_token_revoked("a").await.unwrap());
        assert!(store.is_token_revoked("b").await.unwrap());
    }

    /// A file from before `persistent_shell` opens, gains the column, and its machines read
    /// as plain-shell ones; the listing index is rebuilt to cover the new column.
    #[tokio::test]
    async fn machines_from_before_persistent_shell_read_as_plain() {
        let dir = tempfile::tempdir().unwrap();
        let old = Connection::open(dir.path().join("sushi.db")).unwrap();
        old.execute_batch(
            "CREATE TABLE machines (id INTEGER PRIMARY KEY, owner_id TEXT NOT NULL,
                 name TEXT NOT NULL, hostname TEXT NOT NULL, port INTEGER NOT NULL,
                 username TEXT NOT NULL, organization TEXT, host_key_fingerprint TEXT,
                 vault_gen INTEGER NOT NULL, wrapped_data_key BLOB NOT NULL,
                 hpke_enc BLOB NOT NULL, ciphertext BLOB NOT NULL, created_at INTEGER NOT NULL);
             CREATE INDEX machines_listing ON machines
                 (owner_id, id, name, hostname, port, username, organization, host_key_fingerprint);
             INSERT INTO machines VALUES
                 (1, 'a@example.com', 'web', 'example.com', 22, 'root', NULL, NULL, 1,
                  x'00', x'00', x'00', 0);",
        )
        .unwrap();
        drop(old);
        let store = SqliteStore::open(dir.path()).unwrap();
        let machine = store
            .get_machine("a@example.com", 1)
            .await
            .unwrap()
            .unwrap();
        assert!(!machine.persistent_shell);
        let listed = store.list_summaries("a@example.com").await.unwrap();
        assert!(!listed[0].persistent_shell);
        assert!(listed[0].recording && !listed[0].record_input);
        drop(store);
        // Opening again finds the column and leaves it alone.
        SqliteStore::open(dir.path()).unwrap();
    }

    /// The listing must be answered from the covering index alone: if a column is added to
    /// the summary but not to the index, SQLite silently goes back to reading every row.
    #[test]
    fn listing_reads_only_the_covering_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let conn = store.readers[0].lock().unwrap();
        let mut statement = conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN SELECT {SUMMARY_COLUMNS} FROM machines \
                 WHERE owner_id = ?1 ORDER BY id"
            ))
            .unwrap();
        let plan: Vec<String> = statement
            .query_map(params!["alice@example.com"], |row| row.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            plan,
            ["SEARCH machines USING COVERING INDEX machines_listing (owner_id=?)"]
        );
    }
}
