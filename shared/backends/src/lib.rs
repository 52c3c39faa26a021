//! The domain's ports implemented, and wired from configuration in one place.
//!
//! | port | cloud | embedded default |
//! |---|---|---|
//! | `Store` | DynamoDB (`dynamodb` feature) | SQLite file under `DATA_DIR` (`sqlite`) |
//! | `KeyProvider` | AWS KMS (`kms`) | `DATA_DIR/master.key` (`keyfile`) |
//! | `AttemptLimiter` | the DynamoDB table (`dynamodb`) | the SQLite file (`sqlite`) |
//! | `AuditLog` | its own DynamoDB table, `AUDIT_TABLE` (`dynamodb`) | the SQLite file (`sqlite`) |
//! | `RecordingStore` | an S3 bucket, `RECORDINGS_BUCKET` (`s3`) | files under `DATA_DIR/recordings` |
//! | secrets named by `*_SECRET_ARN` | AWS Secrets Manager (`secrets`), read once at start | (the variables themselves) |
//!
//! The attempt limiter always lives in the store, next to the vaults: whoever shares the vaults
//! (the API and every relay) shares one guess budget per user.
//!
//! Each backend is a cargo feature so a binary links only what it can use: the Lambda build of
//! the API takes `dynamodb` + `kms` and no SQLite. A configuration that names a backend this
//! build lacks is refused at start with one line naming it.
//!
//! Nothing here makes a network call: SDK clients connect lazily, which keeps a Lambda cold
//! start to process start-up plus reading the environment.

#[cfg(feature = "dynamodb")]
pub mod audit_dynamodb;
#[cfg(feature = "sqlite")]
pub mod audit_sqlite;
#[cfg(any(
    feature = "dynamodb",
    feature = "kms",
    feature = "secrets",
    feature = "s3"
))]
pub mod aws;
pub mod keys;
#[cfg(feature = "dynamodb")]
pub mod limiter_dynamodb;
#[cfg(feature = "sqlite")]
pub mod limiter_sqlite;
#[cfg(feature = "dynamodb")]
pub mod orgs_dynamodb;
#[cfg(feature = "sqlite")]
pub mod orgs_sqlite;
pub mod recordings;
pub mod secrets;
pub mod store;

use std::sync::Arc;

use domain::Machines;
use domain::audit::{AuditLog, Auditor};
use domain::config::{Backend, Config, ConfigError};
use domain::kdf::KdfGate;
use domain::keys::KeyProvider;
use domain::limiter::AttemptLimiter;
use domain::orgs::OrgStore;
use domain::store::Store;

/// The domain service over the configured backends.
pub async fn wire(config: &Config) -> Result<Arc<Machines>, ConfigError> {
    let (store, keys, limiter, audit, orgs) = match &config.backend {
        Backend::Embedded { data_dir } => embedded(data_dir.clone()).await?,
        Backend::Aws { table, kms_key_id } => {
            cloud(table, kms_key_id, config.audit_table.as_deref()).await?
        }
    };
    let audit = match audit {
        Some(log) => Auditor::new(log),
        None => {
            tracing::warn!("AUDIT_TABLE is not set: no audit log is kept");
            Auditor::disabled()
        }
    };
    tracing::info!(
        store = %store.describe(),
        keys = %keys.describe(),
        audit = %audit.describe(),
        kdf_memory_mib = config.kdf_memory_mib,
        jwt = if config.jwks_url.is_some() { "JWKS" } else if config.jwt_secret.is_some() { "JWT_SECRET" } else { "local secret file" },
        "backends selected"
    );
    let recordings = recordings::wire(config, Arc::clone(&keys)).await?;
    Ok(Arc::new(
        Machines::new(
            store,
            keys,
            limiter,
            Arc::new(KdfGate::new(config.kdf_memory_mib, config.kdf_wait)),
            Arc::new(audit),
            config.max_machines_per_user,
        )
        .with_recordings(recordings)
        .with_orgs(orgs),
    ))
}

type Ports = (
    Arc<dyn Store>,
    Arc<dyn KeyProvider>,
    Arc<dyn AttemptLimiter>,
    Option<Arc<dyn AuditLog>>,
    Arc<dyn OrgStore>,
);

#[cfg(all(feature = "sqlite", feature = "keyfile"))]
async fn embedded(dir: std::path::PathBuf) -> Result<Ports, ConfigError> {
    // Opening runs migrations and may create the key file: blocking work, off the runtime.
    let (store, keys) = tokio::task::spawn_blocking(move || {
        let store = store::SqliteStore::open(&dir)
            .map_err(|e| ConfigError(format!("DATA_DIR={}: {e}", dir.display())))?;
        let keys = keys::LocalKeyFile::open_or_create(&dir)
            .map_err(|e| ConfigError(format!("DATA_DIR={}: {e}", dir.display())))?;
        Ok::<_, ConfigError>((store, keys))
    })
    .await
    .map_err(|e| ConfigError(e.to_string()))??;
    let store = Arc::new(store);
    Ok((
        store.clone(),
        Arc::new(keys),
        store.clone(),
        Some(store.clone()),
        store,
    ))
}

#[cfg(not(all(feature = "sqlite", feature = "keyfile")))]
async fn embedded(_dir: std::path::PathBuf) -> Result<Ports, ConfigError> {
    Err(ConfigError(
        "this build has no embedded store; set DYNAMODB_TABLE and KMS_KEY_ID".to_owned(),
    ))
}

#[cfg(all(feature = "dynamodb", feature = "kms"))]
async fn cloud(
    table: &str,
    kms_key_id: &str,
    audit_table: Option<&str>,
) -> Result<Ports, ConfigError> {
    let sdk = aws::load_sdk_config().await;
    let audit = audit_table.map(|audit_table| {
        Arc::new(audit_dynamodb::DynamoAuditLog::new(
            &sdk,
            audit_table.to_owned(),
        )) as Arc<dyn AuditLog>
    });
    Ok((
        Arc::new(store::DynamoStore::new(&sdk, table.to_owned())),
        Arc::new(keys::KmsKeys::new(&sdk, kms_key_id.to_owned())),
        Arc::new(limiter_dynamodb::DynamoLimiter::new(&sdk, table.to_owned())),
        audit,
        Arc::new(orgs_dynamodb::DynamoOrgs::new(&sdk, table.to_owned())),
    ))
}

#[cfg(not(all(feature = "dynamodb", feature = "kms")))]
async fn cloud(
    _table: &str,
    _kms_key_id: &str,
    _audit_table: Option<&str>,
) -> Result<Ports, ConfigError> {
    Err(ConfigError(
        "this build has no DynamoDB/KMS support; unset DYNAMODB_TABLE and KMS_KEY_ID".to_owned(),
    ))
}
