//! Organizations over real HTTP against the real binary, on both backends: create, invite by
//! email, accept, roles and what each may do, the last owner kept through every path (races
//! included), and nothing at all for non-members.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{Backend, start};
use futures_util::future::join_all;
use serde_json::{Value, json};
use testkit::{Answer, Client};

on_both_backends!(
    an_invitation_is_accepted_by_its_email_only,
    roles_decide_who_manages_whom,
    the_last_owner_cannot_leave_nor_be_demoted,
    owners_demoting_each_other_at_once_leave_an_owner,
    a_non_member_learns_nothing_on_any_route,
);

const ORG: &str = "/api/v1/orgs/platform-team";

async fn create_org(owner: &Client) {
    let created = owner
        .post_json(
            "/api/v1/orgs",
            &json!({"slug": "platform-team", "name": "Platform team"}),
        )
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    assert_eq!(created.message(), "Organization created successfully");
    assert_eq!(created.data()["role"], "owner");
}

async fn invite(by: &Client, email: &str, role: &str) -> Answer {
    by.post_json(
        &format!("{ORG}/invitations"),
        &json!({"email": email, "role": role}),
    )
    .await
}

/// `who` joins as `role`, invited by `owner`.
async fn join(owner: &Client, who: &Client, email: &str, role: &str) {
    let invited = invite(owner, email, role).await;
    assert_eq!(invited.status, 200, "{:?}", invited.body);
    let accepted = who
        .post_json("/api/v1/invitations/platform-team/accept", &json!({}))
        .await;
    assert_eq!(accepted.status, 200, "{:?}", accepted.body);
}

fn kinds(log: &Answer) -> Vec<String> {
    log.data()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn member_roles(details: &Value) -> Vec<(String, String)> {
    details["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["member"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn an_invitation_is_accepted_by_its_email_only(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    let bob = server.user("Bob@Example.com");
    let carol = server.user("carol@example.com");
    create_org(&alice).await;
    let taken = alice
        .post_json(
            "/api/v1/orgs",
            &json!({"slug": "platform-team", "name": "Again"}),
        )
        .await;
    assert_eq!(
        (taken.status, taken.body["code"].clone()),
        (409, json!("org_slug_taken"))
    );
    let bad = alice
        .post_json("/api/v1/orgs", &json!({"slug": "Not A Slug", "name": "x"}))
        .await;
    assert_eq!(bad.status, 400);

    let invited = invite(&alice, "BOB@example.com", "member").await;
    assert_eq!(invited.status, 200, "{:?}", invited.body);
    assert_eq!(invited.data()["email"], "bob@example.com");
    // Only the invited email sees and accepts it, in whatever case its identity comes.
    assert_eq!(carol.get("/api/v1/invitations").await.data(), &json!([]));
    let stolen = carol
        .post_json("/api/v1/invitations/platform-team/accept", &json!({}))
        .await;
    assert_eq!(
        (stolen.status, stolen.body["code"].clone()),
        (404, json!("invitation_not_found"))
    );
    let waiting = bob.get("/api/v1/invitations").await;
    assert_eq!(waiting.data()[0]["slug"], "platform-team");
    assert_eq!(waiting.data()[0]["invited_by"], "alice@example.com");
    let accepted = bob
        .post_json("/api/v1/invitations/platform-team/accept", &json!({}))
        .await;
    assert_eq!(accepted.status, 200, "{:?}", accepted.body);
    assert_eq!(accepted.data()["role"], "member");
    // Consumed: a second accept finds nothing.
    let again = bob
        .post_json("/api/v1/invitations/platform-team/accept", &json!({}))
        .await;
    assert_eq!(again.status, 404);

    let listed = bob.get("/api/v1/orgs").await;
    assert_eq!(listed.data()[0]["slug"], "platform-team");
    assert_eq!(listed.data()[0]["name"], "Platform team");
    let seen_by_bob = bob.get(ORG).await;
    assert_eq!(
        member_roles(seen_by_bob.data()),
        [
            ("Bob@Example.com".to_owned(), "member".to_owned()),
            ("alice@example.com".to_owned(), "owner".to_owned())
        ]
    );
    assert_eq!(seen_by_bob.data()["invitations"], json!(null));
    assert_eq!(alice.get(ORG).await.data()["invitations"], json!([]));

    assert!(
        kinds(&alice.get("/api/v1/audit?limit=50").await)
            .starts_with(&["org_invited".to_owned(), "org_created".to_owned()])
    );
    assert_eq!(
        kinds(&bob.get("/api/v1/audit?limit=50").await),
        ["org_joined"]
    );
}

async fn roles_decide_who_manages_whom(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    let adam = server.user("adam@example.com");
    let mia = server.user("mia@example.com");
    create_org(&alice).await;
    join(&alice, &adam, "adam@example.com", "admin").await;
    join(&adam, &mia, "mia@example.com", "member").await;

    // An admin manages members but not ownership.
    let as_owner = invite(&adam, "eve@example.com", "owner").await;
    assert_eq!(
        (as_owner.status, as_owner.body["code"].clone()),
        (403, json!("forbidden"))
    );
    let to_auditor = adam
        .put_json(
            &format!("{ORG}/members/mia@example.com"),
            &json!({"role": "auditor"}),
        )
        .await;
    assert_eq!(to_auditor.status, 200, "{:?}", to_auditor.body);
    let demote_owner = adam
        .put_json(
            &format!("{ORG}/members/alice@example.com"),
            &json!({"role": "member"}),
        )
        .await;
    assert_eq!(demote_owner.status, 403);
    let remove_owner = adam
        .delete(&format!("{ORG}/members/alice@example.com"))
        .await;
    assert_eq!(remove_owner.status, 403);
    // A member (here an auditor) manages nothing and sees no invitations.
    assert_eq!(invite(&mia, "eve@example.com", "member").await.status, 403);
    assert_eq!(
        mia.delete(&format!("{ORG}/members/adam@example.com"))
            .await
            .status,
        403
    );
    let pending = invite(&adam, "eve@example.com", "member").await;
    assert_eq!(pending.status, 200);
    assert_eq!(mia.get(ORG).await.data()["invitations"], json!(null));
    let withdrawn = adam
        .delete(&format!("{ORG}/invitations/eve@example.com"))
        .await;
    assert_eq!(withdrawn.status, 200, "{:?}", withdrawn.body);
    assert_eq!(alice.get(ORG).await.data()["invitations"], json!([]));
    // Anyone may leave; an unknown member is named as such.
    assert_eq!(
        mia.delete(&format!("{ORG}/members/mia@example.com"))
            .await
            .status,
        200
    );
    assert_eq!(mia.get(ORG).await.status, 404);
    let ghost = alice
        .delete(&format!("{ORG}/members/ghost@example.com"))
        .await;
    assert_eq!(
        (ghost.status, ghost.body["code"].clone()),
        (404, json!("member_not_found"))
    );
}

async fn the_last_owner_cannot_leave_nor_be_demoted(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    let bob = server.user("bob@example.com");
    create_org(&alice).await;
    join(&alice, &bob, "bob@example.com", "member").await;

    let leave = alice
        .delete(&format!("{ORG}/members/alice@example.com"))
        .await;
    assert_eq!(
        (leave.status, leave.body["code"].clone()),
        (409, json!("last_owner"))
    );
    let demote = alice
        .put_json(
            &format!("{ORG}/members/alice@example.com"),
            &json!({"role": "admin"}),
        )
        .await;
    assert_eq!(demote.body["code"], "last_owner");

    // With a second owner, the first may go.
    let promote = alice
        .put_json(
            &format!("{ORG}/members/bob@example.com"),
            &json!({"role": "owner"}),
        )
        .await;
    assert_eq!(promote.status, 200, "{:?}", promote.body);
    assert_eq!(
        alice
            .delete(&format!("{ORG}/members/alice@example.com"))
            .await
            .status,
        200
    );
    let remaining = bob.get(ORG).await;
    assert_eq!(
        member_roles(remaining.data()),
        [("bob@example.com".to_owned(), "owner".to_owned())]
    );
    assert_eq!(
        bob.delete(&format!("{ORG}/members/bob@example.com"))
            .await
            .body["code"],
        "last_owner"
    );
}

/// Two owners demote each other at the same moment, several times over: never both.
async fn owners_demoting_each_other_at_once_leave_an_owner(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    let bob = server.user("bob@example.com");
    create_org(&alice).await;
    join(&alice, &bob, "bob@example.com", "owner").await;
    for round in 0..5 {
        let answers = join_all([
            alice.put_json(
                &format!("{ORG}/members/bob@example.com"),
                &json!({"role": "member"}),
            ),
            bob.put_json(
                &format!("{ORG}/members/alice@example.com"),
                &json!({"role": "member"}),
            ),
        ])
        .await;
        let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        let viewer = if answers[0].status == 200 {
            &alice
        } else {
            &bob
        };
        let owners: Vec<(String, String)> = member_roles(viewer.get(ORG).await.data())
            .into_iter()
            .filter(|(_, role)| role == "owner")
            .collect();
        assert_eq!(
            owners.len(),
            1,
            "round {round}: {statuses:?}, owners {owners:?}"
        );
        assert!(statuses.contains(&200), "round {round}: {statuses:?}");
        // Make both owners again for the next round.
        let (owner, other) = if owners[0].0 == "alice@example.com" {
            (&alice, "bob@example.com")
        } else {
            (&bob, "alice@example.com")
        };
        let restored = owner
            .put_json(&format!("{ORG}/members/{other}"), &json!({"role": "owner"}))
            .await;
        assert_eq!(restored.status, 200, "{:?}", restored.body);
    }
}

async fn a_non_member_learns_nothing_on_any_route(backend: Backend) {
    let server = start(backend);
    let alice = server.user("alice@example.com");
    let mallory = server.user("mallory@example.com");
    create_org(&alice).await;
    invite(&alice, "bob@example.com", "member").await;
    let before = alice.get(ORG).await.data().clone();
    for missing in ["/api/v1/orgs/platform-team", "/api/v1/orgs/no-such-org"] {
        let answers = [
            mallory.get(missing).await,
            mallory
                .post_json(
                    &format!("{missing}/invitations"),
                    &json!({"email": "mallory2@example.com", "role": "owner"}),
                )
                .await,
            mallory
                .delete(&format!("{missing}/invitations/bob@example.com"))
                .await,
            mallory
                .put_json(
                    &format!("{missing}/members/alice@example.com"),
                    &json!({"role": "member"}),
                )
                .await,
            mallory
                .delete(&format!("{missing}/members/alice@example.com"))
                .await,
        ];
        for answer in answers {
            assert_eq!(
                (answer.status, answer.message()),
                (404, "Organization not found"),
                "{missing}: {:?}",
                answer.body
            );
        }
    }
    assert_eq!(mallory.get("/api/v1/orgs").await.data(), &json!([]));
    assert_eq!(alice.get(ORG).await.data(), &before);
}
