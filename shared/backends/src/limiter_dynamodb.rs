//! The master-password guess budget kept in the DynamoDB table, next to the vaults it protects:
//! the API's Lambda instances and every relay draw on one budget per user.
//!
//! One item per user (`PK=ATTEMPTS#<owner>`, `SK=PASSWORD`) holds a fixed window's start and the
//! attempts taken in it, with a `ttl` so DynamoDB's sweeper deletes stale windows. The windows
//! have partitions of their own so that the relay's IAM policy can let it write them (a
//! condition on `dynamodb:LeadingKeys`) without letting it write any machine or vault item. A
//! reservation is a conditional write, so concurrent reservations from any number of
//! instances cannot both take the last attempt or overwrite each other's counts:
//! 1. add one to a live window that has attempts left (`attempts < max`), else
//! 2. start a new window where there is none or it expired, else
//! 3. read the window: spent means refused; otherwise another instance just started one, so
//!    try again (a few times, then refuse briefly).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::aws::{AwsFailure, classify};
use domain::limiter::{AttemptLimiter, Decision, MAX_ATTEMPTS, Reservation, WINDOW, Window};
use domain::store::StoreError;

const SORT_KEY: &str = "PASSWORD";
const CONDITION_FAILED: &str = "ConditionalCheckFailedException";
/// Rounds of the three steps before giving up on a heavily contended window.
const ROUNDS: usize = 4;

pub struct DynamoLimiter {
    client: Client,
    table: String,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

fn partition(owner: &str) -> AttributeValue {
    AttributeValue::S(format!("ATTEMPTS#{owner}"))
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// `Ok(false)` for a failed condition, the store error for anything else.
fn condition_held<T, E, R>(
    result: Result<T, aws_sdk_dynamodb::error::SdkError<E, R>>,
) -> Result<bool, StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(err) => match classify(&err) {
            AwsFailure::Service { code, .. } if code == CONDITION_FAILED => Ok(false),
            AwsFailure::Service { code, message } => {
                Err(StoreError::Unavailable(format!("{code}: {message}")))
            }
            AwsFailure::Unavailable(detail) => Err(StoreError::Unavailable(detail)),
        },
    }
}

impl DynamoLimiter {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        Self {
            client: Client::new(config),
            table,
        }
    }

    fn window_secs() -> i64 {
        i64::try_from(WINDOW.as_secs()).unwrap_or(i64::MAX)
    }

    /// Step 1: one more attempt in a live window with attempts left.
    async fn take_from_live_window(&self, owner: &str, now: i64) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("PK", partition(owner))
            .key("SK", AttributeValue::S(SORT_KEY.to_owned()))
            .update_expression("SET attempts = attempts + :one")
            .condition_expression("window_start > :cutoff AND attempts < :max")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":cutoff", n(now - Self::window_secs()))
            .expression_attribute_values(":max", n(MAX_ATTEMPTS))
            .send()
            .await;
        condition_held(result)
    }

    /// Step 2: a new window with one attempt, where there is none or it expired.
    async fn start_window(&self, owner: &str, now: i64) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("PK", partition(owner))
            .item("SK", AttributeValue::S(SORT_KEY.to_owned()))
            .item("window_start", n(now))
            .item("attempts", n(1))
            .item("ttl", n(now + 2 * Self::window_secs()))
            .condition_expression("attribute_not_exists(PK) OR window_start <= :cutoff")
            .expression_attribute_values(":cutoff", n(now - Self::window_secs()))
            .send()
            .await;
        condition_held(result)
    }

    /// Step 3: the stored window, read consistently.
    async fn read_window(&self, owner: &str) -> Result<Option<Window>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", partition(owner))
            .key("SK", AttributeValue::S(SORT_KEY.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| match classify(&err) {
                AwsFailure::Unavailable(detail) => StoreError::Unavailable(detail),
                AwsFailure::Service { code, message } => {
                    StoreError::Unavailable(format!("{code}: {message}"))
                }
            })?;
        let number = |name: &str| {
            output
                .item
                .as_ref()
                .and_then(|item| item.get(name))
                .and_then(|value| value.as_n().ok())
                .and_then(|text| text.parse::<i64>().ok())
        };
        Ok(match (number("window_start"), number("attempts")) {
            (Some(started), Some(attempts)) => Some(Window {
                started,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            }),
            _ => None,
        })
    }
}

#[async_trait]
impl AttemptLimiter for DynamoLimiter {
    async fn reserve(&self, key: &str) -> Result<Reservation, StoreError> {
        for _ in 0..ROUNDS {
            let now = now_secs();
            if self.take_from_live_window(key, now).await? || self.start_window(key, now).await? {
                return Ok(Reservation::Granted);
            }
            if let Decision::Refuse(retry_after) = Window::decide(self.read_window(key).await?, now)
            {
                return Ok(Reservation::Refused { retry_after });
            }
        }
        tracing::warn!("master-password attempt window kept changing; refusing this attempt");
        Ok(Reservation::Refused {
            retry_after: Duration::from_secs(1),
        })
    }

    async fn clear(&self, key: &str) {
        if let Err(err) = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("PK", partition(key))
            .key("SK", AttributeValue::S(SORT_KEY.to_owned()))
            .send()
            .await
        {
            tracing::warn!(error = %aws_sdk_dynamodb::error::DisplayErrorContext(&err), "could not clear the master-password attempt window");
        }
    }
}
