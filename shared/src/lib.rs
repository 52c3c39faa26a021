//! The library both services are built on: domain, vault, envelope/errors, auth, and the
//! storage / key-provider / rate-limit traits with their implementations.
//! `api-fn` and `relay` only wire these to HTTP.

pub mod auth;
pub mod aws;
pub mod bootstrap;
pub mod config;
pub mod envelope;
pub mod error;
pub mod keys;
pub mod machine;
pub mod oidc;
pub mod ratelimit;
pub mod ratelimit_dynamodb;
pub mod ratelimit_redis;
pub mod routes;
pub mod secret;
pub mod service;
pub mod sshkey;
pub mod store;
pub mod target_policy;
pub mod telemetry;
pub mod vault;

pub use envelope::Reply;
pub use error::ApiError;
