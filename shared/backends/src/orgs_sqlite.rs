//! Organizations in the embedded SQLite file (tables `orgs`, `org_members`, `org_invitations`,
//! see the store's schema), beside the machines and vaults they will own.
//!
//! Each change the domain needs atomic is one write transaction on the writer connection: the
//! organization with its first owner; an accepted invitation (deleted only if it is still the
//! one the domain read) with the new membership; and a role change or removal that counts the
//! owners left inside the same transaction, so no interleaving ends with none.

use async_trait::async_trait;
use domain::orgs::{Invitation, MemberChange, Membership, OrgStore, Organization, Role, Slug};
use domain::store::StoreError;
use rusqlite::{ErrorCode, OptionalExtension, Row, Transaction, params};

use crate::store::SqliteStore;

fn unavailable(err: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

/// A primary-key clash is the domain's `Conflict`; anything else is the backend failing.
fn conflict_or_unavailable(err: rusqlite::Error) -> StoreError {
    match err.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => StoreError::Conflict,
        _ => unavailable(err),
    }
}

fn slug_from(raw: String) -> Result<Slug, StoreError> {
    Slug::parse(&raw).map_err(|_| StoreError::Corrupt(format!("organization slug {raw:?}")))
}

fn role_from(raw: &str) -> Result<Role, StoreError> {
    Role::parse(raw).ok_or_else(|| StoreError::Corrupt(format!("organization role {raw:?}")))
}

/// `org_members` joined with `orgs` for the name: slug, member, role, since, name.
const MEMBER_SELECT: &str = "SELECT m.slug, m.member, m.role, m.since, o.name \
     FROM org_members m JOIN orgs o ON o.slug = m.slug";

fn membership_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Membership, StoreError>> {
    let slug: String = row.get(0)?;
    let role: String = row.get(2)?;
    Ok((|| {
        Ok(Membership {
            slug: slug_from(slug)?,
            member: row.get(1).map_err(unavailable)?,
            role: role_from(&role)?,
            since: row.get(3).map_err(unavailable)?,
            org_name: row.get(4).map_err(unavailable)?,
        })
    })())
}

const INVITATION_SELECT: &str = "SELECT i.slug, i.email, i.role, i.invited_by, i.created_at, \
     i.expires_at, o.name FROM org_invitations i JOIN orgs o ON o.slug = i.slug";

fn invitation_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Invitation, StoreError>> {
    let slug: String = row.get(0)?;
    let role: String = row.get(2)?;
    Ok((|| {
        Ok(Invitation {
            slug: slug_from(slug)?,
            email: row.get(1).map_err(unavailable)?,
            role: role_from(&role)?,
            invited_by: row.get(3).map_err(unavailable)?,
            created_at: row.get(4).map_err(unavailable)?,
            expires_at: row.get(5).map_err(unavailable)?,
            org_name: row.get(6).map_err(unavailable)?,
        })
    })())
}

/// The member's current role inside `tx`.
fn role_in(tx: &Transaction<'_>, slug: &str, member: &str) -> Result<Option<Role>, StoreError> {
    let role: Option<String> = tx
        .query_row(
            "SELECT role FROM org_members WHERE slug = ?1 AND member = ?2",
            params![slug, member],
            |row| row.get(0),
        )
        .optional()
        .map_err(unavailable)?;
    role.as_deref().map(role_from).transpose()
}

/// Why a change of `member` (decided on their having `expected`) must not happen inside `tx`:
/// they no longer have that role, or it takes away (`takes_role`) the organization's last
/// owner. `None` when it may go ahead.
fn refusal(
    tx: &Transaction<'_>,
    slug: &str,
    member: &str,
    expected: Role,
    takes_role: bool,
) -> Result<Option<MemberChange>, StoreError> {
    if role_in(tx, slug, member)? != Some(expected) {
        return Ok(Some(MemberChange::Missing));
    }
    if !takes_role || expected != Role::Owner {
        return Ok(None);
    }
    let owners: i64 = tx
        .query_row(
            "SELECT COUNT(*) FROM org_members WHERE slug = ?1 AND role = 'owner'",
            params![slug],
            |row| row.get(0),
        )
        .map_err(unavailable)?;
    Ok((owners <= 1).then_some(MemberChange::LastOwner))
}

impl SqliteStore {
    async fn query_list<T: Send + 'static>(
        &self,
        sql: String,
        key: String,
        decode: fn(&Row<'_>) -> rusqlite::Result<Result<T, StoreError>>,
    ) -> Result<Vec<T>, StoreError> {
        self.with_reader(move |conn| {
            let mut statement = conn.prepare_cached(&sql).map_err(unavailable)?;
            let rows = statement
                .query_map(params![key], decode)
                .map_err(unavailable)?;
            rows.map(|row| row.map_err(unavailable)?).collect()
        })
        .await
    }
}

#[async_trait]
impl OrgStore for SqliteStore {
    async fn create_org(&self, org: &Organization, owner: &Membership) -> Result<(), StoreError> {
        let org = org.clone();
        let owner = owner.clone();
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            tx.execute(
                "INSERT INTO orgs (slug, name, created_by, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![org.slug.as_str(), org.name, org.created_by, org.created_at],
            )
            .map_err(conflict_or_unavailable)?;
            tx.execute(
                "INSERT INTO org_members (slug, member, role, since) VALUES (?1, ?2, ?3, ?4)",
                params![
                    owner.slug.as_str(),
                    owner.member,
                    owner.role.as_str(),
                    owner.since
                ],
            )
            .map_err(conflict_or_unavailable)?;
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn get_org(&self, slug: &Slug) -> Result<Option<Organization>, StoreError> {
        let slug = slug.clone();
        self.with_reader(move |conn| {
            conn.query_row(
                "SELECT name, created_by, created_at FROM orgs WHERE slug = ?1",
                params![slug.as_str()],
                |row| {
                    Ok(Organization {
                        slug: slug.clone(),
                        name: row.get(0)?,
                        created_by: row.get(1)?,
                        created_at: row.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(unavailable)
        })
        .await
    }

    async fn role_of(&self, slug: &Slug, member: &str) -> Result<Option<Role>, StoreError> {
        let (slug, member) = (slug.as_str().to_owned(), member.to_owned());
        self.with_reader(move |conn| {
            let role: Option<String> = conn
                .query_row(
                    "SELECT role FROM org_members WHERE slug = ?1 AND member = ?2",
                    params![slug, member],
                    |row| row.get(0),
                )
                .optional()
                .map_err(unavailable)?;
            role.as_deref().map(role_from).transpose()
        })
        .await
    }

    async fn members(&self, slug: &Slug) -> Result<Vec<Membership>, StoreError> {
        let sql = format!("{MEMBER_SELECT} WHERE m.slug = ?1 ORDER BY m.member");
        self.query_list(sql, slug.as_str().to_owned(), membership_from_row)
            .await
    }

    async fn memberships_of(&self, member: &str) -> Result<Vec<Membership>, StoreError> {
        let sql = format!("{MEMBER_SELECT} WHERE m.member = ?1 ORDER BY m.slug");
        self.query_list(sql, member.to_owned(), membership_from_row)
            .await
    }

    async fn put_invitation(&self, invitation: &Invitation) -> Result<(), StoreError> {
        let i = invitation.clone();
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO org_invitations \
                 (slug, email, role, invited_by, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    i.slug.as_str(),
                    i.email,
                    i.role.as_str(),
                    i.invited_by,
                    i.created_at,
                    i.expires_at
                ],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn invitations(&self, slug: &Slug) -> Result<Vec<Invitation>, StoreError> {
        let sql = format!("{INVITATION_SELECT} WHERE i.slug = ?1 ORDER BY i.email");
        self.query_list(sql, slug.as_str().to_owned(), invitation_from_row)
            .await
    }

    async fn invitations_for(&self, email: &str) -> Result<Vec<Invitation>, StoreError> {
        let sql = format!("{INVITATION_SELECT} WHERE i.email = ?1 ORDER BY i.slug");
        self.query_list(sql, email.to_owned(), invitation_from_row)
            .await
    }

    async fn delete_invitation(&self, slug: &Slug, email: &str) -> Result<bool, StoreError> {
        let (slug, email) = (slug.as_str().to_owned(), email.to_owned());
        self.with_conn(move |conn| {
            let deleted = conn
                .execute(
                    "DELETE FROM org_invitations WHERE slug = ?1 AND email = ?2",
                    params![slug, email],
                )
                .map_err(unavailable)?;
            Ok(deleted == 1)
        })
        .await
    }

    async fn accept_invitation(
        &self,
        invitation: &Invitation,
        member: &Membership,
    ) -> Result<(), StoreError> {
        let (i, m) = (invitation.clone(), member.clone());
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            // Consumed only if it is still the invitation the domain decided on.
            let consumed = tx
                .execute(
                    "DELETE FROM org_invitations WHERE slug = ?1 AND email = ?2 AND role = ?3 \
                     AND created_at = ?4",
                    params![i.slug.as_str(), i.email, i.role.as_str(), i.created_at],
                )
                .map_err(unavailable)?;
            if consumed != 1 {
                return Err(StoreError::Conflict);
            }
            tx.execute(
                "INSERT INTO org_members (slug, member, role, since) VALUES (?1, ?2, ?3, ?4)",
                params![m.slug.as_str(), m.member, m.role.as_str(), m.since],
            )
            .map_err(conflict_or_unavailable)?;
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn set_role(
        &self,
        slug: &Slug,
        member: &str,
        expected: Role,
        new: Role,
    ) -> Result<MemberChange, StoreError> {
        let (slug, member) = (slug.as_str().to_owned(), member.to_owned());
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            if let Some(refused) = refusal(&tx, &slug, &member, expected, new != Role::Owner)? {
                return Ok(refused);
            }
            tx.execute(
                "UPDATE org_members SET role = ?1 WHERE slug = ?2 AND member = ?3",
                params![new.as_str(), slug, member],
            )
            .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            Ok(MemberChange::Done)
        })
        .await
    }

    async fn remove_member(
        &self,
        slug: &Slug,
        member: &str,
        expected: Role,
    ) -> Result<MemberChange, StoreError> {
        let (slug, member) = (slug.as_str().to_owned(), member.to_owned());
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            if let Some(refused) = refusal(&tx, &slug, &member, expected, true)? {
                return Ok(refused);
            }
            tx.execute(
                "DELETE FROM org_members WHERE slug = ?1 AND member = ?2",
                params![slug, member],
            )
            .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            Ok(MemberChange::Done)
        })
        .await
    }
}
