//! The product's domain: what a machine is, how its secrets are sealed and opened, and what each
//! account operation means, with no HTTP and no cloud SDK in it.
//!
//! Everything the domain needs from the outside world is a port (a small trait) defined here:
//! [`store::Store`] (DynamoDB or SQLite), [`keys::KeyProvider`] (KMS or a local key file) and
//! [`limiter::AttemptLimiter`] (in-process, DynamoDB or Redis) and [`audit::AuditLog`] (the
//! hash-chained audit log, DynamoDB or SQLite). Implementations live in the
//! `backends` crate (and, for Redis, in the relay); the HTTP mapping of [`DomainError`] lives in
//! the `edge` crate. Request bodies are validated here, once, by the types in [`requests`], so
//! that every entry point (Lambda, relay, local binary) refuses the same inputs with the same
//! words.

pub mod audit;
pub mod config;
pub mod data_dir;
pub mod error;
pub mod identity;
pub mod kdf;
pub mod keys;
pub mod limiter;
pub mod machine;
pub mod orgs;
pub mod recording;
pub mod requests;
pub mod secret;
pub mod service;
pub mod sshkey;
pub mod store;
pub mod vault;

pub use error::DomainError;
pub use identity::Identity;
pub use service::Machines;
