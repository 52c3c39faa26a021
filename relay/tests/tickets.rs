//! Tickets are single use, short lived and bound to their user (a browser must present the
//! owner's cookie); the terminal WebSocket only opens from allowed Origins; wrong master
//! passwords are limited to one budget per user, however many are tried at once and wherever.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use domain::requests::{FromJson, MasterPasswordChange};
use domain::{DomainError, Identity};
use serde_json::json;
use testkit::relay_world::{self, ALLOWED_ORIGIN, MASTER_PASSWORD, RelayWorld, STEP};
use testkit::ws::Terminal;

const RELAY: &str = env!("CARGO_BIN_EXE_relay");

async fn refused_with(base: &str, ticket: &str, headers: &[(&str, &str)]) -> u16 {
    let mut term = Terminal::open(base, ticket, headers).await.unwrap();
    term.expect_close(STEP).await.0
}

#[tokio::test]
async fn a_ticket_opens_one_terminal_only() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("reuse").await;
    let id = gw.password_machine(&email).await;
    let ticket = relay_world::ticket(&relay.base_url, &email, id).await;
    let browser = relay_world::browser(&email);
    let origin = browser.headers();
    let mut first = Terminal::open(&relay.base_url, &ticket, &origin)
        .await
        .unwrap();
    first.run("echo first-$((1+1))").await;
    first.expect_output("first-2", STEP).await;
    assert_eq!(refused_with(&relay.base_url, &ticket, &origin).await, 4002);
    // The first terminal is unaffected.
    first.run("echo still-$((2+2))").await;
    first.expect_output("still-4", STEP).await;
    first.close().await;
}

#[tokio::test]
async fn unknown_and_malformed_tickets_are_refused() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let random = uuid::Uuid::new_v4().to_string();
    assert_eq!(refused_with(&relay.base_url, &random, &[]).await, 4001);
    assert_eq!(refused_with(&relay.base_url, "not-a-uuid", &[]).await, 4001);
}

#[tokio::test]
async fn an_expired_ticket_is_refused_and_its_session_closed() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[("TICKET_BUCKET_SECS", "1")]);
    let email = gw.user("expired").await;
    let id = gw.password_machine(&email).await;
    let ticket = relay_world::ticket(&relay.base_url, &email, id).await;
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(refused_with(&relay.base_url, &ticket, &[]).await, 4001);
    let health = testkit::Client::new(&relay.base_url, None)
        .get("/relay/health")
        .await;
    assert_eq!(health.data()["sessions"], 0, "{:?}", health.body);
}

#[tokio::test]
async fn another_users_ticket_is_refused() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("owner").await;
    let id = gw.password_machine(&email).await;
    let ticket = relay_world::ticket(&relay.base_url, &email, id).await;
    let intruder = format!("jwt={}", testkit::token("intruder@sushi.test"));
    assert_eq!(
        refused_with(&relay.base_url, &ticket, &[("cookie", &intruder)]).await,
        4003
    );
    // Refusing the intruder did not burn the owner's ticket.
    let owner = format!("jwt={}", testkit::token(&email));
    let mut term = Terminal::open(&relay.base_url, &ticket, &[("cookie", &owner)])
        .await
        .unwrap();
    term.run("echo mine-$((3+3))").await;
    term.expect_output("mine-6", STEP).await;
    term.close().await;
}

#[tokio::test]
async fn a_websocket_from_a_foreign_origin_is_refused() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("origin").await;
    let id = gw.password_machine(&email).await;
    let ticket = relay_world::ticket(&relay.base_url, &email, id).await;
    let refused = Terminal::open(
        &relay.base_url,
        &ticket,
        &[("origin", "https://evil.example")],
    )
    .await
    .err()
    .expect("handshake must fail");
    match refused {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected HTTP 403, got {other}"),
    }
    // The refusal did not consume the ticket.
    let mut term = Terminal::open(
        &relay.base_url,
        &ticket,
        &relay_world::browser(&email).headers(),
    )
    .await
    .unwrap();
    term.run("echo ok-$((4+4))").await;
    term.expect_output("ok-8", STEP).await;
    term.close().await;
}

/// The relay-to-relay hop header carries an identity the next relay trusts; from outside, with
/// anything but a proof signed with the relays' shared key, it must be refused, not honoured.
#[tokio::test]
async fn a_relay_hop_without_a_valid_proof_is_refused() {
    use base64::Engine;
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("forged-hop").await;
    let id = gw.password_machine(&email).await;
    let ticket = relay_world::ticket(&relay.base_url, &email, id).await;
    let owner = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&email);
    let signed_with_a_guess = format!("{ticket}.{owner}.9999999999.{}", "A".repeat(43));
    for proof in ["1", signed_with_a_guess.as_str()] {
        let refused = Terminal::open(&relay.base_url, &ticket, &[("x-sushi-hop", proof)])
            .await
            .err()
            .expect("handshake must fail");
        match refused {
            tokio_tungstenite::tungstenite::Error::Http(response) => {
                assert_eq!(response.status(), 403, "{proof}")
            }
            other => panic!("expected HTTP 403, got {other}"),
        }
    }
    // The refusals did not consume the ticket.
    let mut term = Terminal::open(&relay.base_url, &ticket, &[]).await.unwrap();
    term.run("echo hop-$((5+5))").await;
    term.expect_output("hop-10", STEP).await;
    term.close().await;
}

#[tokio::test]
async fn repeated_wrong_master_passwords_are_rate_limited() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("limit").await;
    let id = gw.password_machine(&email).await;
    for _ in 0..5 {
        let answer = relay_world::connect(&relay.base_url, &email, id, "wrong password!").await;
        assert_eq!(answer.status, 401);
    }
    let answer = relay_world::connect(&relay.base_url, &email, id, MASTER_PASSWORD).await;
    assert_eq!(answer.status, 429, "{:?}", answer.body);
    assert!(answer.data()["retry_after_secs"].as_u64().unwrap() > 0);
}

/// Twenty guesses at once: an attempt is reserved before the password is checked, so at most
/// the budget (five) is ever evaluated; the rest are refused with 429 without running Argon2id.
#[tokio::test]
async fn parallel_wrong_guesses_are_evaluated_at_most_five_times() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[("MAX_CONNECTS_PER_USER", "50")]);
    let email = gw.user("parallel-guesses").await;
    let id = gw.password_machine(&email).await;
    let guesses =
        (0..20).map(|_| relay_world::connect(&relay.base_url, &email, id, "wrong password!"));
    let statuses: Vec<u16> = futures_util::future::join_all(guesses)
        .await
        .iter()
        .map(|answer| answer.status)
        .collect();
    let evaluated = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!((1..=5).contains(&evaluated), "{statuses:?}");
    assert_eq!(evaluated + limited, 20, "{statuses:?}");
}

/// The budget counts slots before the password is known, but a user with the right password
/// is never refused for opening many terminals at once: attempts beyond the free slots wait
/// for the ones in flight instead of answering 429.
#[tokio::test]
async fn parallel_connects_with_the_right_password_all_succeed() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[("MAX_CONNECTS_PER_USER", "50")]);
    let email = gw.user("parallel-tabs").await;
    let id = gw.password_machine(&email).await;
    let tabs = (0..12).map(|_| relay_world::connect(&relay.base_url, &email, id, MASTER_PASSWORD));
    let answers = futures_util::future::join_all(tabs).await;
    for answer in &answers {
        assert_eq!(answer.status, 200, "{:?}", answer.body);
    }
}

/// One budget per user wherever the guess is made: the API (a master-password change, here
/// through the same domain code api-fn runs) and any relay draw on the counter in the store.
#[tokio::test]
async fn the_guess_budget_is_shared_by_relays_and_the_api() {
    let gw = RelayWorld::new().await;
    let redis = testkit::service_env("SUSHI_TEST_REDIS_URL");
    let a = gw.start(RELAY, &[("REDIS_URL", &redis)]);
    let b = gw.start(RELAY, &[("REDIS_URL", &redis)]);
    let email = gw.user("shared-budget").await;
    let id = gw.password_machine(&email).await;
    for _ in 0..2 {
        let change = MasterPasswordChange::from_json(
            json!({"password": "a brand new password", "current_password": "wrong password!"}),
        )
        .unwrap();
        let refused = gw
            .machines
            .set_master_password(&Identity(email.clone()), &Default::default(), change)
            .await;
        assert!(
            matches!(refused, Err(DomainError::InvalidMasterPassword)),
            "{refused:?}"
        );
    }
    for relay in [&a, &b, &a] {
        let answer = relay_world::connect(&relay.base_url, &email, id, "wrong password!").await;
        assert_eq!(answer.status, 401);
    }
    let answer = relay_world::connect(&b.base_url, &email, id, MASTER_PASSWORD).await;
    assert_eq!(answer.status, 429, "{:?}", answer.body);
}

/// A ticket copied out of a URL (history, a screenshot, a proxy log) and opened from another
/// browser: the browser has the allowed Origin but not the owner's session cookie. Refused
/// before the ticket table, so the owner's own browser can still open it.
#[tokio::test]
async fn a_leaked_ticket_opened_by_another_browser_is_refused() {
    let gw = RelayWorld::new().await;
    let relay = gw.start(RELAY, &[]);
    let email = gw.user("leaked").await;
    let id = gw.password_machine(&email).await;
    let ticket = relay_world::ticket(&relay.base_url, &email, id).await;
    assert_eq!(
        refused_with(&relay.base_url, &ticket, &[("origin", ALLOWED_ORIGIN)]).await,
        4003
    );
    let browser = relay_world::browser(&email);
    let mut term = Terminal::open(&relay.base_url, &ticket, &browser.headers())
        .await
        .unwrap();
    term.run("echo owner-$((6+6))").await;
    term.expect_output("owner-12", STEP).await;
    term.close().await;
}
