#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Browser sign-in (`/api/v1/auth/*`) end to end: the real api-fn binary against a small fake
//! OpenID Connect provider that this test starts (discovery, authorize, token, userinfo,
//! JWKS, ES256 ID tokens, single-use codes, PKCE checked). The test plays the browser:
//! it follows redirects and carries cookies by hand, so every hop is visible.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const CLIENT_ID: &str = "sushi-test-client";
const CLIENT_SECRET: &str = "fake-client-secret";

/// Who the fake provider says is signing in, and how it misbehaves.
#[derive(Clone)]
struct User {
    sub: String,
    email: String,
    email_verified: bool,
    /// Put the email in the ID token (else only userinfo has it).
    email_in_id_token: bool,
    /// Sign the ID token with this `iss` instead of the provider's own.
    wrong_issuer: Option<String>,
}

impl User {
    fn verified(email: &str) -> Self {
        Self {
            sub: format!("sub-{email}"),
            email: email.to_owned(),
            email_verified: true,
            email_in_id_token: true,
            wrong_issuer: None,
        }
    }
}

struct Grant {
    challenge: String,
    nonce: String,
    redirect_uri: String,
    user: User,
    used: bool,
}

struct Fake {
    issuer: String,
    user: User,
    codes: HashMap<String, Grant>,
    access_tokens: HashMap<String, User>,
    key: EncodingKey,
    jwk: Value,
}

type Shared = Arc<Mutex<Fake>>;

/// A P-256 key pair made by openssl: the signing key and its public JWK.
fn ec_key() -> (EncodingKey, Value) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ec.pem");
    let made = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let der = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&key)
        .output()
        .unwrap()
        .stdout;
    // SubjectPublicKeyInfo for P-256 ends with the 65-byte uncompressed point 04 || X || Y.
    let point = &der[der.len() - 65..];
    assert_eq!(point[0], 4);
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": "fake-1", "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    });
    let pem = std::fs::read(&key).unwrap();
    (EncodingKey::from_ec_pem(&pem).unwrap(), jwk)
}

fn random() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

async fn discovery(State(fake): State<Shared>) -> axum::Json<Value> {
    let issuer = fake.lock().unwrap().issuer.clone();
    axum::Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
    }))
}

/// Approves at once (the "user" is whoever `Fake::user` says) and redirects back.
async fn authorize(
    State(fake): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("client_id") != CLIENT_ID
        || get("response_type") != "code"
        || get("code_challenge_method") != "S256"
        || get("code_challenge").is_empty()
        || get("state").is_empty()
    {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    let code = random();
    let mut fake = fake.lock().unwrap();
    let user = fake.user.clone();
    fake.codes.insert(
        code.clone(),
        Grant {
            challenge: get("code_challenge"),
            nonce: get("nonce"),
            redirect_uri: get("redirect_uri"),
            user,
            used: false,
        },
    );
    let mut target = reqwest::Url::parse(&get("redirect_uri")).unwrap();
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &get("state"));
    Redirect::to(target.as_str()).into_response()
}

fn oauth_error(error: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": error })),
    )
        .into_response()
}

async fn token(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return oauth_error("invalid_client");
    }
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    if get("grant_type") != "authorization_code" {
        return oauth_error("unsupported_grant_type");
    }
    let mut fake = fake.lock().unwrap();
    let issuer = fake.issuer.clone();
    let Some(grant) = fake.codes.get_mut(&get("code")) else {
        return oauth_error("invalid_grant");
    };
    // Single use: a replayed code fails (RFC 6749 4.1.2).
    if grant.used {
        return oauth_error("invalid_grant");
    }
    grant.used = true;
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(get("code_verifier").as_bytes()));
    if challenge != grant.challenge || get("redirect_uri") != grant.redirect_uri {
        return oauth_error("invalid_grant");
    }
    let user = grant.user.clone();
    let nonce = grant.nonce.clone();
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = json!({
        "iss": user.wrong_issuer.clone().unwrap_or(issuer),
        "aud": CLIENT_ID,
        "sub": user.sub,
        "nonce": nonce,
        "iat": now,
        "exp": now + 300,
    });
    if user.email_in_id_token {
        claims["email"] = json!(user.email);
        claims["email_verified"] = json!(user.email_verified);
    }
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("fake-1".to_owned());
    let id_token = jsonwebtoken::encode(&header, &claims, &fake.key).unwrap();
    let access_token = random();
    fake.access_tokens.insert(access_token.clone(), user);
    axum::Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": id_token,
    }))
    .into_response()
}

use sha2::Digest;

async fn userinfo(State(fake): State<Shared>, headers: HeaderMap) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    match fake.lock().unwrap().access_tokens.get(token) {
        Some(user) => axum::Json(json!({
            "sub": user.sub,
            "email": user.email,
            "email_verified": user.email_verified,
        }))
        .into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

/// GitHub's token endpoint: form-encoded client credentials, errors as 200 + `error`.
async fn github_token(
    State(fake): State<Shared>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    if get("client_id") != CLIENT_ID || get("client_secret") != CLIENT_SECRET {
        return axum::Json(json!({ "error": "incorrect_client_credentials" })).into_response();
    }
    let mut fake = fake.lock().unwrap();
    let Some(grant) = fake.codes.get_mut(&get("code")).filter(|g| !g.used) else {
        return axum::Json(json!({ "error": "bad_verification_code" })).into_response();
    };
    grant.used = true;
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(get("code_verifier").as_bytes()));
    if challenge != grant.challenge {
        return axum::Json(json!({ "error": "bad_verification_code" })).into_response();
    }
    let user = grant.user.clone();
    let access_token = random();
    fake.access_tokens.insert(access_token.clone(), user);
    axum::Json(
        json!({ "access_token": access_token, "token_type": "bearer", "scope": "user:email" }),
    )
    .into_response()
}

/// GitHub's `/user/emails`: the user's primary address plus an unrelated verified one.
async fn github_emails(State(fake): State<Shared>, headers: HeaderMap) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    match fake.lock().unwrap().access_tokens.get(token) {
        Some(user) => axum::Json(json!([
            { "email": "secondary@example.com", "primary": false, "verified": true },
            { "email": user.email, "primary": true, "verified": user.email_verified },
        ]))
        .into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn jwks(State(fake): State<Shared>) -> axum::Json<Value> {
    axum::Json(json!({ "keys": [fake.lock().unwrap().jwk.clone()] }))
}

/// Start the fake provider on a loopback port; it lives as long as the test's runtime.
async fn start_provider() -> Shared {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let (key, jwk) = ec_key();
    let fake = Arc::new(Mutex::new(Fake {
        issuer,
        user: User::verified("olivia@example.com"),
        codes: HashMap::new(),
        access_tokens: HashMap::new(),
        key,
        jwk,
    }));
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/userinfo", get(userinfo))
        .route("/jwks", get(jwks))
        .route("/login/oauth/authorize", get(authorize))
        .route("/login/oauth/access_token", post(github_token))
        .route("/user/emails", get(github_emails))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    fake
}

struct Site {
    _process: testkit::Process,
    _data_dir: tempfile::TempDir,
    base: String,
    http: reqwest::Client,
}

fn start_api(issuer: Option<&str>, extra: &[(&str, &str)]) -> Site {
    let data_dir = tempfile::tempdir().unwrap();
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("JWT_SECRET".into(), testkit::JWT_SECRET.into());
    env.insert("DATA_DIR".into(), data_dir.path().display().to_string());
    if let Some(issuer) = issuer {
        env.insert("OIDC_ISSUER_URL".into(), issuer.into());
        env.insert("OIDC_CLIENT_ID".into(), CLIENT_ID.into());
        env.insert("OIDC_CLIENT_SECRET".into(), CLIENT_SECRET.into());
    }
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    let process = testkit::Process::start(env!("CARGO_BIN_EXE_api-fn"), &env);
    Site {
        base: process.base_url.clone(),
        _process: process,
        _data_dir: data_dir,
        http: edge::tls::http_client()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .unwrap(),
    }
}

/// The `Set-Cookie` headers of a response, by cookie name.
fn set_cookies(response: &reqwest::Response) -> HashMap<String, String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .map(|line| (line.split('=').next().unwrap().to_owned(), line))
        .collect()
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

async fn envelope(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "application/json"
    );
    (status, response.json().await.unwrap())
}

/// One sign-in up to the provider's redirect back: (callback URL, state cookie value,
/// the authorization URL we were sent to).
async fn begin(site: &Site) -> (String, String, String) {
    begin_with(site, "oidc").await
}

async fn begin_with(site: &Site, provider: &str) -> (String, String, String) {
    let response = site
        .http
        .get(format!("{}/api/v1/auth/url?to={provider}", site.base))
        .send()
        .await
        .unwrap();
    let cookies = set_cookies(&response);
    let state_cookie = cookies.get("sushi_signin").expect("state cookie").clone();
    assert!(state_cookie.contains("HttpOnly"), "{state_cookie}");
    assert!(state_cookie.contains("SameSite=Lax"), "{state_cookie}");
    assert!(state_cookie.contains("Path=/api/v1/auth"), "{state_cookie}");
    let (status, body) = envelope(response).await;
    assert_eq!(status, 200, "{body}");
    let authorize = body["data"]["url"].as_str().unwrap().to_owned();
    let redirect = site.http.get(&authorize).send().await.unwrap();
    assert_eq!(redirect.status(), 303, "fake provider should redirect back");
    let callback = redirect.headers()["location"].to_str().unwrap().to_owned();
    (callback, cookie_value(&state_cookie), authorize)
}

async fn finish(site: &Site, callback: &str, state_cookie: Option<&str>) -> reqwest::Response {
    let mut request = site.http.get(callback);
    if let Some(value) = state_cookie {
        request = request.header("cookie", format!("sushi_signin={value}"));
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_sign_in_sets_a_session_cookie_the_api_accepts() {
    let fake = start_provider().await;
    let issuer = fake.lock().unwrap().issuer.clone();
    let site = start_api(Some(&issuer), &[("SESSION_TTL_SECS", "3600")]);

    let providers = site
        .http
        .get(format!("{}/api/v1/auth/providers", site.base))
        .send()
        .await
        .unwrap();
    let (_, providers) = envelope(providers).await;
    assert_eq!(providers["data"]["providers"][0]["id"], "oidc");
    assert_eq!(
        providers["data"]["dev"], false,
        "api-fn never offers dev sign-in by default"
    );

    let (callback, state_cookie, authorize) = begin(&site).await;
    assert!(authorize.starts_with(&format!("{issuer}/authorize?")));
    for part in [
        "code_challenge_method=S256",
        "code_challenge=",
        "nonce=",
        "state=",
    ] {
        assert!(authorize.contains(part), "{part} missing from {authorize}");
    }
    assert!(callback.starts_with(&format!("{}/api/v1/auth/callback?", site.base)));

    let response = finish(&site, &callback, Some(&state_cookie)).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/");
    let cookies = set_cookies(&response);
    let session = &cookies["jwt"];
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=3600"] {
        assert!(
            session.contains(attribute),
            "{attribute} missing: {session}"
        );
    }
    assert!(!session.contains("Secure"), "plain http on loopback");
    assert!(
        cookies["sushi_signin"].contains("Max-Age=0"),
        "state cookie cleared"
    );

    let jwt = cookie_value(session);
    let as_user = |path: &str| {
        site.http
            .get(format!("{}{path}", site.base))
            .header("cookie", format!("jwt={jwt}"))
            .send()
    };
    let (status, me) = envelope(as_user("/api/v1/auth/me").await.unwrap()).await;
    assert_eq!(
        (status, me["data"]["email"].as_str()),
        (200, Some("olivia@example.com"))
    );
    let (status, _) = envelope(as_user("/api/v1/machines").await.unwrap()).await;
    assert_eq!(status, 200);

    let logout = site
        .http
        .post(format!("{}/api/v1/auth/logout", site.base))
        .send()
        .await
        .unwrap();
    let cleared = set_cookies(&logout)["jwt"].clone();
    assert!(
        cleared.starts_with("jwt=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let (status, body) = envelope(logout).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (200, Some("Signed out successfully"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_from_userinfo_is_used_when_the_id_token_has_none() {
    let fake = start_provider().await;
    let issuer = fake.lock().unwrap().issuer.clone();
    fake.lock().unwrap().user = User {
        email_in_id_token: false,
        ..User::verified("uma@example.com")
    };
    let site = start_api(Some(&issuer), &[]);
    let (callback, state_cookie, _) = begin(&site).await;
    let response = finish(&site, &callback, Some(&state_cookie)).await;
    assert_eq!(response.status(), 303);
    let jwt = cookie_value(&set_cookies(&response)["jwt"]);
    let me = site
        .http
        .get(format!("{}/api/v1/auth/me", site.base))
        .header("cookie", format!("jwt={jwt}"))
        .send()
        .await
        .unwrap();
    assert_eq!(envelope(me).await.1["data"]["email"], "uma@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_or_missing_state_is_refused() {
    let fake = start_provider().await;
    let issuer = fake.lock().unwrap().issuer.clone();
    let site = start_api(Some(&issuer), &[]);
    let (callback, state_cookie, _) = begin(&site).await;
    let mut forged = reqwest::Url::parse(&callback).unwrap();
    let code = forged
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    forged
        .query_pairs_mut()
        .clear()
        .append_pair("code", &code)
        .append_pair("state", "forged-by-an-attacker");
    let response = finish(&site, forged.as_str(), Some(&state_cookie)).await;
    assert!(!set_cookies(&response).contains_key("jwt"));
    let (status, body) = envelope(response).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "Sign-in state does not match; start the sign-in again"
    );

    // The right state without the cookie it was bound to (another browser): refused too.
    let response = finish(&site, &callback, None).await;
    let (status, body) = envelope(response).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "Sign-in session is missing or expired; start the sign-in again"
    );

    // A state cookie signed with another key is not ours.
    let response = finish(&site, &callback, Some("eyJhbGciOiJIUzI1NiJ9.e30.AAAA")).await;
    assert_eq!(envelope(response).await.0, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_code_is_refused() {
    let fake = start_provider().await;
    let issuer = fake.lock().unwrap().issuer.clone();
    let site = start_api(Some(&issuer), &[]);
    let (callback, state_cookie, _) = begin(&site).await;
    assert_eq!(
        finish(&site, &callback, Some(&state_cookie)).await.status(),
        303
    );
    // An attacker who captured both the callback URL and the state cookie replays them.
    let replay = finish(&site, &callback, Some(&state_cookie)).await;
    assert!(!set_cookies(&replay).contains_key("jwt"));
    let (status, body) = envelope(replay).await;
    assert_eq!(status, 401);
    assert_eq!(
        body["message"],
        "The provider rejected the authorization code (already used or expired); sign in again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverified_email_is_refused() {
    let fake = start_provider().await;
    let issuer = fake.lock().unwrap().issuer.clone();
    for in_id_token in [true, false] {
        fake.lock().unwrap().user = User {
            email_verified: false,
            email_in_id_token: in_id_token,
            ..User::verified("mallory@example.com")
        };
        let site = start_api(Some(&issuer), &[]);
        let (callback, state_cookie, _) = begin(&site).await;
        let response = finish(&site, &callback, Some(&state_cookie)).await;
        assert!(!set_cookies(&response).contains_key("jwt"));
        let (status, body) = envelope(response).await;
        assert_eq!(status, 403, "email in ID token: {in_id_token}");
        assert_eq!(
            body["message"],
            "Your email address is not verified with the provider"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_from_another_issuer_is_refused() {
    let fake = start_provider().await;
    let issuer = fake.lock().unwrap().issuer.clone();
    fake.lock().unwrap().user = User {
        wrong_issuer: Some("https://evil.example".to_owned()),
        ..User::verified("olivia@example.com")
    };
    let site = start_api(Some(&issuer), &[]);
    let (callback, state_cookie, _) = begin(&site).await;
    let response = finish(&site, &callback, Some(&state_cookie)).await;
    assert!(!set_cookies(&response).contains_key("jwt"));
    let (status, body) = envelope(response).await;
    assert_eq!(status, 401);
    assert_eq!(
        body["message"],
        "The ID token was issued by another issuer than the configured provider"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_error_and_an_unknown_provider_are_reported() {
    let fake = start_provider().await;
    let issuer = fake.lock().unwrap().issuer.clone();
    let site = start_api(Some(&issuer), &[]);
    let (callback, state_cookie, _) = begin(&site).await;
    let state = reqwest::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let denied = format!(
        "{}/api/v1/auth/callback?error=access_denied&state={state}",
        site.base
    );
    let (status, body) = envelope(finish(&site, &denied, Some(&state_cookie)).await).await;
    assert_eq!(status, 401);
    assert_eq!(
        body["message"],
        "The provider did not complete the sign-in: access_denied"
    );

    let unknown = site
        .http
        .get(format!("{}/api/v1/auth/url?to=myspace", site.base))
        .send()
        .await
        .unwrap();
    let (status, body) = envelope(unknown).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "Unknown sign-in provider 'myspace'; use one of: oidc"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_sign_in_is_off_unless_enabled_and_only_in_embedded_mode() {
    // api-fn's default: no dev sign-in.
    let site = start_api(None, &[]);
    let response = site
        .http
        .post(format!("{}/api/v1/auth/dev", site.base))
        .json(&json!({"email": "dev@example.com"}))
        .send()
        .await
        .unwrap();
    let (status, body) = envelope(response).await;
    assert_eq!(status, 404);
    assert_eq!(
        body["message"],
        "Development sign-in is not enabled on this server"
    );

    // Enabled explicitly on the embedded store: works, and only with a JSON body.
    let site = start_api(None, &[("SUSHI_DEV_SIGNIN", "true")]);
    let form = site
        .http
        .post(format!("{}/api/v1/auth/dev", site.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=dev@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        envelope(form).await.0,
        415,
        "a cross-site form cannot sign anyone in"
    );
    let response = site
        .http
        .post(format!("{}/api/v1/auth/dev", site.base))
        .json(&json!({"email": "dev@example.com"}))
        .send()
        .await
        .unwrap();
    let session = set_cookies(&response)["jwt"].clone();
    assert!(!session.contains("Secure"), "plain http: {session}");
    let jwt = cookie_value(&session);
    assert_eq!(envelope(response).await.0, 200);
    // Behind a TLS-terminating proxy the session cookie is Secure.
    let proxied = site
        .http
        .post(format!("{}/api/v1/auth/dev", site.base))
        .header("x-forwarded-proto", "https")
        .json(&json!({"email": "dev@example.com"}))
        .send()
        .await
        .unwrap();
    let secure = set_cookies(&proxied)["jwt"].clone();
    assert!(secure.ends_with("; Secure"), "{secure}");
    let me = site
        .http
        .get(format!("{}/api/v1/auth/me", site.base))
        .header("cookie", format!("jwt={jwt}"))
        .send()
        .await
        .unwrap();
    assert_eq!(envelope(me).await.1["data"]["email"], "dev@example.com");

    // With cloud backends configured, asking for it stops the process at start.
    let data_dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_api-fn"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", "0")
        .env("JWT_SECRET", testkit::JWT_SECRET)
        .env("DATA_DIR", data_dir.path())
        .env("DYNAMODB_TABLE", "sushi-prod")
        .env("KMS_KEY_ID", "alias/sushi-prod")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("SUSHI_DEV_SIGNIN", "true")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("SUSHI_DEV_SIGNIN cannot be enabled with DYNAMODB_TABLE/KMS_KEY_ID"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_sign_in_uses_the_verified_primary_email() {
    let fake = start_provider().await;
    let base = fake.lock().unwrap().issuer.clone();
    let github = [
        ("GITHUB_CLIENT_ID", CLIENT_ID),
        ("GITHUB_CLIENT_SECRET", CLIENT_SECRET),
        ("GITHUB_URL", base.as_str()),
        ("GITHUB_API_URL", base.as_str()),
    ];
    fake.lock().unwrap().user = User::verified("gh-user@example.com");
    let site = start_api(None, &github);
    let (callback, state_cookie, authorize) = begin_with(&site, "github").await;
    assert!(authorize.starts_with(&format!("{base}/login/oauth/authorize?")));
    assert!(authorize.contains("code_challenge_method=S256"));
    let response = finish(&site, &callback, Some(&state_cookie)).await;
    assert_eq!(response.status(), 303);
    let jwt = cookie_value(&set_cookies(&response)["jwt"]);
    let me = site
        .http
        .get(format!("{}/api/v1/auth/me", site.base))
        .header("cookie", format!("jwt={jwt}"))
        .send()
        .await
        .unwrap();
    assert_eq!(envelope(me).await.1["data"]["email"], "gh-user@example.com");

    // An unverified primary address is refused, even with another verified address.
    fake.lock().unwrap().user = User {
        email_verified: false,
        ..User::verified("gh-unverified@example.com")
    };
    let (callback, state_cookie, _) = begin_with(&site, "github").await;
    let (status, body) = envelope(finish(&site, &callback, Some(&state_cookie)).await).await;
    assert_eq!(status, 403);
    assert_eq!(
        body["message"],
        "Your email address is not verified with the provider"
    );
}
