//! The master-password guess budget kept in the DynamoDB table, next to the vaults it protects:
//! the API's Lambda instances and every relay draw on one budget per user.
//!
//! One item per user (`PK=ATTEMPTS#<owner>`, `SK=PASSWORD`) holds a fixed window's start and the
//! attempts taken in it, with a `ttl` so DynamoDB's sweeper deletes stale windows. The windows
//! have partitions of their own so that the relay's IAM policy can let it write them (a
//! condition on `dynamodb:LeadingKeys`) without letting it write any machine or vault item. A
//! reservation is a conditional write, so concurrent reservations from any number of
//! instances cannot both take the last slot or overwrite each other's counts:
//! 1. add one to `taken` in a live window that has a slot left (`taken < max`), else
//! 2. start a new window where there is none or it expired, else
//! 3. read the window and let the shared rule decide: failures spent means refused, slots held
//!    in flight means saturated, anything else means another instance just changed it, so try
//!    again (a few times, then report saturated).
//!
//! Resolving an attempt is one conditional update (a failure, a released slot) or a delete (a
//! correct password).

use std::time::{SystemTime, UNIX_EPOCH};

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

    /// Step 1: one more attempt taken in a live window with a slot left.
    async fn take_from_live_window(&self, owner: &str, now: i64) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("PK", partition(owner))
            .key("SK", AttributeValue::S(SORT_KEY.to_owned()))
            .update_expression("SET taken = taken + :one")
            .condition_expression("window_start > :cutoff AND taken < :max")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":cutoff", n(now - Self::window_secs()))
            .expression_attribute_values(":max", n(MAX_ATTEMPTS))
            .send()
            .await;
        condition_held(result)
    }

    /// Step 2: a new window with one attempt taken, where there is none or it expired.
    async fn start_window(&self, owner: &str, now: i64) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("PK", partition(owner))
            .item("SK", AttributeValue::S(SORT_KEY.to_owned()))
            .item("window_start", n(now))
            .item("taken", n(1))
            .item("failures", n(0))
            .item("ttl", n(now + 2 * Self::window_secs()))
            .condition_expression("attribute_not_exists(PK) OR window_start <= :cutoff")
            .expression_attribute_values(":cutoff", n(now - Self::window_secs()))
            .send()
            .await;
        condition_held(result)
    }

    /// Resolve an attempt with one conditional update; a failure is logged (the window's TTL
    /// and its expiry bound any drift).
    async fn resolve(&self, owner: &str, update: &str, condition: &str, what: &'static str) {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("PK", partition(owner))
            .key("SK", AttributeValue::S(SORT_KEY.to_owned()))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        if let Err(err) = condition_held(result) {
            tracing::warn!(error = %err, what, "could not update the master-password guess window");
        }
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
        let count = |name: &str| number(name).map(|v| u32::try_from(v).unwrap_or(u32::MAX));
        Ok(
            match (number("window_start"), count("taken"), count("failures")) {
                (Some(started), Some(taken), Some(failures)) => Some(Window {
                    started,
                    taken,
                    failures,
                }),
                _ => None,
            },
        )
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
            match Window::decide(self.read_window(key).await?, now) {
                Decision::Refuse(retry_after) => return Ok(Reservation::Refused { retry_after }),
                Decision::Wait => return Ok(Reservation::Saturated),
                Decision::Take(_) => {}
            }
        }
        tracing::warn!("master-password guess window kept changing; asking to wait");
        Ok(Reservation::Saturated)
    }

    async fn record_failure(&self, key: &str) {
        self.resolve(
            key,
            "SET failures = failures + :one",
            "attribute_exists(PK) AND failures < taken",
            "record a failure",
        )
        .await;
    }

    async fn release(&self, key: &str) {
        self.resolve(
            key,
            "SET taken = taken - :one",
            "attribute_exists(PK) AND taken > failures",
            "release an attempt",
        )
        .await;
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
            tracing::warn!(error = %aws_sdk_dynamodb::error::DisplayErrorContext(&err), "could not clear the master-password guess window");
        }
    }
}
