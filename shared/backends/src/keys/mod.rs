//! The two `domain::keys::KeyProvider` implementations; envelope encryption's rules live in the
//! domain.

#[cfg(feature = "keyfile")]
pub mod keyfile;
#[cfg(feature = "kms")]
pub mod kms;

#[cfg(feature = "keyfile")]
pub use keyfile::LocalKeyFile;
#[cfg(feature = "kms")]
pub use kms::KmsKeys;
