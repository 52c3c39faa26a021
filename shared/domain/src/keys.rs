//! Key providers: where per-machine data keys come from and how they are unwrapped.
//!
//! Envelope encryption, as KMS defines it: every machine gets a fresh 256-bit data key; only its
//! wrapped form is stored, and unwrapping it needs the key service *and* the same encryption
//! context (owner and machine id) it was wrapped under. Two implementations, chosen by
//! configuration, live in the `backends` crate: AWS KMS and a local key file for the embedded
//! default.

use std::collections::BTreeMap;

use async_trait::async_trait;
use zeroize::Zeroizing;

/// Context a data key is bound to. KMS enforces it on Decrypt; the local provider uses its
/// canonical encoding as AEAD associated data, which gives the same guarantee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    pub fn for_machine(owner_id: &str, machine_id: u64) -> Self {
        let mut map = BTreeMap::new();
        map.insert("purpose".to_owned(), "sushi-machine-secrets".to_owned());
        map.insert("owner_id".to_owned(), owner_id.to_owned());
        map.insert("machine_id".to_owned(), machine_id.to_string());
        Self(map)
    }

    /// Any context (a recording's, see `recording::seal::context`).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    pub fn pairs(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    /// Unambiguous byte encoding: length-prefixed keys and values in sorted order.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (key, value) in &self.0 {
            for part in [key, value] {
                out.extend_from_slice(&(part.len() as u64).to_be_bytes());
                out.extend_from_slice(part.as_bytes());
            }
        }
        out
    }
}

/// A fresh data key: the plaintext (zeroized on drop) and the wrapped form to store.
pub struct DataKey {
    pub plaintext: Zeroizing<[u8; 32]>,
    pub wrapped: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key service could not be reached, timed out or throttled us: retryable, 503.
    #[error("key service unavailable: {0}")]
    Unavailable(String),
    /// The key service refused: wrong context, tampered blob, missing permission.
    #[error("key service refused: {0}")]
    Denied(String),
}

#[async_trait]
pub trait KeyProvider: Send + Sync {
    async fn generate_data_key(&self, context: &EncryptionContext) -> Result<DataKey, KeyError>;
    async fn decrypt_data_key(
        &self,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Result<Zeroizing<[u8; 32]>, KeyError>;
    /// One line for the start-up log: which provider, which key.
    fn describe(&self) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_bytes_cannot_be_confused_by_shifting_separators() {
        let a = EncryptionContext::for_machine("ab", 1).canonical_bytes();
        let b = EncryptionContext::for_machine("a", 1).canonical_bytes();
        assert_ne!(a, b);
        assert_ne!(
            EncryptionContext::for_machine("x", 12).canonical_bytes(),
            EncryptionContext::for_machine("x", 1).canonical_bytes()
        );
    }
}
