//! Organizations in the machines' DynamoDB table, beside the items they will own.
//!
//! | item | PK | SK |
//! |---|---|---|
//! | organization (with `owners`, the owner count) | `ORG#<slug>` | `META` |
//! | membership | `ORG#<slug>` | `MEMBER#<member>` |
//! | the same, for "my organizations" | `USER#<member>` | `ORG#<slug>` |
//! | invitation | `ORG#<slug>` | `INVITE#<email>` |
//! | the same, for "my invitations" | `USER#<email>` | `INVITE#<slug>` |
//!
//! Each list is one `Query` on a partition and a prefix (never a `Scan`); the mirrored items are
//! written and deleted in the same transaction as the items they mirror. The owner count on the
//! organization item is what keeps an owner: a change that takes one away carries
//! `ADD owners -1` on the condition `owners > 1`, in the same transaction as the membership
//! change, so two owners demoting each other at once cannot both succeed.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use domain::orgs::{Invitation, MemberChange, Membership, OrgStore, Organization, Role, Slug};
use domain::store::StoreError;

use crate::aws::{AwsFailure, classify};
use crate::store::dynamodb::{
    Fields, Item, MAX_QUERY_PAGES, TRANSACTION_CANCELED, n, s, store_error,
};

pub struct DynamoOrgs {
    client: Client,
    table: String,
}

fn org_pk(slug: &str) -> AttributeValue {
    s(&format!("ORG#{slug}"))
}

fn user_pk(member: &str) -> AttributeValue {
    s(&format!("USER#{member}"))
}

fn built<T, E: std::fmt::Display>(result: Result<T, E>) -> Result<T, StoreError> {
    result.map_err(|e| StoreError::Unavailable(e.to_string()))
}

fn slug_of(fields: &Fields<'_>) -> Result<Slug, StoreError> {
    let raw = fields.s("slug")?;
    Slug::parse(&raw).map_err(|_| StoreError::Corrupt(format!("organization slug {raw:?}")))
}

fn role_of_item(fields: &Fields<'_>) -> Result<Role, StoreError> {
    let raw = fields.s("role")?;
    Role::parse(&raw).ok_or_else(|| StoreError::Corrupt(format!("organization role {raw:?}")))
}

fn membership_item(m: &Membership) -> Item {
    Item::from([
        ("slug".to_owned(), s(m.slug.as_str())),
        ("member".to_owned(), s(&m.member)),
        ("role".to_owned(), s(m.role.as_str())),
        ("since".to_owned(), n(m.since)),
        ("org_name".to_owned(), s(&m.org_name)),
    ])
}

fn membership_from(item: &Item) -> Result<Membership, StoreError> {
    let f = Fields(item);
    Ok(Membership {
        slug: slug_of(&f)?,
        member: f.s("member")?,
        role: role_of_item(&f)?,
        since: f.n("since")?,
        org_name: f.s("org_name")?,
    })
}

fn invitation_item(i: &Invitation) -> Item {
    Item::from([
        ("slug".to_owned(), s(i.slug.as_str())),
        ("email".to_owned(), s(&i.email)),
        ("role".to_owned(), s(i.role.as_str())),
        ("invited_by".to_owned(), s(&i.invited_by)),
        ("created_at".to_owned(), n(i.created_at)),
        ("expires_at".to_owned(), n(i.expires_at)),
        ("org_name".to_owned(), s(&i.org_name)),
    ])
}

fn invitation_from(item: &Item) -> Result<Invitation, StoreError> {
    let f = Fields(item);
    Ok(Invitation {
        slug: slug_of(&f)?,
        email: f.s("email")?,
        role: role_of_item(&f)?,
        invited_by: f.s("invited_by")?,
        created_at: f.n("created_at")?,
        expires_at: f.n("expires_at")?,
        org_name: f.s("org_name")?,
    })
}

/// `item` under `pk`/`sk`, written only where no item is.
fn put_new(
    table: &str,
    pk: AttributeValue,
    sk: String,
    mut item: Item,
) -> Result<TransactWriteItem, StoreError> {
    item.insert("PK".to_owned(), pk);
    item.insert("SK".to_owned(), s(&sk));
    let put = built(
        Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)")
            .build(),
    )?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// A delete of `pk`/`sk`, with an optional condition on `role` (and `created_at`).
fn delete(
    table: &str,
    pk: AttributeValue,
    sk: String,
    role: Option<Role>,
    created_at: Option<i64>,
) -> Result<TransactWriteItem, StoreError> {
    let mut builder = Delete::builder()
        .table_name(table)
        .key("PK", pk)
        .key("SK", s(&sk));
    let mut conditions = vec!["attribute_exists(PK)"];
    if let Some(role) = role {
        conditions.push("#role = :role");
        builder = builder
            .expression_attribute_names("#role", "role")
            .expression_attribute_values(":role", s(role.as_str()));
    }
    if let Some(created_at) = created_at {
        conditions.push("created_at = :created_at");
        builder = builder.expression_attribute_values(":created_at", n(created_at));
    }
    let delete = built(
        builder
            .condition_expression(conditions.join(" AND "))
            .build(),
    )?;
    Ok(TransactWriteItem::builder().delete(delete).build())
}

/// `SET role = new` on `pk`/`sk`, conditioned on the role being `expected`.
fn set_role_item(
    table: &str,
    pk: AttributeValue,
    sk: String,
    expected: Role,
    new: Role,
) -> Result<TransactWriteItem, StoreError> {
    let update = built(
        Update::builder()
            .table_name(table)
            .key("PK", pk)
            .key("SK", s(&sk))
            .update_expression("SET #role = :new")
            .condition_expression("#role = :expected")
            .expression_attribute_names("#role", "role")
            .expression_attribute_values(":new", s(new.as_str()))
            .expression_attribute_values(":expected", s(expected.as_str()))
            .build(),
    )?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// `ADD owners delta` on the organization item; taking one away needs another to remain.
fn count_owners(table: &str, slug: &str, delta: i64) -> Result<TransactWriteItem, StoreError> {
    let mut builder = Update::builder()
        .table_name(table)
        .key("PK", org_pk(slug))
        .key("SK", s("META"))
        .update_expression("ADD owners :delta")
        .expression_attribute_values(":delta", n(delta));
    builder = match delta < 0 {
        true => builder
            .condition_expression("owners > :one")
            .expression_attribute_values(":one", n(1)),
        false => builder.condition_expression("attribute_exists(PK)"),
    };
    let update = built(builder.build())?;
    Ok(TransactWriteItem::builder().update(update).build())
}

impl DynamoOrgs {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        Self {
            client: Client::new(config),
            table,
        }
    }

    /// Run a transaction; `Ok(false)` when DynamoDB cancelled it (a condition failed).
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<bool, StoreError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) => match classify(&err) {
                AwsFailure::Service { code, .. } if code == TRANSACTION_CANCELED => Ok(false),
                AwsFailure::Service { code, message } => {
                    Err(StoreError::Unavailable(format!("{code}: {message}")))
                }
                AwsFailure::Unavailable(detail) => Err(StoreError::Unavailable(detail)),
            },
        }
    }

    /// Every item of partition `pk` whose sort key starts with `prefix`, decoded, in key order.
    async fn query<T>(
        &self,
        pk: AttributeValue,
        prefix: &str,
        decode: fn(&Item) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut decoded = Vec::new();
        let mut start_key: Option<Item> = None;
        for _ in 0..MAX_QUERY_PAGES {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk AND begins_with(SK, :prefix)")
                .expression_attribute_values(":pk", pk.clone())
                .expression_attribute_values(":prefix", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start_key.take())
                .send()
                .await
                .map_err(store_error)?;
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

    async fn get(&self, pk: AttributeValue, sk: &str) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", pk)
            .key("SK", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        Ok(output.item)
    }

    /// Why a membership change was cancelled: the member moved, or the owner count held.
    async fn why_cancelled(
        &self,
        slug: &Slug,
        member: &str,
        expected: Role,
    ) -> Result<MemberChange, StoreError> {
        match self.role_of(slug, member).await? {
            Some(role) if role == expected && expected == Role::Owner => {
                Ok(MemberChange::LastOwner)
            }
            _ => Ok(MemberChange::Missing),
        }
    }
}

#[async_trait]
impl OrgStore for DynamoOrgs {
    async fn create_org(&self, org: &Organization, owner: &Membership) -> Result<(), StoreError> {
        let slug = org.slug.as_str();
        let meta = Item::from([
            ("slug".to_owned(), s(slug)),
            ("name".to_owned(), s(&org.name)),
            ("created_by".to_owned(), s(&org.created_by)),
            ("created_at".to_owned(), n(org.created_at)),
            ("owners".to_owned(), n(1)),
        ]);
        let items = vec![
            put_new(&self.table, org_pk(slug), "META".to_owned(), meta)?,
            put_new(
                &self.table,
                org_pk(slug),
                format!("MEMBER#{}", owner.member),
                membership_item(owner),
            )?,
            put_new(
                &self.table,
                user_pk(&owner.member),
                format!("ORG#{slug}"),
                membership_item(owner),
            )?,
        ];
        match self.transact(items).await? {
            true => Ok(()),
            false => Err(StoreError::Conflict),
        }
    }

    async fn get_org(&self, slug: &Slug) -> Result<Option<Organization>, StoreError> {
        let Some(item) = self.get(org_pk(slug.as_str()), "META").await? else {
            return Ok(None);
        };
        let f = Fields(&item);
        Ok(Some(Organization {
            slug: slug.clone(),
            name: f.s("name")?,
            created_by: f.s("created_by")?,
            created_at: f.n("created_at")?,
        }))
    }

    async fn role_of(&self, slug: &Slug, member: &str) -> Result<Option<Role>, StoreError> {
        let item = self
            .get(org_pk(slug.as_str()), &format!("MEMBER#{member}"))
            .await?;
        item.as_ref()
            .map(|item| role_of_item(&Fields(item)))
            .transpose()
    }

    async fn members(&self, slug: &Slug) -> Result<Vec<Membership>, StoreError> {
        self.query(org_pk(slug.as_str()), "MEMBER#", membership_from)
            .await
    }

    async fn memberships_of(&self, member: &str) -> Result<Vec<Membership>, StoreError> {
        self.query(user_pk(member), "ORG#", membership_from).await
    }

    async fn put_invitation(&self, invitation: &Invitation) -> Result<(), StoreError> {
        let slug = invitation.slug.as_str();
        let item = invitation_item(invitation);
        let mut puts = Vec::new();
        for (pk, sk) in [
            (org_pk(slug), format!("INVITE#{}", invitation.email)),
            (user_pk(&invitation.email), format!("INVITE#{slug}")),
        ] {
            let mut item = item.clone();
            item.insert("PK".to_owned(), pk);
            item.insert("SK".to_owned(), s(&sk));
            let put = built(
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .build(),
            )?;
            puts.push(TransactWriteItem::builder().put(put).build());
        }
        match self.transact(puts).await? {
            true => Ok(()),
            false => Err(StoreError::Conflict),
        }
    }

    async fn invitations(&self, slug: &Slug) -> Result<Vec<Invitation>, StoreError> {
        self.query(org_pk(slug.as_str()), "INVITE#", invitation_from)
            .await
    }

    async fn invitations_for(&self, email: &str) -> Result<Vec<Invitation>, StoreError> {
        self.query(user_pk(email), "INVITE#", invitation_from).await
    }

    async fn delete_invitation(&self, slug: &Slug, email: &str) -> Result<bool, StoreError> {
        let slug = slug.as_str();
        let items = vec![
            delete(
                &self.table,
                org_pk(slug),
                format!("INVITE#{email}"),
                None,
                None,
            )?,
            delete(
                &self.table,
                user_pk(email),
                format!("INVITE#{slug}"),
                None,
                None,
            )?,
        ];
        self.transact(items).await
    }

    async fn accept_invitation(
        &self,
        invitation: &Invitation,
        member: &Membership,
    ) -> Result<(), StoreError> {
        let slug = invitation.slug.as_str();
        let (role, created) = (Some(invitation.role), Some(invitation.created_at));
        let mut items = vec![
            delete(
                &self.table,
                org_pk(slug),
                format!("INVITE#{}", invitation.email),
                role,
                created,
            )?,
            delete(
                &self.table,
                user_pk(&invitation.email),
                format!("INVITE#{slug}"),
                role,
                created,
            )?,
            put_new(
                &self.table,
                org_pk(slug),
                format!("MEMBER#{}", member.member),
                membership_item(member),
            )?,
            put_new(
                &self.table,
                user_pk(&member.member),
                format!("ORG#{slug}"),
                membership_item(member),
            )?,
        ];
        if member.role == Role::Owner {
            items.push(count_owners(&self.table, slug, 1)?);
        }
        match self.transact(items).await? {
            true => Ok(()),
            false => Err(StoreError::Conflict),
        }
    }

    async fn set_role(
        &self,
        slug: &Slug,
        member: &str,
        expected: Role,
        new: Role,
    ) -> Result<MemberChange, StoreError> {
        let raw = slug.as_str();
        let mut items = vec![
            set_role_item(
                &self.table,
                org_pk(raw),
                format!("MEMBER#{member}"),
                expected,
                new,
            )?,
            set_role_item(
                &self.table,
                user_pk(member),
                format!("ORG#{raw}"),
                expected,
                new,
            )?,
        ];
        match (expected == Role::Owner, new == Role::Owner) {
            (true, false) => items.push(count_owners(&self.table, raw, -1)?),
            (false, true) => items.push(count_owners(&self.table, raw, 1)?),
            _ => {}
        }
        match self.transact(items).await? {
            true => Ok(MemberChange::Done),
            false => self.why_cancelled(slug, member, expected).await,
        }
    }

    async fn remove_member(
        &self,
        slug: &Slug,
        member: &str,
        expected: Role,
    ) -> Result<MemberChange, StoreError> {
        let raw = slug.as_str();
        let role = Some(expected);
        let mut items = vec![
            delete(
                &self.table,
                org_pk(raw),
                format!("MEMBER#{member}"),
                role,
                None,
            )?,
            delete(
                &self.table,
                user_pk(member),
                format!("ORG#{raw}"),
                role,
                None,
            )?,
        ];
        if expected == Role::Owner {
            items.push(count_owners(&self.table, raw, -1)?);
        }
        match self.transact(items).await? {
            true => Ok(MemberChange::Done),
            false => self.why_cancelled(slug, member, expected).await,
        }
    }
}
