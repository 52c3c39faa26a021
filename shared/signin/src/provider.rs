//! The sign-in flow itself: build the provider's authorization URL (`start`), then turn the
//! callback's code into a verified email (`finish`).
//!
//! OIDC providers (generic and Google) are configured by discovery, fetched on first use and
//! cached for the process's life (a failed fetch is retried on the next sign-in); their ID
//! tokens are checked against the provider's JWKS through the same [`JwksCache`] that
//! verifies API tokens (bounded, rate-limited refresh). The discovery document's `issuer` must
//! equal the configured one, and so must every ID token's `iss` (OIDC Discovery 4.3, Core
//! 3.1.3.7). GitHub is plain OAuth 2.0 with PKCE; its verified primary email comes from the
//! REST API.
//!
//! Every provider response is read with a size cap and every call has a deadline; the
//! provider's error bodies are logged (they hold no secrets), codes and tokens never are.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Validation, decode, decode_header};
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::SignInError;
use crate::config::{DevSignIn, ProviderConfig, ProviderKind, SignInConfig};
use crate::session::{SessionMinter, valid_email};
use crate::state::{Attempt, StateSealer, constant_time_eq, pkce_challenge, random_token};
use domain::config::{Config, ConfigError};
use edge::auth::{AuthError, JwksCache};

const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
const MAX_CODE_LEN: usize = 2048;
const ID_TOKEN_LEEWAY_SECS: u64 = 60;

/// The callback's query string. No `Debug`: it carries the authorization code.
#[derive(Default, serde::Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

/// What a successful sign-in yields.
pub struct SignedIn {
    pub email: String,
    pub provider: &'static str,
    pub return_to: String,
}

struct Discovery {
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: Option<String>,
    jwks: JwksCache,
    /// `client_secret_basic` (the default) or `client_secret_post`.
    basic_auth: bool,
}

struct Provider {
    config: ProviderConfig,
    discovery: OnceCell<Arc<Discovery>>,
}

/// The configured sign-in: providers, state cookies and session minting.
pub struct SignIn {
    config: SignInConfig,
    providers: Vec<Provider>,
    sealer: Option<StateSealer>,
    minter: Option<SessionMinter>,
    http: reqwest::Client,
}

impl SignIn {
    /// Sign-in for this process's configuration. `local_default` enables development sign-in
    /// by default (the all-in-one `sushi` binary only), `loopback` says whether the server
    /// listens on loopback only (development sign-in needs it; see `config::dev_sign_in`).
    pub fn from_env(
        config: &Config,
        local_default: bool,
        loopback: bool,
    ) -> Result<Self, ConfigError> {
        let sign_in = SignInConfig::from_env(config, local_default, loopback)?;
        // Sessions are signed with the secret the authenticator verifies.
        let secret = config.hmac_secret()?;
        Self::new(
            sign_in,
            secret.as_ref().map(|s| s.expose_secret().as_bytes()),
        )
    }

    pub fn new(config: SignInConfig, session_secret: Option<&[u8]>) -> Result<Self, ConfigError> {
        if session_secret.is_none() && (config.dev.is_some() || !config.providers.is_empty()) {
            tracing::warn!(
                "sign-in providers are configured but JWT_SECRET is not: sign-in is off"
            );
        }
        let http = edge::tls::http_client()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("sushi-sign-in")
            .build()
            .map_err(|e| ConfigError(format!("sign-in HTTP client: {e}")))?;
        let ttl = config.session_ttl.as_secs();
        let mut config = config;
        let providers = std::mem::take(&mut config.providers)
            .into_iter()
            .map(|config| Provider {
                config,
                discovery: OnceCell::new(),
            })
            .collect();
        Ok(Self {
            sealer: session_secret.map(StateSealer::new),
            minter: session_secret.map(|s| SessionMinter::new(s, ttl)),
            config,
            providers,
            http,
        })
    }

    /// `(id, label)` of every provider a person can choose.
    pub fn providers(&self) -> Vec<(&'static str, &str)> {
        if self.minter.is_none() {
            return Vec::new();
        }
        self.providers
            .iter()
            .map(|p| (p.config.kind.id(), p.config.label.as_str()))
            .collect()
    }

    /// Development sign-in, when it passed its gate and sessions can be signed.
    pub fn dev(&self) -> Option<DevSignIn> {
        self.minter.as_ref().and(self.config.dev)
    }

    pub fn public_url(&self) -> Option<&str> {
        self.config.public_url.as_deref()
    }

    /// Should cookies be `Secure`? When the public URL is https, or the request came over
    /// https (directly or per the proxy's `X-Forwarded-Proto`).
    pub fn secure_cookies(&self, request_is_https: bool) -> bool {
        self.config.secure_cookies || request_is_https
    }

    fn minter(&self) -> Result<&SessionMinter, SignInError> {
        self.minter.as_ref().ok_or(SignInError::NotConfigured(
            "sessions need JWT_SECRET (this deployment verifies tokens by JWKS only)",
        ))
    }

    /// `Set-Cookie` value for a fresh session of `email`.
    pub fn session_cookie(
        &self,
        email: &str,
        idp: &str,
        secure: bool,
    ) -> Result<String, SignInError> {
        let minter = self.minter()?;
        let token = minter.mint(email, idp)?;
        Ok(minter.cookie(&token, secure))
    }

    /// Development sign-in: a session for any well-formed email. Needs the [`DevSignIn`]
    /// proof, which only exists where the gate allowed it.
    pub fn dev_session_cookie(
        &self,
        _proof: DevSignIn,
        email: &str,
        secure: bool,
    ) -> Result<String, SignInError> {
        let email = email.trim();
        if !valid_email(email) {
            return Err(SignInError::BadRequest(
                "email must be an email address (name@domain)".into(),
            ));
        }
        tracing::info!("development sign-in");
        self.session_cookie(email, "dev", secure)
    }

    fn provider(&self, id: &str) -> Result<&Provider, SignInError> {
        if self.minter.is_none() {
            return Err(SignInError::NotConfigured(
                "sessions need JWT_SECRET (this deployment verifies tokens by JWKS only)",
            ));
        }
        self.providers
            .iter()
            .find(|p| p.config.kind.id() == id)
            .ok_or_else(|| {
                let known: Vec<_> = self.providers.iter().map(|p| p.config.kind.id()).collect();
                let known = if known.is_empty() {
                    "none is configured".to_owned()
                } else {
                    known.join(", ")
                };
                SignInError::UnknownProvider(id.chars().take(32).collect(), known)
            })
    }

    /// Begin a sign-in with provider `id`: the URL to send the browser to, and the state
    /// cookie's value. `base_url` is this site's origin (used when `PUBLIC_URL` is unset).
    pub async fn start(
        &self,
        id: &str,
        base_url: &str,
        return_to: Option<&str>,
    ) -> Result<(String, String), SignInError> {
        let provider = self.provider(id)?;
        let sealer = self
            .sealer
            .as_ref()
            .ok_or(SignInError::NotConfigured("no session secret"))?;
        let base = self.public_url().unwrap_or(base_url);
        let redirect_uri = format!("{base}/api/v1/auth/callback");
        let attempt = Attempt {
            state: random_token(),
            verifier: random_token(),
            nonce: random_token(),
            provider: provider.config.kind.id().to_owned(),
            redirect_uri,
            return_to: safe_return_to(return_to),
            exp: jsonwebtoken::get_current_timestamp().saturating_add(crate::state::STATE_TTL_SECS),
        };
        let endpoint = match provider.config.kind {
            ProviderKind::GitHub => format!("{}/login/oauth/authorize", provider.config.github_web),
            ProviderKind::Oidc | ProviderKind::Google => self
                .discover(provider)
                .await?
                .authorization_endpoint
                .clone(),
        };
        let mut url = reqwest::Url::parse(&endpoint).map_err(|_| {
            tracing::error!(endpoint, "provider authorization endpoint is not a URL");
            SignInError::ProviderUnavailable
        })?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &provider.config.client_id)
                .append_pair("redirect_uri", &attempt.redirect_uri)
                .append_pair("scope", &provider.config.scopes)
                .append_pair("state", &attempt.state)
                .append_pair("code_challenge", &pkce_challenge(&attempt.verifier))
                .append_pair("code_challenge_method", "S256");
            if provider.config.kind != ProviderKind::GitHub {
                query.append_pair("nonce", &attempt.nonce);
            }
        }
        Ok((url.to_string(), sealer.seal(&attempt)?))
    }

    /// Finish a sign-in: check the state against its cookie, redeem the code (with the PKCE
    /// verifier), and establish a verified email.
    pub async fn finish(
        &self,
        cookie: Option<&str>,
        callback: Callback,
    ) -> Result<SignedIn, SignInError> {
        let sealer = self
            .sealer
            .as_ref()
            .ok_or(SignInError::NotConfigured("no session secret"))?;
        let state = callback
            .state
            .as_deref()
            .ok_or(SignInError::StateMismatch)?;
        let attempt = sealer.open(cookie, state)?;
        if let Some(error) = callback.error {
            let error: String = error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            return Err(SignInError::ProviderDenied(error));
        }
        let code = callback
            .code
            .filter(|c| !c.is_empty() && c.len() <= MAX_CODE_LEN)
            .ok_or_else(|| SignInError::BadRequest("the callback carries no code".into()))?;
        let provider = self.provider(&attempt.provider)?;
        let email = match provider.config.kind {
            ProviderKind::GitHub => self.github_email(provider, &attempt, &code).await?,
            ProviderKind::Oidc | ProviderKind::Google => {
                self.oidc_email(provider, &attempt, &code).await?
            }
        };
        if !valid_email(&email) {
            return Err(SignInError::NoEmail);
        }
        Ok(SignedIn {
            email,
            provider: provider.config.kind.id(),
            return_to: attempt.return_to,
        })
    }

    async fn discover(&self, provider: &Provider) -> Result<Arc<Discovery>, SignInError> {
        provider
            .discovery
            .get_or_try_init(|| async {
                let issuer = provider
                    .config
                    .issuer
                    .as_deref()
                    .ok_or(SignInError::NotConfigured("OIDC issuer"))?;
                let url = format!("{issuer}/.well-known/openid-configuration");
                let (status, doc) = self.get_json(&url, None).await?;
                if status != 200 {
                    tracing::error!(status, "OIDC discovery failed");
                    return Err(SignInError::ProviderUnavailable);
                }
                let field = |name: &str| doc.get(name).and_then(Value::as_str).map(str::to_owned);
                let discovered_issuer = field("issuer").unwrap_or_default();
                if discovered_issuer.trim_end_matches('/') != issuer {
                    tracing::error!(
                        configured = issuer,
                        discovered = %discovered_issuer,
                        "OIDC discovery names another issuer"
                    );
                    return Err(SignInError::ProviderUnavailable);
                }
                let (Some(authorization_endpoint), Some(token_endpoint), Some(jwks_uri)) = (
                    field("authorization_endpoint"),
                    field("token_endpoint"),
                    field("jwks_uri"),
                ) else {
                    tracing::error!("OIDC discovery lacks an endpoint");
                    return Err(SignInError::ProviderUnavailable);
                };
                let methods: Vec<&str> = doc
                    .get("token_endpoint_auth_methods_supported")
                    .and_then(Value::as_array)
                    .map(|m| m.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let basic_auth = methods.is_empty() || methods.contains(&"client_secret_basic");
                let jwks = JwksCache::new(jwks_uri).map_err(|err| {
                    tracing::error!(error = %err, "JWKS client");
                    SignInError::ProviderUnavailable
                })?;
                Ok(Arc::new(Discovery {
                    authorization_endpoint,
                    token_endpoint,
                    userinfo_endpoint: field("userinfo_endpoint"),
                    jwks,
                    basic_auth,
                }))
            })
            .await
            .cloned()
    }

    async fn oidc_email(
        &self,
        provider: &Provider,
        attempt: &Attempt,
        code: &str,
    ) -> Result<String, SignInError> {
        let discovery = self.discover(provider).await?;
        let config = &provider.config;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", attempt.redirect_uri.as_str()),
            ("code_verifier", attempt.verifier.as_str()),
        ];
        let mut request = self.http.post(&discovery.token_endpoint);
        match (&config.client_secret, discovery.basic_auth) {
            (Some(secret), true) => {
                request = request.basic_auth(
                    form_encode(&config.client_id),
                    Some(form_encode(secret.expose_secret())),
                );
            }
            (Some(secret), false) => {
                form.push(("client_id", config.client_id.as_str()));
                form.push(("client_secret", secret.expose_secret()));
            }
            (None, _) => form.push(("client_id", config.client_id.as_str())),
        }
        let tokens = self.token_response(request.form(&form)).await?;
        let id_token = tokens
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                tracing::warn!("token response has no id_token");
                SignInError::IdTokenInvalid
            })?;
        let claims = self
            .verify_id_token(&discovery, config, attempt, id_token)
            .await?;
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(email) = verified_email(&claims)? {
            return Ok(email);
        }
        // No email in the ID token: ask userinfo, for the same subject.
        let (Some(userinfo), Some(access_token)) = (
            discovery.userinfo_endpoint.as_deref(),
            tokens.get("access_token").and_then(Value::as_str),
        ) else {
            return Err(SignInError::NoEmail);
        };
        let (status, info) = self.get_json(userinfo, Some(access_token)).await?;
        if status != 200 {
            tracing::warn!(status, "userinfo refused");
            return Err(SignInError::NoEmail);
        }
        let info_subject = info.get("sub").and_then(Value::as_str).unwrap_or_default();
        if info_subject.is_empty() || info_subject != subject {
            tracing::warn!("userinfo subject differs from the ID token's");
            return Err(SignInError::IdTokenInvalid);
        }
        verified_email(&info)?.ok_or(SignInError::NoEmail)
    }

    async fn verify_id_token(
        &self,
        discovery: &Discovery,
        config: &ProviderConfig,
        attempt: &Attempt,
        id_token: &str,
    ) -> Result<Value, SignInError> {
        let header = decode_header(id_token).map_err(|err| {
            tracing::warn!(reason = %err, "ID token header");
            SignInError::IdTokenInvalid
        })?;
        if !edge::auth::is_asymmetric(header.alg) {
            tracing::warn!(alg = ?header.alg, "ID token algorithm not accepted");
            return Err(SignInError::IdTokenInvalid);
        }
        let key = discovery
            .jwks
            .key_for(header.kid.as_deref(), header.alg)
            .await
            .map_err(|err| match err {
                AuthError::KeysUnavailable(detail) => {
                    tracing::error!(error = %detail, "provider JWKS unavailable");
                    SignInError::ProviderUnavailable
                }
                other => {
                    tracing::warn!(reason = %other, "ID token key");
                    SignInError::IdTokenInvalid
                }
            })?;
        let issuer = config.issuer.as_deref().unwrap_or_default();
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.leeway = ID_TOKEN_LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let mut issuers = vec![issuer.to_owned(), format!("{issuer}/")];
        if config.kind == ProviderKind::Google {
            // Google documents both forms of its `iss`.
            issuers.push("accounts.google.com".to_owned());
        }
        validation.set_issuer(&issuers);
        validation.set_audience(&[&config.client_id]);
        let claims = decode::<Value>(id_token, &key, &validation)
            .map_err(|err| {
                if matches!(err.kind(), jsonwebtoken::errors::ErrorKind::InvalidIssuer) {
                    tracing::warn!("ID token from another issuer");
                    SignInError::WrongIssuer
                } else {
                    tracing::warn!(reason = %err, "ID token refused");
                    SignInError::IdTokenInvalid
                }
            })?
            .claims;
        // Several audiences: the token must say it was issued to us (OIDC Core 3.1.3.7).
        let audiences = claims
            .get("aud")
            .and_then(Value::as_array)
            .map_or(1, Vec::len);
        let azp = claims.get("azp").and_then(Value::as_str);
        if audiences > 1 && azp != Some(config.client_id.as_str()) {
            tracing::warn!("ID token with several audiences lacks our azp");
            return Err(SignInError::IdTokenInvalid);
        }
        let nonce = claims
            .get("nonce")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !constant_time_eq(nonce.as_bytes(), attempt.nonce.as_bytes()) {
            tracing::warn!("ID token nonce does not match the sign-in attempt");
            return Err(SignInError::IdTokenInvalid);
        }
        Ok(claims)
    }

    async fn github_email(
        &self,
        provider: &Provider,
        attempt: &Attempt,
        code: &str,
    ) -> Result<String, SignInError> {
        let config = &provider.config;
        let secret = config
            .client_secret
            .as_ref()
            .ok_or(SignInError::NotConfigured("GITHUB_CLIENT_SECRET"))?;
        let form = [
            ("client_id", config.client_id.as_str()),
            ("client_secret", secret.expose_secret()),
            ("code", code),
            ("redirect_uri", attempt.redirect_uri.as_str()),
            ("code_verifier", attempt.verifier.as_str()),
        ];
        let request = self
            .http
            .post(format!("{}/login/oauth/access_token", config.github_web))
            .form(&form);
        let tokens = self.token_response(request).await?;
        let access_token = tokens
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or(SignInError::CodeRejected)?;
        let (status, emails) = self
            .get_json(
                &format!("{}/user/emails", config.github_api),
                Some(access_token),
            )
            .await?;
        if status != 200 {
            tracing::warn!(status, "GitHub email API refused");
            return Err(SignInError::NoEmail);
        }
        let emails = emails.as_array().cloned().unwrap_or_default();
        let flag = |e: &Value, name: &str| e.get(name).and_then(Value::as_bool) == Some(true);
        if let Some(primary) = emails
            .iter()
            .find(|e| flag(e, "primary") && flag(e, "verified"))
            .and_then(|e| e.get("email").and_then(Value::as_str))
        {
            return Ok(primary.to_owned());
        }
        if emails.is_empty() {
            Err(SignInError::NoEmail)
        } else {
            Err(SignInError::EmailUnverified)
        }
    }

    /// Send a token request; the JSON answer if it carries no `error`.
    async fn token_response(&self, request: reqwest::RequestBuilder) -> Result<Value, SignInError> {
        let response = request
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|err| {
                tracing::error!(error = %err.without_url(), "token endpoint unreachable");
                SignInError::ProviderUnavailable
            })?;
        let (status, body) = read_json(response).await?;
        let error = body.get("error").and_then(Value::as_str);
        if (200..300).contains(&status) && error.is_none() {
            return Ok(body);
        }
        if status >= 500 {
            tracing::error!(status, "token endpoint failed");
            return Err(SignInError::ProviderUnavailable);
        }
        tracing::warn!(
            status,
            error = error.unwrap_or("-"),
            "token endpoint refused the code"
        );
        Err(SignInError::CodeRejected)
    }

    async fn get_json(&self, url: &str, bearer: Option<&str>) -> Result<(u16, Value), SignInError> {
        let mut request = self
            .http
            .get(url)
            .header(http::header::ACCEPT, "application/json");
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|err| {
            tracing::error!(error = %err.without_url(), "provider unreachable");
            SignInError::ProviderUnavailable
        })?;
        read_json(response).await
    }
}

/// `application/x-www-form-urlencoded` encoding of a client id or secret, as RFC 6749 2.3.1
/// asks before HTTP Basic.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// Status and JSON body, reading at most [`MAX_RESPONSE_BYTES`].
async fn read_json(mut response: reqwest::Response) -> Result<(u16, Value), SignInError> {
    let status = response.status().as_u16();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len().saturating_add(chunk.len()) > MAX_RESPONSE_BYTES {
                    tracing::error!("provider response too large");
                    return Err(SignInError::ProviderUnavailable);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(err) => {
                tracing::error!(error = %err.without_url(), "provider response unreadable");
                return Err(SignInError::ProviderUnavailable);
            }
        }
    }
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok((status, value))
}

/// The claims' email if present and verified; `None` if absent; unverified refuses.
/// `email_verified` may be a boolean or, as Cognito sends it, the string "true".
fn verified_email(claims: &Value) -> Result<Option<String>, SignInError> {
    let Some(email) = claims.get("email").and_then(Value::as_str) else {
        return Ok(None);
    };
    let verified = match claims.get("email_verified") {
        Some(Value::Bool(v)) => *v,
        Some(Value::String(v)) => v == "true",
        _ => false,
    };
    if verified {
        Ok(Some(email.to_owned()))
    } else {
        Err(SignInError::EmailUnverified)
    }
}

/// A same-origin path to land on after sign-in; anything else becomes `/`.
fn safe_return_to(return_to: Option<&str>) -> String {
    return_to
        .filter(|p| {
            p.starts_with('/')
                && !p.starts_with("//")
                && p.len() <= 512
                && !p.contains('\\')
                && p.chars().all(|c| c.is_ascii_graphic())
        })
        .unwrap_or("/")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_stays_on_this_site() {
        assert_eq!(safe_return_to(Some("/#machines")), "/#machines");
        assert_eq!(safe_return_to(Some("//evil.example")), "/");
        assert_eq!(safe_return_to(Some("https://evil.example")), "/");
        assert_eq!(safe_return_to(Some("/\\evil")), "/");
        assert_eq!(safe_return_to(None), "/");
    }

    #[test]
    fn unverified_email_refuses() {
        let ok = serde_json::json!({"email": "a@b.c", "email_verified": "true"});
        assert_eq!(verified_email(&ok).unwrap().as_deref(), Some("a@b.c"));
        let no = serde_json::json!({"email": "a@b.c", "email_verified": false});
        assert!(matches!(
            verified_email(&no),
            Err(SignInError::EmailUnverified)
        ));
        let missing = serde_json::json!({"email": "a@b.c"});
        assert!(verified_email(&missing).is_err());
        assert!(verified_email(&serde_json::json!({})).unwrap().is_none());
    }
}
