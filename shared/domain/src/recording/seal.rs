//! Sealing a recording: a fresh data key per recording from the [`KeyProvider`], and
//! AES-256-GCM over chunks whose position is authenticated.
//!
//! The data key is generated under an [`EncryptionContext`] naming the purpose, the owner and
//! the session, so KMS (or the local key file) unwraps it only for that recording of that
//! owner: a recording copied under another owner's prefix does not open. Each chunk is sealed
//! with a random 96-bit nonce and associated data binding it to its place: the session id, the
//! chunk's index and whether it is the last one. So a chunk cannot be moved to another
//! recording (other session id, and another key anyway), nor to another index (reordering),
//! and a recording cut short (its final chunk missing) or with a hole (an index missing) is
//! told apart from a complete one by the reader ([`open_chunk`] per chunk, the index walk in
//! `super::read`).
//!
//! Chunk blob: `version (1) || final flag (1) || nonce (12) || ciphertext+tag`. The flag travels
//! in the clear because the reader needs it to rebuild the associated data; changing it breaks
//! the tag.

use aes_gcm::aead::{Aead, AeadInPlace, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::keys::EncryptionContext;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 2 + NONCE_LEN;
const TAG_LEN: usize = 16;
const AAD_LABEL: &[u8] = b"sushi-recording-chunk-v1";
const META_AAD_LABEL: &[u8] = b"sushi-recording-meta-v1";

/// The context a recording's data key is wrapped under.
pub fn context(owner_id: &str, session: &str) -> EncryptionContext {
    EncryptionContext::from_pairs([
        ("purpose", "sushi-session-recording"),
        ("owner_id", owner_id),
        ("session", session),
    ])
}

fn associated_data(session: &str, index: u64, last: bool) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + session.len() + 17);
    aad.extend_from_slice(AAD_LABEL);
    aad.extend_from_slice(&(session.len() as u64).to_be_bytes());
    aad.extend_from_slice(session.as_bytes());
    aad.extend_from_slice(&index.to_be_bytes());
    aad.push(u8::from(last));
    aad
}

fn meta_associated_data(session: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(META_AAD_LABEL.len() + session.len() + 8);
    aad.extend_from_slice(META_AAD_LABEL);
    aad.extend_from_slice(&(session.len() as u64).to_be_bytes());
    aad.extend_from_slice(session.as_bytes());
    aad
}

/// Why a chunk did not open.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    #[error("chunk {0} is malformed")]
    Malformed(u64),
    #[error("chunk {0} failed authentication (tampered, reordered or from another recording)")]
    Tampered(u64),
}

/// Seals one recording's chunks under its data key.
pub struct ChunkSealer {
    cipher: Aes256Gcm,
    session: String,
}

impl ChunkSealer {
    pub fn new(key: &Zeroizing<[u8; 32]>, session: &str) -> Self {
        Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.as_slice())),
            session: session.to_owned(),
        }
    }

    /// The blob for chunk `index`; `last` marks the recording's final chunk. The plaintext is
    /// copied once, into the blob, and encrypted there.
    pub fn seal(&self, index: u64, last: bool, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = associated_data(&self.session, index, last);
        let mut blob = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        blob.push(VERSION);
        blob.push(u8::from(last));
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(plaintext);
        let body = blob.get_mut(HEADER_LEN..).unwrap_or_default();
        // AES-GCM encryption fails only for inputs over 64 GiB; chunks are bounded far below.
        if let Ok(tag) =
            self.cipher
                .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, body)
        {
            blob.extend_from_slice(&tag);
        }
        blob
    }

    /// The recording's metadata sealed under its data key, bound to the recording id (another
    /// label than the chunks', so a metadata blob is never taken for a chunk or the reverse):
    /// `nonce || ciphertext+tag`.
    pub fn seal_meta(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = meta_associated_data(&self.session);
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ciphertext);
        blob
    }

    /// The metadata [`ChunkSealer::seal_meta`] sealed, or `None` if it does not open (changed,
    /// or sealed for another recording).
    pub fn open_meta(&self, blob: &[u8]) -> Option<Vec<u8>> {
        let (nonce, ciphertext) = (blob.get(..NONCE_LEN)?, blob.get(NONCE_LEN..)?);
        let aad = meta_associated_data(&self.session);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .ok()
    }

    /// Open chunk `index`: its plaintext and whether it is the final chunk.
    pub fn open(&self, index: u64, blob: &[u8]) -> Result<(Vec<u8>, bool), ChunkError> {
        open_chunk(&self.cipher, &self.session, index, blob)
    }
}

fn open_chunk(
    cipher: &Aes256Gcm,
    session: &str,
    index: u64,
    blob: &[u8],
) -> Result<(Vec<u8>, bool), ChunkError> {
    let (Some(&version), Some(&flag), Some(nonce), Some(ciphertext)) = (
        blob.first(),
        blob.get(1),
        blob.get(2..HEADER_LEN),
        blob.get(HEADER_LEN..),
    ) else {
        return Err(ChunkError::Malformed(index));
    };
    if version != VERSION || flag > 1 {
        return Err(ChunkError::Malformed(index));
    }
    let last = flag == 1;
    let aad = associated_data(session, index, last);
    let plaintext = cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| ChunkError::Tampered(index))?;
    Ok((plaintext, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(session: &str) -> ChunkSealer {
        ChunkSealer::new(&Zeroizing::new([7u8; 32]), session)
    }

    #[test]
    fn a_chunk_opens_at_its_own_index_only() {
        let s = sealer("s1");
        let blob = s.seal(3, false, b"hello");
        assert_eq!(s.open(3, &blob).unwrap(), (b"hello".to_vec(), false));
        assert_eq!(s.open(4, &blob), Err(ChunkError::Tampered(4)));
    }

    #[test]
    fn a_chunk_from_another_recording_does_not_open() {
        let blob = sealer("s1").seal(0, false, b"x");
        assert_eq!(sealer("s2").open(0, &blob), Err(ChunkError::Tampered(0)));
    }

    #[test]
    fn flipping_the_final_flag_or_a_byte_is_detected() {
        let s = sealer("s1");
        let mut blob = s.seal(1, true, b"end");
        assert!(s.open(1, &blob).unwrap().1);
        blob[1] = 0;
        assert_eq!(s.open(1, &blob), Err(ChunkError::Tampered(1)));
        let mut blob = s.seal(1, false, b"data");
        let last = blob.len() - 1;
        blob[last] ^= 1;
        assert_eq!(s.open(1, &blob), Err(ChunkError::Tampered(1)));
        assert_eq!(s.open(1, &[1, 0]), Err(ChunkError::Malformed(1)));
    }

    #[test]
    fn metadata_opens_for_its_own_recording_only() {
        let s = sealer("s1");
        let blob = s.seal_meta(b"{}");
        assert_eq!(s.open_meta(&blob).as_deref(), Some(&b"{}"[..]));
        assert_eq!(sealer("s2").open_meta(&blob), None);
        let mut changed = blob.clone();
        changed[NONCE_LEN] ^= 1;
        assert_eq!(s.open_meta(&changed), None);
        // Neither a chunk nor metadata opens as the other.
        let chunk = s.seal(0, false, b"{}");
        assert_eq!(s.open_meta(&chunk[2..]), None);
        let mut as_chunk = vec![VERSION, 0];
        as_chunk.extend_from_slice(&blob);
        assert!(s.open(0, &as_chunk).is_err());
    }

    #[test]
    fn the_context_names_owner_and_session() {
        let a = context("a@example.com", "s").canonical_bytes();
        assert_ne!(a, context("b@example.com", "s").canonical_bytes());
        assert_ne!(a, context("a@example.com", "t").canonical_bytes());
        assert_ne!(
            a,
            EncryptionContext::for_machine("a@example.com", 1).canonical_bytes()
        );
    }
}
