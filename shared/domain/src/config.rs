//! The deployment's configuration from the environment, read once at start: which backends,
//! which identity source, the create quota. Every binary reads this the same way; each adds
//! its own settings on top (the relay's are in `relay::config`).
//!
//! Cloud backends are chosen by configuration: `DYNAMODB_TABLE` + `KMS_KEY_ID` select DynamoDB
//! and KMS; both unset select the embedded store and the local key file under `DATA_DIR`.
//! Setting only one of the pair is refused, because DynamoDB with a key file on a Lambda's
//! ephemeral disk would lose every secret. Errors name the variable, in one line.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

#[derive(Clone, Debug)]
pub enum Backend {
    Embedded { data_dir: PathBuf },
    Aws { table: String, kms_key_id: String },
}

/// Secrets named by ARN (`JWT_SECRET_ARN`, `OIDC_CLIENT_SECRET_ARN`): read once at start from
/// AWS Secrets Manager by `backends::secrets::resolve`, which fills [`Config::jwt_secret`] and
/// [`Config::oidc_client_secret`]. A deployment passes the ARN, never the value, so the secret
/// is not in the function's or task's configuration for anyone who can read that.
#[derive(Clone, Debug, Default)]
pub struct SecretArns {
    pub jwt_secret: Option<String>,
    pub oidc_client_secret: Option<String>,
}

impl SecretArns {
    pub fn is_empty(&self) -> bool {
        self.jwt_secret.is_none() && self.oidc_client_secret.is_none()
    }
}

pub struct Config {
    pub port: u16,
    pub jwt_secret: Option<SecretString>,
    /// `OIDC_CLIENT_SECRET` read from Secrets Manager; sign-in prefers it to the variable.
    pub oidc_client_secret: Option<SecretString>,
    pub secret_arns: SecretArns,
    pub jwks_url: Option<String>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub data_dir: PathBuf,
    pub backend: Backend,
    /// `AUDIT_TABLE`: the DynamoDB table of the audit log, with the cloud backends (a table of
    /// its own, see `docs/audit.md`). Unset there, nothing is recorded (a warning at start);
    /// the embedded backend always keeps its audit log in the SQLite file.
    pub audit_table: Option<String>,
    pub max_machines_per_user: usize,
    /// `KDF_MEMORY_MIB` (256): the memory all concurrent key derivations of this process may
    /// use together (Argon2id takes 19 MiB each); see `kdf::KdfGate`.
    pub kdf_memory_mib: u32,
    /// `KDF_WAIT_MS` (10000): how long a request waits for room in that budget before it is
    /// refused as busy (503, `Retry-After`).
    pub kdf_wait: std::time::Duration,
    /// `RECORDING` (`on`): off, on (machines choose) or required (see `recording::Policy`).
    pub recording: crate::recording::Policy,
    /// `RECORDINGS_BUCKET`: an S3 bucket for session recordings; unset, they are files under
    /// `DATA_DIR/recordings`.
    pub recordings_bucket: Option<String>,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn parse_var<T: std::str::FromStr>(name: &str, default: T) -> Result<T, ConfigError> {
    match var(name) {
        None => Ok(default),
        Some(raw) => raw
            .parse()
            .map_err(|_| ConfigError(format!("{name}={raw} is not a valid value"))),
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let data_dir = PathBuf::from(var("DATA_DIR").unwrap_or_else(|| "./data".to_owned()));
        let backend = match (var("DYNAMODB_TABLE"), var("KMS_KEY_ID")) {
            (None, None) => Backend::Embedded {
                data_dir: data_dir.clone(),
            },
            (Some(table), Some(kms_key_id)) => Backend::Aws { table, kms_key_id },
            (Some(_), None) => {
                return Err(ConfigError(
                    "KMS_KEY_ID must be set when DYNAMODB_TABLE is set".to_owned(),
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError(
                    "DYNAMODB_TABLE must be set when KMS_KEY_ID is set".to_owned(),
                ));
            }
        };
        let jwt_secret = var("JWT_SECRET").map(SecretString::from);
        let secret_arns = secret_arns()?;
        let jwks_url = var("JWKS_URL");
        if jwt_secret.is_none()
            && secret_arns.jwt_secret.is_none()
            && jwks_url.is_none()
            && matches!(backend, Backend::Aws { .. })
        {
            return Err(ConfigError(
                "JWT_SECRET_ARN, JWT_SECRET or JWKS_URL must be set when using DynamoDB/KMS"
                    .to_owned(),
            ));
        }
        if let Some(url) = &jwks_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConfigError(format!(
                    "JWKS_URL={url} must be an http(s) URL"
                )));
            }
        }
        let jwt_issuer = var("JWT_ISSUER");
        let jwt_audience = var("JWT_AUDIENCE");
        check_jwt_settings(
            jwt_secret.as_ref(),
            jwks_url.as_deref(),
            jwt_issuer.as_deref(),
            jwt_audience.as_deref(),
        )?;
        let port = parse_var("PORT", 8080u16)?;
        let max_machines_per_user = parse_var("MAX_MACHINES_PER_USER", 500usize)?;
        if max_machines_per_user == 0 {
            return Err(ConfigError(
                "MAX_MACHINES_PER_USER must be at least 1".to_owned(),
            ));
        }
        let kdf_memory_mib = parse_var("KDF_MEMORY_MIB", crate::kdf::DEFAULT_MEMORY_MIB)?;
        if kdf_memory_mib < crate::vault::FRESH_MEMORY_MIB {
            return Err(ConfigError(format!(
                "KDF_MEMORY_MIB must be at least {} (one Argon2id evaluation)",
                crate::vault::FRESH_MEMORY_MIB
            )));
        }
        let kdf_wait = std::time::Duration::from_millis(parse_var(
            "KDF_WAIT_MS",
            u64::try_from(crate::kdf::DEFAULT_WAIT.as_millis()).unwrap_or(u64::MAX),
        )?);
        let recording = match var("RECORDING") {
            None => crate::recording::Policy::default(),
            Some(raw) => crate::recording::Policy::parse(&raw).ok_or_else(|| {
                ConfigError(format!("RECORDING={raw} must be off, on or required"))
            })?,
        };
        Ok(Self {
            recording,
            recordings_bucket: var("RECORDINGS_BUCKET"),
            port,
            jwt_secret,
            oidc_client_secret: None,
            secret_arns,
            jwks_url,
            jwt_issuer,
            jwt_audience,
            data_dir,
            backend,
            audit_table: var("AUDIT_TABLE"),
            max_machines_per_user,
            kdf_memory_mib,
            kdf_wait,
        })
    }
}

/// The `*_SECRET_ARN` variables; each excludes its plain-value twin, so a deployment cannot
/// silently use the one it meant to retire.
fn secret_arns() -> Result<SecretArns, ConfigError> {
    let arn = |name: &str, plain: &str| match (var(name), var(plain)) {
        (Some(_), Some(_)) => Err(ConfigError(format!("set {name} or {plain}, not both"))),
        (Some(arn), None) if !arn.starts_with("arn:") => {
            Err(ConfigError(format!("{name}={arn} is not an ARN")))
        }
        (arn, _) => Ok(arn),
    };
    Ok(SecretArns {
        jwt_secret: arn("JWT_SECRET_ARN", "JWT_SECRET")?,
        oidc_client_secret: arn("OIDC_CLIENT_SECRET_ARN", "OIDC_CLIENT_SECRET")?,
    })
}

/// Shortest accepted `JWT_SECRET`: HS256 is only as strong as its key, and a short one can
/// be guessed offline from any token.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// Refuse identity settings that would let tokens through that should not be: a short HMAC
/// secret, or a JWKS without the issuer and audience (any token the issuer ever minted for
/// any site would do).
fn check_jwt_settings(
    secret: Option<&SecretString>,
    jwks_url: Option<&str>,
    issuer: Option<&str>,
    audience: Option<&str>,
) -> Result<(), ConfigError> {
    if let Some(secret) = secret {
        check_secret_length(secret)?;
    }
    if jwks_url.is_some() && (issuer.is_none() || audience.is_none()) {
        return Err(ConfigError(
            "JWKS_URL needs JWT_ISSUER and JWT_AUDIENCE (the issuer's iss and this \
             deployment's aud)"
                .to_owned(),
        ));
    }
    if jwks_url.is_none() && (issuer.is_some() || audience.is_some()) {
        tracing::warn!(
            "JWT_ISSUER/JWT_AUDIENCE apply to JWKS tokens only; without JWKS_URL they are unused"
        );
    }
    Ok(())
}

/// Also applied to a secret read by ARN, once it has been read.
pub fn check_secret_length(secret: &SecretString) -> Result<(), ConfigError> {
    let len = secret.expose_secret().len();
    if len < MIN_JWT_SECRET_BYTES {
        return Err(ConfigError(format!(
            "JWT_SECRET is {len} bytes; it must be at least {MIN_JWT_SECRET_BYTES} \
             (e.g. openssl rand -hex 32)"
        )));
    }
    Ok(())
}

impl Config {
    /// The HS256 secret tokens are verified (and sign-in sessions signed) with: `JWT_SECRET`;
    /// else, on the embedded default without `JWKS_URL`, the generated `DATA_DIR/jwt.secret`;
    /// else none (JWKS only). One function, so the API, the relay, sign-in and the `token`
    /// command cannot disagree about it.
    pub fn hmac_secret(&self) -> Result<Option<SecretString>, ConfigError> {
        match (&self.jwt_secret, &self.jwks_url, &self.backend) {
            (Some(secret), _, _) => {
                check_secret_length(secret)?;
                Ok(Some(SecretString::from(secret.expose_secret().to_owned())))
            }
            (None, None, Backend::Embedded { data_dir }) => local_jwt_secret(data_dir).map(Some),
            (None, _, _) => Ok(None),
        }
    }
}

/// The embedded default's HS256 secret: `DATA_DIR/jwt.secret` (0600), created on first start,
/// so a newcomer needs no configuration and `api-fn token` can mint tokens for the same server.
pub fn local_jwt_secret(data_dir: &Path) -> Result<SecretString, ConfigError> {
    let path = data_dir.join("jwt.secret");
    let err = |e: std::io::Error| ConfigError(format!("{}: {e}", path.display()));
    crate::data_dir::create_private_dir(data_dir).map_err(err)?;
    crate::data_dir::tighten_if_exists(&path).map_err(err)?;
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
