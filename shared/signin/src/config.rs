//! Which sign-in providers this deployment offers, read from the environment once at start,
//! and the one gate that decides whether development sign-in may exist.
//!
//! Providers (each enabled by its client id):
//! * `OIDC_ISSUER_URL`, `OIDC_CLIENT_ID`, `OIDC_CLIENT_SECRET` (optional: public clients),
//!   `OIDC_SCOPES` (`openid email profile`), `OIDC_NAME` (button label): any OpenID Connect
//!   issuer (Cognito, Keycloak, Auth0, …), configured by discovery.
//! * `GOOGLE_CLIENT_ID`, `GOOGLE_CLIENT_SECRET`: Google, which is OIDC with a fixed issuer.
//! * `GITHUB_CLIENT_ID`, `GITHUB_CLIENT_SECRET` (+ `GITHUB_URL`, `GITHUB_API_URL` for GitHub
//!   Enterprise): GitHub's OAuth apps, which are not OIDC; the verified primary email comes
//!   from the `/user/emails` API.
//!
//! `PUBLIC_URL` (e.g. `https://ssh.example.com`) fixes the redirect URI
//! (`PUBLIC_URL/api/v1/auth/callback`, register it with the provider) and marks cookies
//! `Secure` when it is https. Unset, the redirect URI is derived from the request's Host.
//! `SESSION_TTL_SECS` (28800) bounds the session cookie and its JWT.
//!
//! Issuer URLs must be https, except on loopback (the tests' fake provider).

use std::time::Duration;

use domain::config::{Backend, Config, ConfigError};

pub const DEFAULT_SESSION_TTL_SECS: u64 = 8 * 3600;
const MAX_SESSION_TTL_SECS: u64 = 30 * 24 * 3600;

/// The banner printed when development sign-in is on.
pub const DEV_SIGN_IN_BANNER: &str = "\n\
    ************************************************************************\n\
    *  DEVELOPMENT SIGN-IN IS ENABLED: anyone who can reach this server    *\n\
    *  can sign in as any email address, without a password. For local     *\n\
    *  use only. Disable with SUSHI_DEV_SIGNIN=false.                       *\n\
    ************************************************************************";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    Oidc,
    Google,
    GitHub,
}

impl ProviderKind {
    /// The `to=` value of `GET /api/v1/auth/url` (the original suSHi's names).
    pub fn id(self) -> &'static str {
        match self {
            Self::Oidc => "oidc",
            Self::Google => "google",
            Self::GitHub => "github",
        }
    }
}

/// One configured provider. The client secret is a `SecretString`: no `Debug`, never logged.
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// What the sign-in button says.
    pub label: String,
    pub client_id: String,
    pub client_secret: Option<secrecy::SecretString>,
    /// OIDC issuer (Google and generic OIDC).
    pub issuer: Option<String>,
    /// GitHub web and API base URLs.
    pub github_web: String,
    pub github_api: String,
    pub scopes: String,
}

/// Proof that development sign-in passed [`dev_sign_in`]'s checks. It has a private field, so
/// no other code can make one: the dev route exists only where this value does.
#[derive(Clone, Copy, Debug)]
pub struct DevSignIn(());

pub struct SignInConfig {
    pub providers: Vec<ProviderConfig>,
    pub public_url: Option<String>,
    pub session_ttl: Duration,
    pub dev: Option<DevSignIn>,
    /// Whether `Secure` is forced on cookies (PUBLIC_URL is https).
    pub secure_cookies: bool,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// `https://…`, or `http://` to a loopback host (tests, a laptop's own Keycloak).
pub fn check_url(name: &str, url: &str) -> Result<String, ConfigError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|_| ConfigError(format!("{name}={url} is not a URL")))?;
    let loopback = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(ConfigError(format!(
                "{name}={url} must be https (http is allowed only on loopback)"
            )));
        }
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Decide whether development sign-in is on.
///
/// `requested` is `SUSHI_DEV_SIGNIN` (None when unset); `local_default` is true only for the
/// all-in-one `sushi` binary; `loopback` says whether the server listens on a loopback
/// address only. Cloud backends (DynamoDB/KMS), a Lambda runtime or a listener others can
/// reach refuse an explicit request with an error, and silently win over the local default:
/// a production deployment cannot get it by accident, and not even on purpose, and neither
/// can a laptop that serves its network.
pub fn dev_sign_in(
    requested: Option<bool>,
    local_default: bool,
    backend: &Backend,
    in_lambda: bool,
    loopback: bool,
) -> Result<Option<DevSignIn>, ConfigError> {
    let cloud = matches!(backend, Backend::Aws { .. }) || in_lambda;
    match (requested, cloud || !loopback) {
        (Some(true), true) if !cloud => Err(ConfigError(
            "SUSHI_DEV_SIGNIN can be enabled only when the server listens on loopback \
             (BIND_ADDR=127.0.0.1 or ::1)"
                .to_owned(),
        )),
        (Some(true), true) => Err(ConfigError(
            "SUSHI_DEV_SIGNIN cannot be enabled with DYNAMODB_TABLE/KMS_KEY_ID (cloud backends) \
             or in AWS Lambda"
                .to_owned(),
        )),
        (Some(true), false) => Ok(Some(DevSignIn(()))),
        (Some(false), _) | (None, true) => Ok(None),
        (None, false) => Ok(local_default.then_some(DevSignIn(()))),
    }
}

fn flag(name: &str) -> Result<Option<bool>, ConfigError> {
    match var(name).as_deref() {
        None => Ok(None),
        Some("1" | "true" | "yes") => Ok(Some(true)),
        Some("0" | "false" | "no") => Ok(Some(false)),
        Some(other) => Err(ConfigError(format!("{name}={other} must be true or false"))),
    }
}

impl SignInConfig {
    /// Read the providers and the dev sign-in decision. `local_default` is true only for the
    /// all-in-one `sushi` binary; `loopback` says whether the server listens on loopback only.
    pub fn from_env(
        config: &Config,
        local_default: bool,
        loopback: bool,
    ) -> Result<Self, ConfigError> {
        // Config::from_env already refused a half-configured pair; look at the raw variables
        // too, so that even a caller that built `Config` by hand cannot slip past.
        let raw_cloud = var("DYNAMODB_TABLE").is_some() || var("KMS_KEY_ID").is_some();
        let backend = if raw_cloud {
            Backend::Aws {
                table: String::new(),
                kms_key_id: String::new(),
            }
        } else {
            config.backend.clone()
        };
        let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
        let dev = dev_sign_in(
            flag("SUSHI_DEV_SIGNIN")?,
            local_default,
            &backend,
            in_lambda,
            loopback,
        )?;

        let mut providers = Vec::new();
        if let Some(client_id) = var("OIDC_CLIENT_ID") {
            let issuer = var("OIDC_ISSUER_URL").ok_or_else(|| {
                ConfigError("OIDC_ISSUER_URL must be set when OIDC_CLIENT_ID is set".to_owned())
            })?;
            providers.push(ProviderConfig {
                kind: ProviderKind::Oidc,
                label: var("OIDC_NAME").unwrap_or_else(|| "Single sign-on".to_owned()),
                client_id,
                // Read from Secrets Manager at start when OIDC_CLIENT_SECRET_ARN is set.
                client_secret: config
                    .oidc_client_secret
                    .as_ref()
                    .map(|s| {
                        secrecy::SecretString::from(
                            secrecy::ExposeSecret::expose_secret(s).to_owned(),
                        )
                    })
                    .or_else(|| var("OIDC_CLIENT_SECRET").map(secrecy::SecretString::from)),
                issuer: Some(check_url("OIDC_ISSUER_URL", &issuer)?),
                github_web: String::new(),
                github_api: String::new(),
                scopes: var("OIDC_SCOPES").unwrap_or_else(|| "openid email profile".to_owned()),
            });
        }
        if let Some(client_id) = var("GOOGLE_CLIENT_ID") {
            providers.push(ProviderConfig {
                kind: ProviderKind::Google,
                label: "Google".to_owned(),
                client_id,
                client_secret: Some(secrecy::SecretString::from(
                    var("GOOGLE_CLIENT_SECRET").ok_or_else(|| {
                        ConfigError(
                            "GOOGLE_CLIENT_SECRET must be set when GOOGLE_CLIENT_ID is set"
                                .to_owned(),
                        )
                    })?,
                )),
                issuer: Some("https://accounts.google.com".to_owned()),
                github_web: String::new(),
                github_api: String::new(),
                scopes: "openid email".to_owned(),
            });
        }
        if let Some(client_id) = var("GITHUB_CLIENT_ID") {
            providers.push(ProviderConfig {
                kind: ProviderKind::GitHub,
                label: "GitHub".to_owned(),
                client_id,
                client_secret: Some(secrecy::SecretString::from(
                    var("GITHUB_CLIENT_SECRET").ok_or_else(|| {
                        ConfigError(
                            "GITHUB_CLIENT_SECRET must be set when GITHUB_CLIENT_ID is set"
                                .to_owned(),
                        )
                    })?,
                )),
                issuer: None,
                github_web: check_url(
                    "GITHUB_URL",
                    &var("GITHUB_URL").unwrap_or_else(|| "https://github.com".to_owned()),
                )?,
                github_api: check_url(
                    "GITHUB_API_URL",
                    &var("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".to_owned()),
                )?,
                scopes: "read:user user:email".to_owned(),
            });
        }
        let public_url = var("PUBLIC_URL")
            .map(|url| {
                reqwest::Url::parse(&url)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                    .map(|_| url.trim_end_matches('/').to_owned())
                    .ok_or_else(|| ConfigError(format!("PUBLIC_URL={url} must be an http(s) URL")))
            })
            .transpose()?;
        let ttl = match var("SESSION_TTL_SECS") {
            None => DEFAULT_SESSION_TTL_SECS,
            Some(raw) => raw
                .parse::<u64>()
                .ok()
                .filter(|v| (60..=MAX_SESSION_TTL_SECS).contains(v))
                .ok_or_else(|| {
                    ConfigError(format!(
                        "SESSION_TTL_SECS={raw} must be between 60 and {MAX_SESSION_TTL_SECS}"
                    ))
                })?,
        };
        if dev.is_some() {
            tracing::warn!("{DEV_SIGN_IN_BANNER}");
        }
        tracing::info!(
            providers = ?providers.iter().map(|p| p.kind.id()).collect::<Vec<_>>(),
            dev_sign_in = dev.is_some(),
            "sign-in configured"
        );
        Ok(Self {
            secure_cookies: public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://")),
            providers,
            public_url,
            session_ttl: Duration::from_secs(ttl),
            dev,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embedded() -> Backend {
        Backend::Embedded {
            data_dir: "/tmp/x".into(),
        }
    }

    fn aws() -> Backend {
        Backend::Aws {
            table: "t".into(),
            kms_key_id: "k".into(),
        }
    }

    #[test]
    fn dev_sign_in_cannot_be_enabled_with_cloud_backends() {
        assert!(dev_sign_in(Some(true), false, &aws(), false, true).is_err());
        assert!(dev_sign_in(Some(true), true, &aws(), false, true).is_err());
        assert!(dev_sign_in(Some(true), true, &embedded(), true, true).is_err());
        // The local binary's default quietly yields to cloud backends and Lambda.
        assert!(
            dev_sign_in(None, true, &aws(), false, true)
                .unwrap()
                .is_none()
        );
        assert!(
            dev_sign_in(None, true, &embedded(), true, true)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn dev_sign_in_is_off_unless_local_default_or_explicit() {
        assert!(
            dev_sign_in(None, false, &embedded(), false, true)
                .unwrap()
                .is_none()
        );
        assert!(
            dev_sign_in(None, true, &embedded(), false, true)
                .unwrap()
                .is_some()
        );
        assert!(
            dev_sign_in(Some(true), false, &embedded(), false, true)
                .unwrap()
                .is_some()
        );
        assert!(
            dev_sign_in(Some(false), true, &embedded(), false, true)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn dev_sign_in_needs_a_loopback_listener() {
        assert!(dev_sign_in(Some(true), true, &embedded(), false, false).is_err());
        assert!(
            dev_sign_in(None, true, &embedded(), false, false)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn issuer_urls_must_be_https_except_loopback() {
        assert!(check_url("X", "https://id.example.com/").is_ok());
        assert!(check_url("X", "http://127.0.0.1:9000").is_ok());
        assert!(check_url("X", "http://id.example.com").is_err());
        assert!(check_url("X", "file:///etc/passwd").is_err());
    }
}
