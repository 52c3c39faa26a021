//! The process's TLS crypto, chosen once: rustls on aws-lc-rs, the provider the AWS SDK already
//! uses, so every binary carries one crypto library (no ring beside it).
//!
//! reqwest is built without a provider of its own, so every HTTP client in the product comes
//! from [`http_client`], which installs the provider first; installing twice is harmless.

/// Make aws-lc-rs rustls's process-wide provider (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A reqwest client builder whose TLS runs on the process's provider.
pub fn http_client() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}
