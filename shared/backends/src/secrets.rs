//! Secrets read at start from AWS Secrets Manager (`secrets` feature).
//!
//! A deployment names its secrets by ARN (`JWT_SECRET_ARN`, `OIDC_CLIENT_SECRET_ARN`) instead
//! of resolving them into the Lambda's or task's environment, where anyone allowed to read the
//! function configuration (`lambda:GetFunctionConfiguration`, the console) reads them too. Each
//! is fetched once, at start, under a deadline: a process that cannot read its signing secret
//! must refuse to start within seconds, not hang a cold start or serve with no secret. The values
//! go straight into secrecy types and are never logged; errors name the variable and the SDK's
//! reason, never a value. The domain's configuration only carries the ARNs, so it stays free
//! of any SDK.

use std::time::Duration;

use domain::config::{Config, ConfigError};

/// Whole-start deadline for reading every named secret (the SDK's own per-call timeouts are
/// shorter; this bounds retries and credential discovery too).
pub const READ_DEADLINE: Duration = Duration::from_secs(10);

/// Fill `config`'s secrets from the ARNs it names; a configuration without ARNs is returned
/// unchanged and makes no call.
pub async fn resolve(mut config: Config) -> Result<Config, ConfigError> {
    if config.secret_arns.is_empty() {
        return Ok(config);
    }
    let deadline = tokio::time::timeout(READ_DEADLINE, read_all(&mut config)).await;
    deadline.map_err(|_| {
        ConfigError(format!(
            "reading secrets from Secrets Manager took more than {} s",
            READ_DEADLINE.as_secs()
        ))
    })??;
    Ok(config)
}

#[cfg(feature = "secrets")]
async fn read_all(config: &mut Config) -> Result<(), ConfigError> {
    let sdk = crate::aws::load_sdk_config().await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let arns = config.secret_arns.clone();
    if let Some(arn) = &arns.jwt_secret {
        let secret = read(&client, "JWT_SECRET_ARN", arn).await?;
        domain::config::check_secret_length(&secret)
            .map_err(|err| ConfigError(format!("JWT_SECRET_ARN: {}", err.0)))?;
        config.jwt_secret = Some(secret);
    }
    if let Some(arn) = &arns.oidc_client_secret {
        config.oidc_client_secret = Some(read(&client, "OIDC_CLIENT_SECRET_ARN", arn).await?);
    }
    tracing::info!(
        jwt_secret = arns.jwt_secret.is_some(),
        oidc_client_secret = arns.oidc_client_secret.is_some(),
        "secrets read from Secrets Manager"
    );
    Ok(())
}

#[cfg(not(feature = "secrets"))]
async fn read_all(_config: &mut Config) -> Result<(), ConfigError> {
    Err(ConfigError(
        "this build cannot read Secrets Manager; unset the *_SECRET_ARN variables".to_owned(),
    ))
}

/// One plain-string secret (`SecretString`), trimmed; empty or binary secrets are refused.
#[cfg(feature = "secrets")]
async fn read(
    client: &aws_sdk_secretsmanager::Client,
    variable: &str,
    arn: &str,
) -> Result<secrecy::SecretString, ConfigError> {
    let answer = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|err| {
            ConfigError(format!(
                "{variable}={arn}: {}",
                aws_smithy_types::error::display::DisplayErrorContext(&err)
            ))
        })?;
    let value = answer
        .secret_string()
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| ConfigError(format!("{variable}={arn}: the secret has no string value")))?;
    Ok(secrecy::SecretString::from(value.to_owned()))
}
