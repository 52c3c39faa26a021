//! The audit log in its own DynamoDB table (`AUDIT_TABLE`): partition key `PK` = the owner,
//! sort key `SK` = the sequence number (a number, so a `Query` runs in chain order).
//!
//! A table of its own so that the services' IAM policy on it can be `PutItem`, `Query` and
//! `GetItem` only: nothing that runs the product can update or delete an entry, and the table
//! keeps point-in-time recovery on its own schedule. An append is a `PutItem` conditional on
//! `attribute_not_exists(PK)`: two writers racing for the same sequence number cannot both
//! succeed, and the loser (`Conflict`) reads the new tail and retries (`domain::audit`).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::aws::{AwsFailure, classify};
use domain::audit::{AuditEntry, AuditKind, AuditLog};
use domain::store::StoreError;

type Item = HashMap<String, AttributeValue>;

const CONDITION_FAILED: &str = "ConditionalCheckFailedException";

pub struct DynamoAuditLog {
    client: Client,
    table: String,
}

impl DynamoAuditLog {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        Self {
            client: Client::new(config),
            table,
        }
    }

    /// One page of the owner's partition from `bound` (exclusive) in the given direction.
    async fn query(
        &self,
        owner_id: &str,
        bound: u64,
        forward: bool,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let condition = if forward {
            "PK = :pk AND SK > :bound"
        } else {
            "PK = :pk AND SK < :bound"
        };
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(condition)
            .expression_attribute_values(":pk", s(owner_id))
            .expression_attribute_values(":bound", n(bound))
            .scan_index_forward(forward)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        output.items().iter().map(entry_from_item).collect()
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn store_error<E, R>(err: aws_sdk_dynamodb::error::SdkError<E, R>) -> StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match classify(&err) {
        AwsFailure::Unavailable(detail) => StoreError::Unavailable(detail),
        AwsFailure::Service { code, .. } if code == CONDITION_FAILED => StoreError::Conflict,
        AwsFailure::Service { code, message } => {
            StoreError::Unavailable(format!("{code}: {message}"))
        }
    }
}

fn entry_to_item(entry: &AuditEntry) -> Item {
    let mut item = Item::from([
        ("PK".to_owned(), s(&entry.owner_id)),
        ("SK".to_owned(), n(entry.seq)),
        ("at".to_owned(), n(entry.at)),
        ("kind".to_owned(), s(entry.kind.as_str())),
        ("details".to_owned(), s(&entry.details)),
        ("prev_hash".to_owned(), s(&entry.prev_hash)),
        ("hash".to_owned(), s(&entry.hash)),
    ]);
    for (name, value) in [
        ("ip", &entry.ip),
        ("user_agent", &entry.user_agent),
        ("request_id", &entry.request_id),
        ("actor", &entry.actor),
    ] {
        if let Some(value) = value {
            item.insert(name.to_owned(), s(value));
        }
    }
    item
}

fn entry_from_item(item: &Item) -> Result<AuditEntry, StoreError> {
    let missing = |name: &str| StoreError::Corrupt(format!("audit attribute {name} missing"));
    let text = |name: &str| -> Result<String, StoreError> {
        match item.get(name) {
            Some(AttributeValue::S(value)) => Ok(value.clone()),
            _ => Err(missing(name)),
        }
    };
    let optional = |name: &str| match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value.clone()),
        _ => None,
    };
    let number = |name: &str| -> Result<i64, StoreError> {
        match item.get(name) {
            Some(AttributeValue::N(value)) => value.parse().map_err(|_| missing(name)),
            _ => Err(missing(name)),
        }
    };
    let kind = text("kind")?;
    Ok(AuditEntry {
        owner_id: text("PK")?,
        seq: u64::try_from(number("SK")?).map_err(|_| missing("SK"))?,
        at: number("at")?,
        kind: AuditKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("audit kind {kind:?}")))?,
        actor: optional("actor"),
        details: text("details")?,
        ip: optional("ip"),
        user_agent: optional("user_agent"),
        request_id: optional("request_id"),
        prev_hash: text("prev_hash")?,
        hash: text("hash")?,
    })
}

#[async_trait]
impl AuditLog for DynamoAuditLog {
    async fn append(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(entry_to_item(entry)))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn last(&self, owner_id: &str) -> Result<Option<AuditEntry>, StoreError> {
        Ok(self
            .query(owner_id, u64::MAX, false, 1)
            .await?
            .into_iter()
            .next())
    }

    async fn page(
        &self,
        owner_id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.query(owner_id, before.unwrap_or(u64::MAX), false, limit)
            .await
    }

    async fn after(
        &self,
        owner_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.query(owner_id, after, true, limit).await
    }

    fn describe(&self) -> String {
        format!("DynamoDB table {}", self.table)
    }
}
