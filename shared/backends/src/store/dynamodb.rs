//! DynamoDB store: one table, keyed for owner-scoped access.
//!
//! | item    | PK              | SK                          |
//! |---------|-----------------|-----------------------------|
//! | vault   | `USER#<owner>`  | `VAULT`                     |
//! | machine | `USER#<owner>`  | `MACHINE#<id, 20 digits>`   |
//! | organization vault | `ORG#<slug>` | `VAULT`              |
//! | organization machine | `ORG#<slug>` | `MACHINE#<id, 20 digits>` |
//! | member's copy of the organization key | `ORG#<slug>` | `KEYCOPY#<member>` |
//! | counter | `COUNTER`       | `MACHINE_ID`                |
//! | revoked session token | `REVOKED#<jti>` | `TOKEN` (with `ttl` = the token's `exp`) |
//!
//! Get and delete are `GetItem`/`DeleteItem` on the owner's partition, list is one `Query` on it
//! (zero-padded ids make the sort key order the id order), so no request path ever `Scan`s and
//! another user's machine is simply not in the partition we read. Ids come from an atomic
//! `ADD` on the counter item. Compare-and-set writes use condition expressions. Revoked
//! session tokens carry the table's TTL attribute, so DynamoDB deletes them once the token
//! has expired anyway (TTL deletion is lazy, which only keeps a dead entry a little longer).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, ReturnValue, Select, TransactWriteItem, Update,
};

use crate::aws::{AwsFailure, classify};
use domain::machine::{FieldChange, FieldValue, Machine, MachineSummary, SealedSecrets};
use domain::store::{Store, StoreError, VaultPrecondition};
use domain::vault::{KdfParams, OrgKeyCopy, PreviousKey, VaultRecord};

pub(crate) type Item = HashMap<String, AttributeValue>;

const CONDITION_FAILED: &str = "ConditionalCheckFailedException";
/// A transaction one of whose conditions failed (DynamoDB cancels every write in it).
pub(crate) const TRANSACTION_CANCELED: &str = "TransactionCanceledException";
/// A user's machine list is bounded by the create quota; this caps pages read per list.
pub(crate) const MAX_QUERY_PAGES: usize = 50;

pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        Self {
            client: Client::new(config),
            table,
        }
    }
}

impl DynamoStore {
    /// Every machine item in the owner's partition (one `Query`, paged), mapped by `decode`;
    /// with `summary_only`, projected to [`SUMMARY_ATTRIBUTES`].
    async fn query_machines<T>(
        &self,
        owner_id: &str,
        summary_only: bool,
        decode: fn(&Item) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut decoded = Vec::new();
        let mut start_key: Option<Item> = None;
        for _ in 0..MAX_QUERY_PAGES {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk AND begins_with(SK, :prefix)")
                .expression_attribute_values(":pk", user_pk(owner_id))
                .expression_attribute_values(":prefix", s("MACHINE#"))
                .consistent_read(true)
                .set_exclusive_start_key(start_key.take());
            if summary_only {
                // Placeholders for every name: `name` is a DynamoDB reserved word.
                let mut projection = Vec::with_capacity(SUMMARY_ATTRIBUTES.len());
                for (index, attribute) in SUMMARY_ATTRIBUTES.iter().enumerate() {
                    let placeholder = format!("#a{index}");
                    query = query.expression_attribute_names(&placeholder, *attribute);
                    projection.push(placeholder);
                }
                query = query.projection_expression(projection.join(", "));
            }
            let output = query.send().await.map_err(store_error)?;
            for item in output.items() {
                decoded.push(decode(item)?);
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start_key = Some(key),
                _ => break,
            }
        }
        Ok(decoded)
    }
}

/// The partition of an owner: a user's `USER#<identity>`, an organization's (owner id
/// `org:<slug>`) the organization's own `ORG#<slug>`, beside its members and invitations.
fn user_pk(owner_id: &str) -> AttributeValue {
    match domain::vault::org_slug_of(owner_id) {
        Some(slug) => AttributeValue::S(format!("ORG#{slug}")),
        None => AttributeValue::S(format!("USER#{owner_id}")),
    }
}

fn copy_sk(member: &str) -> AttributeValue {
    AttributeValue::S(format!("KEYCOPY#{member}"))
}

fn copy_to_item(c: &OrgKeyCopy) -> Item {
    let mut item = Item::new();
    item.insert("PK".into(), user_pk(&c.org_owner));
    item.insert("SK".into(), copy_sk(&c.member));
    item.insert("org_owner".into(), s(&c.org_owner));
    item.insert("member".into(), s(&c.member));
    item.insert("org_gen".into(), n(c.org_gen));
    item.insert("member_gen".into(), n(c.member_gen));
    item.insert("hpke_enc".into(), b(&c.hpke_enc));
    item.insert("ciphertext".into(), b(&c.ciphertext));
    item
}

fn copy_from_item(item: &Item) -> Result<OrgKeyCopy, StoreError> {
    let f = Fields(item);
    Ok(OrgKeyCopy {
        org_owner: f.s("org_owner")?,
        member: f.s("member")?,
        org_gen: f.n("org_gen")?,
        member_gen: f.n("member_gen")?,
        hpke_enc: f.b("hpke_enc")?,
        ciphertext: f.b("ciphertext")?,
    })
}

fn revoked_pk(jti: &str) -> AttributeValue {
    AttributeValue::S(format!("REVOKED#{jti}"))
}

fn machine_sk(id: u64) -> AttributeValue {
    AttributeValue::S(format!("MACHINE#{id:020}"))
}

pub(crate) fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn b(value: &[u8]) -> AttributeValue {
    AttributeValue::B(Blob::new(value.to_vec()))
}

/// Maps an SDK failure; a failed condition becomes `Conflict`.
pub(crate) fn store_error<E, R>(err: aws_sdk_dynamodb::error::SdkError<E, R>) -> StoreError
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

pub(crate) struct Fields<'a>(pub(crate) &'a Item);

impl Fields<'_> {
    fn missing(name: &str) -> StoreError {
        StoreError::Corrupt(format!("attribute {name} missing or mistyped"))
    }

    pub(crate) fn s(&self, name: &str) -> Result<String, StoreError> {
        self.opt_s(name)?.ok_or_else(|| Self::missing(name))
    }

    fn opt_s(&self, name: &str) -> Result<Option<String>, StoreError> {
        match self.0.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(value)) => Ok(Some(value.clone())),
            Some(_) => Err(Self::missing(name)),
        }
    }

    pub(crate) fn n<T: std::str::FromStr>(&self, name: &str) -> Result<T, StoreError> {
        self.opt_n(name)?.ok_or_else(|| Self::missing(name))
    }

    fn opt_n<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, StoreError> {
        match self.0.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(value)) => {
                value.parse().map(Some).map_err(|_| Self::missing(name))
            }
            Some(_) => Err(Self::missing(name)),
        }
    }

    fn opt_bool(&self, name: &str) -> Result<Option<bool>, StoreError> {
        match self.0.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::Bool(value)) => Ok(Some(*value)),
            Some(_) => Err(Self::missing(name)),
        }
    }

    fn b(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        self.opt_b(name)?.ok_or_else(|| Self::missing(name))
    }

    fn opt_b(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.0.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::B(value)) => Ok(Some(value.as_ref().to_vec())),
            Some(_) => Err(Self::missing(name)),
        }
    }
}

fn machine_to_item(m: &Machine) -> Item {
    let mut item = Item::new();
    item.insert("PK".into(), user_pk(&m.owner_id));
    item.insert("SK".into(), machine_sk(m.id));
    item.insert("id".into(), n(m.id));
    item.insert("owner_id".into(), s(&m.owner_id));
    item.insert("name".into(), s(&m.name));
    item.insert("hostname".into(), s(&m.hostname));
    item.insert("port".into(), n(m.port));
    item.insert("username".into(), s(&m.username));
    if let Some(org) = &m.organization {
        item.insert("organization".into(), s(org));
    }
    if let Some(fp) = &m.host_key_fingerprint {
        item.insert("host_key_fingerprint".into(), s(fp));
    }
    // Written only when true: an absent attribute reads as false, as on items written before
    // the attribute existed.
    if m.persistent_shell {
        item.insert("persistent_shell".into(), AttributeValue::Bool(true));
    }
    // Written only when not the default, for the same reason: items from before recording
    // existed read as recorded, without input.
    if !m.recording {
        item.insert("recording".into(), AttributeValue::Bool(false));
    }
    if m.record_input {
        item.insert("record_input".into(), AttributeValue::Bool(true));
    }
    item.insert("vault_gen".into(), n(m.sealed.vault_gen));
    item.insert("wrapped_data_key".into(), b(&m.sealed.wrapped_data_key));
    item.insert("hpke_enc".into(), b(&m.sealed.hpke_enc));
    item.insert("ciphertext".into(), b(&m.sealed.ciphertext));
    item.insert("created_at".into(), n(m.created_at));
    item
}

/// The attributes a summary reads; a listing projects to these so the sealed blobs stay in
/// the table. DynamoDB still charges read capacity for whole items, but the response is about
/// half the size (the blobs travel base64-encoded) and the function parses no ciphertext it
/// would only throw away. (moto evaluates projections slowly in Python: its list figures in
/// docs/benchmarks.md got worse for it, which says nothing about DynamoDB.)
const SUMMARY_ATTRIBUTES: [&str; 11] = [
    "id",
    "owner_id",
    "name",
    "hostname",
    "port",
    "username",
    "organization",
    "host_key_fingerprint",
    "persistent_shell",
    "recording",
    "record_input",
];

fn summary_from_item(item: &Item) -> Result<MachineSummary, StoreError> {
    let f = Fields(item);
    Ok(MachineSummary {
        id: f.n("id")?,
        owner_id: f.s("owner_id")?,
        name: f.s("name")?,
        hostname: f.s("hostname")?,
        port: f.n("port")?,
        username: f.s("username")?,
        organization: f.opt_s("organization")?,
        host_key_fingerprint: f.opt_s("host_key_fingerprint")?,
        persistent_shell: f.opt_bool("persistent_shell")?.unwrap_or(false),
        recording: f.opt_bool("recording")?.unwrap_or(true),
        record_input: f.opt_bool("record_input")?.unwrap_or(false),
    })
}

fn machine_from_item(item: &Item) -> Result<Machine, StoreError> {
    let summary = summary_from_item(item)?;
    let f = Fields(item);
    Ok(Machine {
        id: summary.id,
        owner_id: summary.owner_id,
        name: summary.name,
        hostname: summary.hostname,
        port: summary.port,
        username: summary.username,
        organization: summary.organization,
        host_key_fingerprint: summary.host_key_fingerprint,
        persistent_shell: summary.persistent_shell,
        recording: summary.recording,
        record_input: summary.record_input,
        sealed: SealedSecrets {
            vault_gen: f.n("vault_gen")?,
            wrapped_data_key: f.b("wrapped_data_key")?,
            hpke_enc: f.b("hpke_enc")?,
            ciphertext: f.b("ciphertext")?,
        },
        created_at: f.n("created_at")?,
    })
}

/// A stored field's value as an attribute (`None` for an optional text that is cleared).
fn attribute(value: &FieldValue) -> Option<AttributeValue> {
    match value {
        FieldValue::Text(text) | FieldValue::OptionalText(Some(text)) => Some(s(text)),
        FieldValue::OptionalText(None) => None,
        FieldValue::Port(port) => Some(n(port)),
        FieldValue::Flag { value, .. } => Some(AttributeValue::Bool(*value)),
    }
}

/// An edit's update and condition expressions: `SET` (or `REMOVE`) each changed attribute and
/// the sealed ones, on the condition that the item exists and each changed attribute still
/// holds what was read. A toggle read at its default may be absent (items written before it
/// existed, or written only when not the default). Attribute names go through placeholders
/// (`name` is a reserved word).
#[derive(Default)]
struct EditExpression {
    set: Vec<String>,
    remove: Vec<String>,
    conditions: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl EditExpression {
    fn new(changes: &[FieldChange], sealed: Option<&SealedSecrets>) -> Self {
        let mut edit = Self {
            conditions: vec!["attribute_exists(PK)".to_owned()],
            ..Self::default()
        };
        for (index, change) in changes.iter().enumerate() {
            let name = format!("#f{index}");
            edit.names.insert(name.clone(), change.field.to_owned());
            match attribute(&change.written) {
                Some(value) => {
                    edit.values.insert(format!(":w{index}"), value);
                    edit.set.push(format!("{name} = :w{index}"));
                }
                None => edit.remove.push(name.clone()),
            }
            edit.condition_unchanged(index, &name, &change.read);
        }
        if let Some(sealed) = sealed {
            for (attribute, value) in [
                ("vault_gen", n(sealed.vault_gen)),
                ("wrapped_data_key", b(&sealed.wrapped_data_key)),
                ("hpke_enc", b(&sealed.hpke_enc)),
                ("ciphertext", b(&sealed.ciphertext)),
            ] {
                edit.values.insert(format!(":{attribute}"), value);
                edit.set.push(format!("{attribute} = :{attribute}"));
            }
        }
        edit
    }

    /// The conditions of a change of owner: the item exists and every field, its sealed
    /// generation and its ciphertext are as `read` (nothing is set; the item is replaced).
    fn unchanged(read: &Machine) -> Self {
        let mut edit = Self {
            conditions: vec!["attribute_exists(PK)".to_owned()],
            ..Self::default()
        };
        let summary = MachineSummary::from(read.clone());
        for (index, (field, value)) in summary.as_read().into_iter().enumerate() {
            let name = format!("#f{index}");
            edit.names.insert(name.clone(), field.to_owned());
            edit.condition_unchanged(index, &name, &value);
        }
        edit.values
            .insert(":vault_gen".to_owned(), n(read.sealed.vault_gen));
        edit.values
            .insert(":ciphertext".to_owned(), b(&read.sealed.ciphertext));
        edit.conditions
            .push("vault_gen = :vault_gen AND ciphertext = :ciphertext".to_owned());
        edit
    }

    /// Condition the write on attribute `name` (field number `index`) still holding `read`. A
    /// toggle read at its default may be absent (items written before it existed, or written
    /// only when not the default).
    fn condition_unchanged(&mut self, index: usize, name: &str, read: &FieldValue) {
        let condition = match (read, attribute(read)) {
            (_, None) => format!("attribute_not_exists({name})"),
            (
                FieldValue::Flag {
                    value,
                    absent_reads_as,
                },
                Some(read),
            ) if value == absent_reads_as => {
                self.values.insert(format!(":r{index}"), read);
                format!("(attribute_not_exists({name}) OR {name} = :r{index})")
            }
            (_, Some(read)) => {
                self.values.insert(format!(":r{index}"), read);
                format!("{name} = :r{index}")
            }
        };
        self.conditions.push(condition);
    }

    fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }

    fn update_expression(&self) -> String {
        let mut clauses = Vec::new();
        if !self.set.is_empty() {
            clauses.push(format!("SET {}", self.set.join(", ")));
        }
        if !self.remove.is_empty() {
            clauses.push(format!("REMOVE {}", self.remove.join(", ")));
        }
        clauses.join(" ")
    }
}

fn vault_to_item(v: &VaultRecord) -> Item {
    let mut item = Item::new();
    item.insert("PK".into(), user_pk(&v.owner_id));
    item.insert("SK".into(), s("VAULT"));
    item.insert("owner_id".into(), s(&v.owner_id));
    item.insert("generation".into(), n(v.generation));
    item.insert("public_key".into(), b(&v.public_key));
    item.insert("kdf_memory_kib".into(), n(v.kdf.memory_kib));
    item.insert("kdf_iterations".into(), n(v.kdf.iterations));
    item.insert("kdf_parallelism".into(), n(v.kdf.parallelism));
    item.insert("kdf_salt".into(), b(&v.kdf.salt));
    item.insert("wrapped_seed".into(), b(&v.wrapped_seed));
    if let Some(previous) = &v.previous {
        item.insert("prev_generation".into(), n(previous.generation));
        item.insert("prev_wrapped_seed".into(), b(&previous.wrapped_seed));
    }
    item
}

fn vault_from_item(item: &Item) -> Result<VaultRecord, StoreError> {
    let f = Fields(item);
    let previous = match (f.opt_n("prev_generation")?, f.opt_b("prev_wrapped_seed")?) {
        (Some(generation), Some(wrapped_seed)) => Some(PreviousKey {
            generation,
            wrapped_seed,
        }),
        _ => None,
    };
    Ok(VaultRecord {
        owner_id: f.s("owner_id")?,
        generation: f.n("generation")?,
        public_key: f.b("public_key")?,
        kdf: KdfParams {
            memory_kib: f.n("kdf_memory_kib")?,
            iterations: f.n("kdf_iterations")?,
            parallelism: f.n("kdf_parallelism")?,
            salt: f.b("kdf_salt")?,
        },
        wrapped_seed: f.b("wrapped_seed")?,
        previous,
    })
}

#[async_trait]
impl Store for DynamoStore {
    async fn next_machine_id(&self) -> Result<u64, StoreError> {
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("PK", s("COUNTER"))
            .key("SK", s("MACHINE_ID"))
            .update_expression("ADD #value :one")
            .expression_attribute_names("#value", "value")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(store_error)?;
        let attributes = output.attributes.unwrap_or_default();
        Fields(&attributes).n("value")
    }

    async fn insert_machine(&self, machine: &Machine) -> Result<(), StoreError> {
        // One transaction: the vault must still be at the generation the secrets are sealed
        // to, and the id must be free; either condition failing cancels both.
        let vault_unchanged = ConditionCheck::builder()
            .table_name(&self.table)
            .key("PK", user_pk(&machine.owner_id))
            .key("SK", s("VAULT"))
            .condition_expression("generation = :generation")
            .expression_attribute_values(":generation", n(machine.sealed.vault_gen))
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(machine_to_item(machine)))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .condition_check(vault_unchanged)
                    .build(),
            )
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => match classify(&err) {
                AwsFailure::Service { code, .. } if code == TRANSACTION_CANCELED => {
                    Err(StoreError::Conflict)
                }
                AwsFailure::Service { code, message } => {
                    Err(StoreError::Unavailable(format!("{code}: {message}")))
                }
                AwsFailure::Unavailable(detail) => Err(StoreError::Unavailable(detail)),
            },
        }
    }

    async fn get_machine(&self, owner_id: &str, id: u64) -> Result<Option<Machine>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", user_pk(owner_id))
            .key("SK", machine_sk(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        output.item.as_ref().map(machine_from_item).transpose()
    }

    async fn list_machines(&self, owner_id: &str) -> Result<Vec<Machine>, StoreError> {
        let mut machines = self
            .query_machines(owner_id, false, machine_from_item)
            .await?;
        machines.sort_by_key(|m| m.id);
        Ok(machines)
    }

    async fn list_summaries(&self, owner_id: &str) -> Result<Vec<MachineSummary>, StoreError> {
        let mut machines = self
            .query_machines(owner_id, true, summary_from_item)
            .await?;
        machines.sort_by_key(|m| m.id);
        Ok(machines)
    }

    async fn count_machines(&self, owner_id: &str) -> Result<usize, StoreError> {
        let mut count = 0usize;
        let mut start_key: Option<Item> = None;
        for _ in 0..MAX_QUERY_PAGES {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk AND begins_with(SK, :prefix)")
                .expression_attribute_values(":pk", user_pk(owner_id))
                .expression_attribute_values(":prefix", s("MACHINE#"))
                .select(Select::Count)
                .set_exclusive_start_key(start_key.take())
                .send()
                .await
                .map_err(store_error)?;
            count += usize::try_from(output.count).unwrap_or_default();
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start_key = Some(key),
                _ => break,
            }
        }
        Ok(count)
    }

    async fn update_machine(
        &self,
        owner_id: &str,
        id: u64,
        changes: &[FieldChange],
        sealed: Option<&SealedSecrets>,
    ) -> Result<bool, StoreError> {
        let edit = EditExpression::new(changes, sealed);
        if edit.is_empty() {
            return Ok(self.get_machine(owner_id, id).await?.is_some());
        }
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("PK", user_pk(owner_id))
            .key("SK", machine_sk(id))
            .update_expression(edit.update_expression())
            .condition_expression(edit.conditions.join(" AND "));
        if !edit.values.is_empty() {
            update = update.set_expression_attribute_values(Some(edit.values));
        }
        if !edit.names.is_empty() {
            update = update.set_expression_attribute_names(Some(edit.names));
        }
        let update = update
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        // One transaction, so new secrets land only while the vault is at their generation
        // (the create rule); without secrets the transaction is the update alone.
        let mut transaction = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build());
        if let Some(sealed) = sealed {
            let vault_unchanged = ConditionCheck::builder()
                .table_name(&self.table)
                .key("PK", user_pk(owner_id))
                .key("SK", s("VAULT"))
                .condition_expression("generation = :generation")
                .expression_attribute_values(":generation", n(sealed.vault_gen))
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            transaction = transaction.transact_items(
                TransactWriteItem::builder()
                    .condition_check(vault_unchanged)
                    .build(),
            );
        }
        match transaction.send().await {
            Ok(_) => Ok(true),
            Err(err) => match classify(&err) {
                // A condition failed: the machine is gone, or a field or the vault moved.
                AwsFailure::Service { code, .. } if code == TRANSACTION_CANCELED => {
                    match self.get_machine(owner_id, id).await? {
                        None => Ok(false),
                        Some(_) => Err(StoreError::Conflict),
                    }
                }
                AwsFailure::Service { code, message } => {
                    Err(StoreError::Unavailable(format!("{code}: {message}")))
                }
                AwsFailure::Unavailable(detail) => Err(StoreError::Unavailable(detail)),
            },
        }
    }

    async fn move_machine(&self, read: &Machine, moved: &Machine) -> Result<bool, StoreError> {
        // One transaction: delete the item from the old owner's partition while it is exactly
        // as read, check the new owner's vault generation, put the item (same id) in the new
        // owner's partition. A failed condition cancels all three.
        let unchanged = EditExpression::unchanged(read);
        let delete = Delete::builder()
            .table_name(&self.table)
            .key("PK", user_pk(&read.owner_id))
            .key("SK", machine_sk(read.id))
            .condition_expression(unchanged.conditions.join(" AND "))
            .set_expression_attribute_names(Some(unchanged.names))
            .set_expression_attribute_values(Some(unchanged.values))
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let vault_ready = ConditionCheck::builder()
            .table_name(&self.table)
            .key("PK", user_pk(&moved.owner_id))
            .key("SK", s("VAULT"))
            .condition_expression("generation = :generation")
            .expression_attribute_values(":generation", n(moved.sealed.vault_gen))
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(machine_to_item(moved)))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(delete).build())
            .transact_items(
                TransactWriteItem::builder()
                    .condition_check(vault_ready)
                    .build(),
            )
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) => match classify(&err) {
                AwsFailure::Service { code, .. } if code == TRANSACTION_CANCELED => {
                    match self.get_machine(&read.owner_id, read.id).await? {
                        None => Ok(false),
                        Some(_) => Err(StoreError::Conflict),
                    }
                }
                AwsFailure::Service { code, message } => {
                    Err(StoreError::Unavailable(format!("{code}: {message}")))
                }
                AwsFailure::Unavailable(detail) => Err(StoreError::Unavailable(detail)),
            },
        }
    }

    async fn delete_machine(&self, owner_id: &str, id: u64) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("PK", user_pk(owner_id))
            .key("SK", machine_sk(id))
            .condition_expression("attribute_exists(PK)")
            .send()
            .await;
        match result.map_err(store_error) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict) => Ok(false),
            Err(other) => Err(other),
        }
    }

    async fn replace_sealed(
        &self,
        owner_id: &str,
        id: u64,
        expected_gen: u32,
        sealed: &SealedSecrets,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("PK", user_pk(owner_id))
            .key("SK", machine_sk(id))
            .update_expression(
                "SET vault_gen = :gen, wrapped_data_key = :wdk, hpke_enc = :enc, ciphertext = :ct",
            )
            .condition_expression("attribute_exists(PK) AND vault_gen = :expected")
            .expression_attribute_values(":gen", n(sealed.vault_gen))
            .expression_attribute_values(":wdk", b(&sealed.wrapped_data_key))
            .expression_attribute_values(":enc", b(&sealed.hpke_enc))
            .expression_attribute_values(":ct", b(&sealed.ciphertext))
            .expression_attribute_values(":expected", n(expected_gen))
            .send()
            .await;
        match result.map_err(store_error) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict) => Ok(false),
            Err(other) => Err(other),
        }
    }

    async fn set_host_key(
        &self,
        owner_id: &str,
        id: u64,
        expected: Option<&str>,
        new: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("PK", user_pk(owner_id))
            .key("SK", machine_sk(id));
        request = match new {
            Some(fp) => request
                .update_expression("SET host_key_fingerprint = :new")
                .expression_attribute_values(":new", s(fp)),
            None => request.update_expression("REMOVE host_key_fingerprint"),
        };
        request = match expected {
            Some(fp) => request
                .condition_expression("host_key_fingerprint = :expected")
                .expression_attribute_values(":expected", s(fp)),
            None => request.condition_expression(
                "attribute_exists(PK) AND attribute_not_exists(host_key_fingerprint)",
            ),
        };
        match request.send().await.map_err(store_error) {
            Ok(_) => Ok(true),
            // The condition covers both "gone" and "pinned to something else": tell them apart.
            Err(StoreError::Conflict) => match self.get_machine(owner_id, id).await? {
                None => Ok(false),
                Some(_) => Err(StoreError::Conflict),
            },
            Err(other) => Err(other),
        }
    }

    async fn get_vault(&self, owner_id: &str) -> Result<Option<VaultRecord>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", user_pk(owner_id))
            .key("SK", s("VAULT"))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        output.item.as_ref().map(vault_from_item).transpose()
    }

    async fn put_vault(
        &self,
        vault: &VaultRecord,
        precondition: VaultPrecondition,
    ) -> Result<(), StoreError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(vault_to_item(vault)));
        let request = match precondition {
            VaultPrecondition::Absent => request.condition_expression("attribute_not_exists(PK)"),
            VaultPrecondition::At {
                generation,
                has_previous,
            } => request
                .condition_expression(if has_previous {
                    "generation = :generation AND attribute_exists(prev_generation)"
                } else {
                    "generation = :generation AND attribute_not_exists(prev_generation)"
                })
                .expression_attribute_values(":generation", n(generation)),
        };
        request.send().await.map_err(store_error)?;
        Ok(())
    }

    async fn put_org_key_copy(&self, copy: &OrgKeyCopy) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(copy_to_item(copy)))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn get_org_key_copy(
        &self,
        org_owner: &str,
        member: &str,
    ) -> Result<Option<OrgKeyCopy>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", user_pk(org_owner))
            .key("SK", copy_sk(member))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        output.item.as_ref().map(copy_from_item).transpose()
    }

    async fn list_org_key_copies(&self, org_owner: &str) -> Result<Vec<OrgKeyCopy>, StoreError> {
        let mut copies = Vec::new();
        let mut start_key: Option<Item> = None;
        for _ in 0..MAX_QUERY_PAGES {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk AND begins_with(SK, :prefix)")
                .expression_attribute_values(":pk", user_pk(org_owner))
                .expression_attribute_values(":prefix", s("KEYCOPY#"))
                .consistent_read(true)
                .set_exclusive_start_key(start_key.take())
                .send()
                .await
                .map_err(store_error)?;
            for item in output.items() {
                copies.push(copy_from_item(item)?);
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start_key = Some(key),
                _ => break,
            }
        }
        Ok(copies)
    }

    async fn delete_org_key_copy(&self, org_owner: &str, member: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("PK", user_pk(org_owner))
            .key("SK", copy_sk(member))
            .condition_expression("attribute_exists(PK)")
            .send()
            .await;
        match result.map_err(store_error) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict) => Ok(false),
            Err(other) => Err(other),
        }
    }

    async fn revoke_token(&self, jti: &str, expires_at: u64) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("PK", revoked_pk(jti))
            .item("SK", s("TOKEN"))
            .item("expires_at", n(expires_at))
            .item("ttl", n(expires_at))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn is_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", revoked_pk(jti))
            .key("SK", s("TOKEN"))
            .projection_expression("PK")
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        Ok(output.item.is_some())
    }

    fn describe(&self) -> String {
        format!("DynamoDB table {}", self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(persistent_shell: bool) -> Machine {
        Machine {
            id: 7,
            owner_id: "a@example.com".into(),
            name: "web".into(),
            hostname: "example.com".into(),
            port: 22,
            username: "root".into(),
            organization: None,
            host_key_fingerprint: None,
            persistent_shell,
            recording: !persistent_shell,
            record_input: persistent_shell,
            sealed: SealedSecrets {
                vault_gen: 1,
                wrapped_data_key: vec![1],
                hpke_enc: vec![2],
                ciphertext: vec![3],
            },
            created_at: 0,
        }
    }

    /// Items written before the attribute existed have no `persistent_shell`: a plain shell.
    #[test]
    fn persistent_shell_round_trips_and_reads_false_when_absent() {
        let item = machine_to_item(&machine(true));
        assert!(machine_from_item(&item).unwrap().persistent_shell);
        assert!(summary_from_item(&item).unwrap().persistent_shell);
        let old = machine_to_item(&machine(false));
        assert!(!old.contains_key("persistent_shell"));
        assert!(!machine_from_item(&old).unwrap().persistent_shell);
        // The recording toggles: defaults are not written, and read back as on / off.
        assert!(!old.contains_key("recording") && !old.contains_key("record_input"));
        let plain = machine_from_item(&old).unwrap();
        assert!(plain.recording && !plain.record_input);
        let flipped = summary_from_item(&item).unwrap();
        assert!(!flipped.recording && flipped.record_input);
    }
}
