//! One place that builds the AWS SDK configuration and classifies SDK failures.
//!
//! Every SDK call gets bounded time (connect, per attempt, whole operation) and the standard
//! retry policy, so a dead endpoint turns into a 503 in seconds instead of a hung Lambda.
//! `AWS_ENDPOINT_URL` (the SDK's own override) points both clients at LocalStack or moto.

use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
#[cfg(any(feature = "dynamodb", feature = "kms"))]
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

pub async fn load_sdk_config() -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(8))
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .region(RegionProviderChain::default_provider().or_else("us-east-1"))
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .load()
        .await
}

/// What a failed SDK call means for us.
#[cfg(any(feature = "dynamodb", feature = "kms"))]
pub enum AwsFailure {
    /// Network, timeout, throttling or a 5xx: the backend is (temporarily) unavailable.
    Unavailable(String),
    /// The service answered with a definite error code (condition failed, access denied, ...).
    Service { code: String, message: String },
}

#[cfg(any(feature = "dynamodb", feature = "kms"))]
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "KMSInternalException",
    "DependencyTimeoutException",
    "KeyUnavailableException",
];

#[cfg(any(feature = "dynamodb", feature = "kms"))]
pub fn classify<E, R>(err: &SdkError<E, R>) -> AwsFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(service) => {
            let inner = service.err();
            let code = inner.code().unwrap_or("Unknown").to_owned();
            let message = inner.message().unwrap_or_default().to_owned();
            if TRANSIENT_CODES.contains(&code.as_str()) {
                AwsFailure::Unavailable(format!("{code}: {message}"))
            } else {
                AwsFailure::Service { code, message }
            }
        }
        other => AwsFailure::Unavailable(format!(
            "{}",
            aws_smithy_types::error::display::DisplayErrorContext(other)
        )),
    }
}
