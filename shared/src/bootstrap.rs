//! Wiring: turn a [`Config`] into the shared services both entry points use. One function, so
//! api-fn, the relay and the tests cannot wire backends differently.
//!
//! Nothing here makes a network call: SDK clients connect lazily and the JWKS is fetched on the
//! first token, which keeps a Lambda cold start to process start-up plus reading the
//! environment.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

use crate::auth::{Authenticator, JwksCache};
use crate::config::{Backend, Config, ConfigError};
use crate::keys::{KeyProvider, KmsKeys, LocalKeyFile};
use crate::ratelimit::{AttemptLimiter, InProcessLimiter};
use crate::ratelimit_dynamodb::DynamoLimiter;
use crate::service::Machines;
use crate::store::{DynamoStore, EmbeddedStore, Store};

/// Services shared by every request.
#[derive(Clone)]
pub struct Services {
    pub machines: Arc<Machines>,
    pub authenticator: Arc<Authenticator>,
}

/// Wire everything, counting master-password failures where every instance sees them: in the
/// DynamoDB table with the AWS backend (many Lambda instances), in-process when embedded.
pub async fn build(config: &Config) -> Result<Services, ConfigError> {
    build_inner(config, None).await
}

/// Wire everything with a caller-chosen failure limiter (the relay counts in Redis).
pub async fn build_with_limiter(
    config: &Config,
    limiter: Arc<dyn AttemptLimiter>,
) -> Result<Services, ConfigError> {
    build_inner(config, Some(limiter)).await
}

async fn build_inner(
    config: &Config,
    limiter: Option<Arc<dyn AttemptLimiter>>,
) -> Result<Services, ConfigError> {
    let (store, keys, default_limiter): (
        Arc<dyn Store>,
        Arc<dyn KeyProvider>,
        Arc<dyn AttemptLimiter>,
    ) = match &config.backend {
        Backend::Embedded { data_dir } => {
            let dir = data_dir.clone();
            let (store, keys) = tokio::task::spawn_blocking(move || {
                let store = EmbeddedStore::open(&dir)
                    .map_err(|e| ConfigError(format!("DATA_DIR={}: {e}", dir.display())))?;
                let keys = LocalKeyFile::open_or_create(&dir)
                    .map_err(|e| ConfigError(format!("DATA_DIR={}: {e}", dir.display())))?;
                Ok::<_, ConfigError>((store, keys))
            })
            .await
            .map_err(|e| ConfigError(e.to_string()))??;
            (
                Arc::new(store),
                Arc::new(keys),
                Arc::new(InProcessLimiter::default()),
            )
        }
        Backend::Aws { table, kms_key_id } => {
            let sdk = crate::aws::load_sdk_config().await;
            (
                Arc::new(DynamoStore::new(&sdk, table.clone())),
                Arc::new(KmsKeys::new(&sdk, kms_key_id.clone())),
                Arc::new(DynamoLimiter::new(&sdk, table.clone())),
            )
        }
    };
    let limiter = limiter.unwrap_or(default_limiter);
    let hmac_secret = match (&config.jwt_secret, &config.jwks_url, &config.backend) {
        (Some(secret), _, _) => Some(SecretString::from(secret.expose_secret().to_owned())),
        (None, None, Backend::Embedded { data_dir }) => Some(local_jwt_secret(data_dir)?),
        (None, _, _) => None,
    };
    let jwks = config
        .jwks_url
        .clone()
        .map(JwksCache::new)
        .transpose()
        .map_err(|e| ConfigError(format!("JWKS_URL: {e}")))?;
    let authenticator = Authenticator::new(
        hmac_secret.as_ref().map(|s| s.expose_secret().as_bytes()),
        jwks,
        config.jwt_issuer.clone(),
        config.jwt_audience.clone(),
    );
    tracing::info!(
        store = %store.describe(),
        keys = %keys.describe(),
        jwt = if config.jwks_url.is_some() { "JWKS" } else if config.jwt_secret.is_some() { "JWT_SECRET" } else { "local secret file" },
        "backends selected"
    );
    let machines = Machines::new(store, keys, limiter, config.max_machines_per_user);
    Ok(Services {
        machines: Arc::new(machines),
        authenticator: Arc::new(authenticator),
    })
}

/// The embedded default's HS256 secret: `DATA_DIR/jwt.secret` (0600), created on first start,
/// so a newcomer needs no configuration and `api-fn token` can mint tokens for the same server.
pub fn local_jwt_secret(data_dir: &Path) -> Result<SecretString, ConfigError> {
    let path = data_dir.join("jwt.secret");
    let err = |e: std::io::Error| ConfigError(format!("{}: {e}", path.display()));
    std::fs::create_dir_all(data_dir).map_err(err)?;
    let mut fresh = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut fresh);
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(fresh);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => {
            file.write_all(encoded.as_bytes()).map_err(err)?;
            Ok(SecretString::from(encoded))
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let mut text = String::new();
            std::fs::File::open(&path)
                .and_then(|mut f| f.read_to_string(&mut text))
                .map_err(err)?;
            Ok(SecretString::from(text.trim().to_owned()))
        }
        Err(e) => Err(err(e)),
    }
}
