//! Every way a token can be wrong answers the same 401 envelope, and the JWKS (RS256/ES256)
//! mode works against a real HTTP key set served by the test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::HashMap;
use std::process::Command;

use base64::Engine;
use common::Backend;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use serde_json::{Value, json};
use testkit::{Client, JWT_SECRET};

fn hs256(claims: &Value, secret: &[u8]) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn assert_unauthorized(client: &Client, why: &str) {
    let answer = client.get("/api/v1/machines").await;
    assert_eq!(answer.status, 401, "{why}: {:?}", answer.body);
    assert_eq!(
        answer.body,
        json!({"status": "Unauthorized", "message": "Invalid or missing JWT token", "data": null,
               "code": "unauthorized"}),
        "{why}"
    );
}

#[tokio::test]
async fn every_bad_token_gets_the_401_envelope() {
    let server = common::start(Backend::Embedded);
    let base = &server.client;
    let now = get_current_timestamp();
    let with_token = |token: String| Client {
        token: Some(token),
        ..base.clone()
    };

    assert_unauthorized(base, "no token").await;
    assert_unauthorized(&with_token("garbage".into()), "malformed").await;
    assert_unauthorized(&with_token("a.b.c".into()), "malformed parts").await;
    assert_unauthorized(
        &with_token(hs256(
            &json!({"sub": "a", "exp": now - 120}),
            JWT_SECRET.as_bytes(),
        )),
        "expired",
    )
    .await;
    assert_unauthorized(
        &with_token(hs256(&json!({"sub": "a"}), JWT_SECRET.as_bytes())),
        "no exp",
    )
    .await;
    assert_unauthorized(
        &with_token(hs256(
            &json!({"sub": "a", "exp": now + 600, "nbf": now + 300}),
            JWT_SECRET.as_bytes(),
        )),
        "not yet valid",
    )
    .await;
    assert_unauthorized(
        &with_token(hs256(
            &json!({"sub": "a", "exp": now + 600}),
            b"some other secret",
        )),
        "wrong secret",
    )
    .await;
    assert_unauthorized(
        &with_token(hs256(&json!({"exp": now + 600}), JWT_SECRET.as_bytes())),
        "no identity claim",
    )
    .await;
    let none = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(json!({"sub": "a", "exp": now + 600}).to_string().as_bytes())
    );
    assert_unauthorized(&with_token(none), "alg none").await;
    // Our own sessions carry iss/aud "sushi", a jti and an email; each one missing is refused.
    let session = |extra: Value| {
        let mut claims = json!({"email": "alice@example.com", "exp": now + 600, "iss": "sushi",
                                "aud": "sushi", "jti": "j-1"});
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        hs256(&claims, JWT_SECRET.as_bytes())
    };
    assert_eq!(
        with_token(session(json!({})))
            .get("/api/v1/machines")
            .await
            .status,
        200
    );
    for (missing, why) in [
        (json!({"iss": null}), "session without iss"),
        (json!({"aud": null}), "session without aud"),
        (
            json!({"aud": "another-site"}),
            "session for another audience",
        ),
        (json!({"jti": null}), "session without jti"),
        (
            json!({"email": null, "sub": "alice@example.com"}),
            "session without email",
        ),
    ] {
        assert_unauthorized(&with_token(session(missing)), why).await;
    }
    // A valid session with a tampered payload.
    let good = testkit::token("alice@example.com");
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64url(
            json!({"email": "mallory@example.com", "exp": now + 600, "iss": "sushi",
                   "aud": "sushi", "jti": "j-2"})
            .to_string()
            .as_bytes()
        ),
        parts[2]
    );
    assert_unauthorized(&with_token(forged), "tampered payload").await;
    // RS256 is not accepted when only JWT_SECRET is configured.
    let (rsa_pem, _) = rsa_key();
    let rs = encode(
        &Header::new(Algorithm::RS256),
        &json!({"sub": "a", "exp": now + 600}),
        &EncodingKey::from_rsa_pem(rsa_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_unauthorized(&with_token(rs), "RS256 without JWKS").await;

    // The good token works from both places a browser or curl would put it.
    assert_eq!(
        with_token(good.clone())
            .get("/api/v1/machines")
            .await
            .status,
        200
    );
    let cookie = base
        .send(
            base.http
                .get(base.url("/api/v1/machines"))
                .header("cookie", format!("theme=dark; jwt={good}")),
        )
        .await;
    assert_eq!(cookie.status, 200);
    let wrong_scheme = base
        .send(
            base.http
                .get(base.url("/api/v1/machines"))
                .header("authorization", format!("Basic {good}")),
        )
        .await;
    assert_eq!(wrong_scheme.status, 401);
}

/// An RSA key pair made by openssl: (private PKCS#8 PEM, JWK public parameters n, e).
fn rsa_key() -> (String, (String, String)) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("rsa.pem");
    assert!(
        Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out"
            ])
            .arg(&key)
            .output()
            .unwrap()
            .status
            .success()
    );
    let modulus = Command::new("openssl")
        .args(["rsa", "-noout", "-modulus", "-in"])
        .arg(&key)
        .output()
        .unwrap();
    let hex = String::from_utf8(modulus.stdout)
        .unwrap()
        .trim()
        .trim_start_matches("Modulus=")
        .to_owned();
    let n: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    (
        std::fs::read_to_string(&key).unwrap(),
        (b64url(&n), b64url(&[1, 0, 1])),
    )
}

/// A P-256 key pair made by openssl: (private PKCS#8 PEM, JWK public parameters x, y).
fn ec_key() -> (String, (String, String)) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ec.pem");
    assert!(
        Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out"
            ])
            .arg(&key)
            .output()
            .unwrap()
            .status
            .success()
    );
    let der = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&key)
        .output()
        .unwrap()
        .stdout;
    // SubjectPublicKeyInfo for P-256 ends with the 65-byte uncompressed point 04 || X || Y.
    let point = &der[der.len() - 65..];
    assert_eq!(point[0], 4);
    (
        std::fs::read_to_string(&key).unwrap(),
        (b64url(&point[1..33]), b64url(&point[33..])),
    )
}

/// Serve `jwks` at http://127.0.0.1:PORT/jwks.json for the lifetime of the test.
async fn serve_jwks(jwks: Value) -> String {
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    format!("{}/jwks.json", testkit::serve(app).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_mode_accepts_rs256_and_es256_and_refuses_confusion() {
    let (rsa_pem, (n, e)) = rsa_key();
    let (ec_pem, (x, y)) = ec_key();
    let url = serve_jwks(json!({"keys": [
        {"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig", "n": n, "e": e},
        {"kty": "EC", "kid": "ec-1", "alg": "ES256", "use": "sig", "crv": "P-256", "x": x, "y": y},
    ]}))
    .await;
    let data_dir = tempfile::tempdir().unwrap();
    let env: HashMap<String, String> = [
        ("JWKS_URL", url.as_str()),
        ("JWT_ISSUER", "https://issuer.test"),
        ("JWT_AUDIENCE", "sushi"),
        ("DATA_DIR", data_dir.path().to_str().unwrap()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let process = testkit::Process::start(env!("CARGO_BIN_EXE_api-fn"), &env);
    let base = Client::new(&process.base_url, None);
    let now = get_current_timestamp();
    let claims = json!({"email": "carol@example.com", "email_verified": true, "exp": now + 600,
                        "iss": "https://issuer.test", "aud": "sushi"});
    let signed = |alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value| {
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_owned());
        Client {
            token: Some(encode(&header, claims, key).unwrap()),
            ..base.clone()
        }
    };
    let rsa = EncodingKey::from_rsa_pem(rsa_pem.as_bytes()).unwrap();
    let ec = EncodingKey::from_ec_pem(ec_pem.as_bytes()).unwrap();

    let ok = signed(Algorithm::RS256, "rsa-1", &rsa, &claims)
        .get("/api/v1/machines")
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(
        signed(Algorithm::ES256, "ec-1", &ec, &claims)
            .get("/api/v1/machines")
            .await
            .status,
        200
    );

    assert_unauthorized(
        &signed(Algorithm::RS256, "unknown-kid", &rsa, &claims),
        "unknown kid",
    )
    .await;
    assert_unauthorized(
        &signed(Algorithm::ES256, "rsa-1", &ec, &claims),
        "kid of another key type",
    )
    .await;
    assert_unauthorized(
        &signed(
            Algorithm::RS256,
            "rsa-1",
            &rsa,
            &json!({"email": "c", "exp": now + 600, "iss": "https://evil.test", "aud": "sushi"}),
        ),
        "wrong issuer",
    )
    .await;
    assert_unauthorized(
        &signed(
            Algorithm::RS256,
            "rsa-1",
            &rsa,
            &json!({"email": "c", "exp": now + 600, "iss": "https://issuer.test", "aud": "other"}),
        ),
        "wrong audience",
    )
    .await;
    assert_unauthorized(
        &signed(
            Algorithm::RS256,
            "rsa-1",
            &rsa,
            &json!({"email": "c", "exp": now - 600, "iss": "https://issuer.test", "aud": "sushi"}),
        ),
        "expired",
    )
    .await;
    // The classic confusion attack: HS256 "signed" with the RSA public key as the HMAC secret.
    let public_pem = Command::new("openssl")
        .args(["pkey", "-pubout"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(rsa_pem.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap()
        .stdout;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".to_owned());
    let confused = encode(&header, &claims, &EncodingKey::from_secret(&public_pem)).unwrap();
    assert_unauthorized(
        &Client {
            token: Some(confused),
            ..base.clone()
        },
        "HS256 with the RSA public key",
    )
    .await;
}

/// An api-fn trusting the JWKS at `url` for issuer `https://issuer.test`, audience `sushi`.
fn jwks_server(url: &str, data_dir: &std::path::Path) -> testkit::Process {
    let env: HashMap<String, String> = [
        ("JWKS_URL", url),
        ("JWT_ISSUER", "https://issuer.test"),
        ("JWT_AUDIENCE", "sushi"),
        ("DATA_DIR", data_dir.to_str().unwrap()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    testkit::Process::start(env!("CARGO_BIN_EXE_api-fn"), &env)
}

/// A user of the same issuer cannot become another user by claiming their email (unverified)
/// or a username equal to it, and a token minted for another site (audience) or by another
/// issuer is refused; a verified email and a bare subject are separate, working identities.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_identity_is_a_verified_email_or_an_issuer_scoped_subject() {
    let (rsa_pem, (n, e)) = rsa_key();
    let url = serve_jwks(json!({"keys": [
        {"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig", "n": n, "e": e},
    ]}))
    .await;
    let data_dir = tempfile::tempdir().unwrap();
    let process = jwks_server(&url, data_dir.path());
    let base = Client::new(&process.base_url, None);
    let rsa = EncodingKey::from_rsa_pem(rsa_pem.as_bytes()).unwrap();
    let now = get_current_timestamp();
    let as_claims = |extra: Value| {
        let mut claims = json!({"exp": now + 600, "iss": "https://issuer.test", "aud": "sushi"});
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("rsa-1".to_owned());
        Client {
            token: Some(encode(&header, &claims, &rsa).unwrap()),
            ..base.clone()
        }
    };

    // The victim, with a verified email, sets a master password (making the vault theirs).
    let victim = as_claims(json!({"sub": "victim-sub", "email": "victim@example.com",
                                  "email_verified": true}));
    assert_eq!(
        victim.set_master_password("victim master").await.status,
        200
    );
    assert_eq!(victim.get("/api/v1/machines").await.status, 200);

    assert_unauthorized(
        &as_claims(json!({"sub": "mallory-sub", "email": "victim@example.com"})),
        "email without email_verified",
    )
    .await;
    assert_unauthorized(
        &as_claims(json!({"sub": "mallory-sub", "email": "victim@example.com",
                          "email_verified": false})),
        "email_verified false",
    )
    .await;
    assert_unauthorized(
        &as_claims(json!({"username": "victim@example.com"})),
        "username only",
    )
    .await;
    assert_unauthorized(
        &as_claims(json!({"sub": "victim-sub", "email": "victim@example.com",
                          "email_verified": true, "aud": "another-site"})),
        "wrong audience",
    )
    .await;
    assert_unauthorized(
        &as_claims(json!({"sub": "victim-sub", "email": "victim@example.com",
                          "email_verified": true, "iss": "https://other-issuer.test"})),
        "other issuer",
    )
    .await;
    assert_unauthorized(
        &as_claims(json!({"sub": "victim-sub", "email": "victim@example.com",
                          "email_verified": true, "aud": null})),
        "no audience",
    )
    .await;

    // A subject-only token (a username beside it is ignored) is its own user: it has no
    // vault, so the victim's master password is not its own.
    let by_subject = as_claims(json!({"sub": "victim@example.com",
                                      "username": "victim@example.com"}));
    let vault = by_subject
        .put_json(
            "/api/v1/master-password",
            &json!({"password": "attacker master"}),
        )
        .await;
    assert_eq!(
        vault.status, 200,
        "a subject gets its own, new vault: {:?}",
        vault.body
    );
    let again = victim
        .put_json(
            "/api/v1/master-password",
            &json!({"password": "new victim master", "current_password": "victim master"}),
        )
        .await;
    assert_eq!(
        again.status, 200,
        "the victim's vault is untouched: {:?}",
        again.body
    );
}

#[test]
fn jwks_without_issuer_and_audience_refuses_to_start() {
    let data_dir = tempfile::tempdir().unwrap();
    for missing in ["JWT_ISSUER", "JWT_AUDIENCE"] {
        let mut env: HashMap<String, String> = [
            ("JWKS_URL", "http://127.0.0.1:9/jwks.json"),
            ("JWT_ISSUER", "https://issuer.test"),
            ("JWT_AUDIENCE", "sushi"),
            ("DATA_DIR", data_dir.path().to_str().unwrap()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        env.remove(missing);
        let (status, output) = testkit::run_expecting_exit(
            env!("CARGO_BIN_EXE_api-fn"),
            &env,
            std::time::Duration::from_secs(30),
        );
        assert!(!status.success(), "started without {missing}: {output}");
        assert!(output.contains(missing), "{output}");
    }
}

#[test]
fn a_short_jwt_secret_refuses_to_start() {
    let data_dir = tempfile::tempdir().unwrap();
    let env: HashMap<String, String> = [
        ("JWT_SECRET", "only-31-bytes-long-secret-value"),
        ("DATA_DIR", data_dir.path().to_str().unwrap()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let (status, output) = testkit::run_expecting_exit(
        env!("CARGO_BIN_EXE_api-fn"),
        &env,
        std::time::Duration::from_secs(30),
    );
    assert!(!status.success(), "started with a 31-byte secret: {output}");
    assert!(output.contains("JWT_SECRET"), "{output}");
}
