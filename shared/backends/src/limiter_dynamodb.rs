//! Master-password failure limits kept in the DynamoDB table, for api-fn in Lambda.
//!
//! Lambda runs many short-lived instances; an in-process counter would give an attacker five
//! guesses *per instance*. One item per user (`PK=USER#<owner>`, `SK=PASSWORD_FAILURES`) holds a
//! fixed window's start and count, updated with conditional writes so concurrent instances
//! agree, and a `ttl` attribute so DynamoDB's TTL sweeper deletes stale windows. If the table
//! cannot be read the check fails *open* (a warning is logged): the master password is still
//! protected by Argon2id, and refusing every connect during a DynamoDB blip would be worse.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::aws::{AwsFailure, classify};
use domain::limiter::AttemptLimiter;

pub struct DynamoLimiter {
    client: Client,
    table: String,
    max_failures: u32,
    window: Duration,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl DynamoLimiter {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        Self {
            client: Client::new(config),
            table,
            max_failures: 5,
            window: Duration::from_secs(300),
        }
    }

    fn key(&self, owner: &str) -> [(String, AttributeValue); 2] {
        [
            ("PK".to_owned(), AttributeValue::S(format!("USER#{owner}"))),
            (
                "SK".to_owned(),
                AttributeValue::S("PASSWORD_FAILURES".to_owned()),
            ),
        ]
    }

    /// Start a new window with one failure (unconditional overwrite of an expired window).
    async fn start_window(&self, owner: &str, now: u64) {
        let [(pk, pkv), (sk, skv)] = self.key(owner);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(pk, pkv)
            .item(sk, skv)
            .item("window_start", AttributeValue::N(now.to_string()))
            .item("failures", AttributeValue::N("1".to_owned()))
            .item(
                "ttl",
                AttributeValue::N((now + self.window.as_secs() * 2).to_string()),
            )
            .send()
            .await;
        if let Err(err) = result {
            tracing::warn!(error = %aws_sdk_dynamodb::error::DisplayErrorContext(&err), "could not record a password failure");
        }
    }
}

#[async_trait]
impl AttemptLimiter for DynamoLimiter {
    async fn check(&self, key: &str) -> Result<(), Duration> {
        let [(pk, pkv), (sk, skv)] = self.key(key);
        let item = match self
            .client
            .get_item()
            .table_name(&self.table)
            .key(pk, pkv)
            .key(sk, skv)
            .consistent_read(true)
            .send()
            .await
        {
            Ok(output) => output.item,
            Err(err) => {
                tracing::warn!(error = %aws_sdk_dynamodb::error::DisplayErrorContext(&err), "failure limit unreadable; allowing");
                return Ok(());
            }
        };
        let number = |name: &str| {
            item.as_ref()
                .and_then(|i| i.get(name))
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<u64>().ok())
        };
        let (Some(start), Some(failures)) = (number("window_start"), number("failures")) else {
            return Ok(());
        };
        let elapsed = now_secs().saturating_sub(start);
        if failures >= u64::from(self.max_failures) && elapsed < self.window.as_secs() {
            return Err(Duration::from_secs(self.window.as_secs() - elapsed));
        }
        Ok(())
    }

    async fn record_failure(&self, key: &str) {
        let now = now_secs();
        let cutoff = now.saturating_sub(self.window.as_secs());
        let [(pk, pkv), (sk, skv)] = self.key(key);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(pk, pkv)
            .key(sk, skv)
            .update_expression("ADD failures :one")
            .condition_expression("window_start > :cutoff")
            .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
            .expression_attribute_values(":cutoff", AttributeValue::N(cutoff.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(err) => match classify(&err) {
                // No window yet, or it expired: start a new one.
                AwsFailure::Service { code, .. } if code == "ConditionalCheckFailedException" => {
                    self.start_window(key, now).await;
                }
                AwsFailure::Service { code, message } => {
                    tracing::warn!(%code, %message, "could not record a password failure");
                }
                AwsFailure::Unavailable(detail) => {
                    tracing::warn!(error = %detail, "could not record a password failure");
                }
            },
        }
    }

    async fn reset(&self, key: &str) {
        let [(pk, pkv), (sk, skv)] = self.key(key);
        if let Err(err) = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(pk, pkv)
            .key(sk, skv)
            .send()
            .await
        {
            tracing::warn!(error = %aws_sdk_dynamodb::error::DisplayErrorContext(&err), "could not reset password failures");
        }
    }
}
