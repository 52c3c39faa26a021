//! What a browser session (the `jwt` cookie) promises: a write is refused unless it is a
//! same-origin JSON request (so a cross-site form or page cannot act for the user), a request
//! carrying two session cookies is refused rather than guessed at, and signing out ends the
//! session for good, on both backends.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{Backend, machine_body};
use testkit::{Answer, Client};

/// `POST path` carrying `token` as the `jwt` cookie (no Authorization header), with `headers`.
async fn cookie_post(
    client: &Client,
    token: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: String,
) -> Answer {
    let mut request = client
        .http
        .post(client.url(path))
        .header("cookie", format!("jwt={token}"))
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    client.send(request).await
}

async fn cookie_get(client: &Client, token: &str, path: &str) -> Answer {
    client
        .send(
            client
                .http
                .get(client.url(path))
                .header("cookie", format!("jwt={token}")),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_and_non_json_cookie_writes_are_refused() {
    let server = common::start(Backend::Embedded);
    let email = "csrf-victim@example.com";
    let token = testkit::token(email);
    let user = server.user(email);
    assert_eq!(user.set_master_password("master pw").await.status, 200);
    let anonymous = &server.client;
    let body = machine_body("planted").to_string();
    let own_origin = server.client.base_url.clone();

    // The classic cross-site form: enctype=text/plain can carry a JSON-looking body.
    let form = cookie_post(
        anonymous,
        &token,
        "/api/v1/machine",
        &[("content-type", "text/plain")],
        body.clone(),
    )
    .await;
    assert_eq!(form.status, 415, "{:?}", form.body);
    assert_eq!(form.body["code"], "unsupported_media_type");
    let urlencoded = cookie_post(
        anonymous,
        &token,
        "/api/v1/machine",
        &[("content-type", "application/x-www-form-urlencoded")],
        body.clone(),
    )
    .await;
    assert_eq!(urlencoded.status, 415, "{:?}", urlencoded.body);

    // JSON, but from another site.
    let cross_origin = cookie_post(
        anonymous,
        &token,
        "/api/v1/machine",
        &[
            ("content-type", "application/json"),
            ("origin", "https://evil.example"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(cross_origin.status, 403, "{:?}", cross_origin.body);
    assert_eq!(cross_origin.body["code"], "cross_site_request");
    let fetch_metadata = cookie_post(
        anonymous,
        &token,
        "/api/v1/machine",
        &[
            ("content-type", "application/json"),
            ("sec-fetch-site", "cross-site"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(fetch_metadata.status, 403, "{:?}", fetch_metadata.body);

    // Nothing was created.
    let listed = user.get("/api/v1/machines").await;
    assert_eq!(
        listed.data().as_array().unwrap().len(),
        0,
        "{:?}",
        listed.body
    );

    // The web app's own request (same origin, JSON) works.
    let own = cookie_post(
        anonymous,
        &token,
        "/api/v1/machine",
        &[
            ("content-type", "application/json"),
            ("origin", own_origin.as_str()),
            ("sec-fetch-site", "same-origin"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(own.status, 200, "{:?}", own.body);

    // A JSON body needs the JSON content type from any client, bearer tokens included.
    let bearer_text = user
        .send(
            user.http
                .post(user.url("/api/v1/machine"))
                .header("content-type", "text/plain")
                .body(machine_body("bearer").to_string()),
        )
        .await;
    assert_eq!(bearer_text.status, 415, "{:?}", bearer_text.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_session_cookies_are_refused_not_first_wins() {
    let server = common::start(Backend::Embedded);
    let planted = testkit::token("attacker@example.com");
    let victim = testkit::token("victim@example.com");
    let client = &server.client;
    let both = client
        .send(
            client
                .http
                .get(client.url("/api/v1/machines"))
                .header("cookie", format!("jwt={planted}; jwt={victim}")),
        )
        .await;
    assert_eq!(both.status, 401, "{:?}", both.body);
    assert_eq!(both.body["code"], "unauthorized");
    // In two Cookie headers, too.
    let split = client
        .send(
            client
                .http
                .get(client.url("/api/v1/machines"))
                .header("cookie", format!("jwt={planted}"))
                .header("cookie", format!("jwt={victim}")),
        )
        .await;
    assert_eq!(split.status, 401, "{:?}", split.body);
    assert_eq!(
        cookie_get(client, &victim, "/api/v1/machines").await.status,
        200
    );
}

async fn signing_out_revokes_the_session_token(backend: Backend) {
    let server = common::start(backend);
    let token = testkit::token("leaving@example.com");
    let client = &server.client;
    assert_eq!(
        cookie_get(client, &token, "/api/v1/machines").await.status,
        200
    );
    let out = cookie_post(
        client,
        &token,
        "/api/v1/auth/logout",
        &[("content-type", "application/json")],
        String::new(),
    )
    .await;
    assert_eq!(out.status, 200, "{:?}", out.body);
    // The cookie a copy of the token was taken from is cleared, and the token itself is dead:
    // as a cookie and as a bearer token.
    let after = cookie_get(client, &token, "/api/v1/machines").await;
    assert_eq!(after.status, 401, "{:?}", after.body);
    let bearer = Client {
        token: Some(token.clone()),
        ..client.clone()
    };
    assert_eq!(bearer.get("/api/v1/machines").await.status, 401);
    // Another session of the same user is unaffected.
    let other = testkit::token("leaving@example.com");
    assert_eq!(
        cookie_get(client, &other, "/api/v1/machines").await.status,
        200
    );
}

on_both_backends!(signing_out_revokes_the_session_token);
