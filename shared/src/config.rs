//! Configuration from the environment (DESIGN.md section 5), read once at start.
//!
//! Cloud backends are chosen by configuration: `DYNAMODB_TABLE` + `KMS_KEY_ID` select DynamoDB
//! and KMS; both unset select the embedded store and the local key file under `DATA_DIR`.
//! Setting only one of the pair is refused, because DynamoDB with a key file on a Lambda's
//! ephemeral disk would lose every secret. Errors name the variable, in one line.

use std::path::PathBuf;

use secrecy::SecretString;

#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

#[derive(Clone, Debug)]
pub enum Backend {
    Embedded { data_dir: PathBuf },
    Aws { table: String, kms_key_id: String },
}

pub struct Config {
    pub port: u16,
    pub jwt_secret: Option<SecretString>,
    pub jwks_url: Option<String>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub data_dir: PathBuf,
    pub backend: Backend,
    pub max_machines_per_user: usize,
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
        let jwks_url = var("JWKS_URL");
        if jwt_secret.is_none() && jwks_url.is_none() && matches!(backend, Backend::Aws { .. }) {
            return Err(ConfigError(
                "JWT_SECRET or JWKS_URL must be set when using DynamoDB/KMS".to_owned(),
            ));
        }
        if let Some(url) = &jwks_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConfigError(format!(
                    "JWKS_URL={url} must be an http(s) URL"
                )));
            }
        }
        let port = parse_var("PORT", 8080u16)?;
        let max_machines_per_user = parse_var("MAX_MACHINES_PER_USER", 500usize)?;
        if max_machines_per_user == 0 {
            return Err(ConfigError(
                "MAX_MACHINES_PER_USER must be at least 1".to_owned(),
            ));
        }
        Ok(Self {
            port,
            jwt_secret,
            jwks_url,
            jwt_issuer: var("JWT_ISSUER"),
            jwt_audience: var("JWT_AUDIENCE"),
            data_dir,
            backend,
            max_machines_per_user,
        })
    }
}
