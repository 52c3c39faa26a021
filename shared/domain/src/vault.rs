//! The credential vault: how machine secrets are sealed at create and opened at connect.
//!
//! Construction (written up with its threat model in `docs/vault.md`):
//!
//! * Each user has an X25519 key pair, derived from a random 32-byte seed. The public key is
//!   stored in clear; the seed is stored wrapped with AES-256-GCM under a key derived from the
//!   master password with Argon2id (per-user salt, parameters stored beside it).
//! * Each machine's secrets are sealed in two layers. Inner: AES-256-GCM under a fresh data key
//!   from the key provider (KMS `GenerateDataKey`, encryption context = owner + machine id).
//!   Outer: HPKE (RFC 9180, base mode, X25519-HKDF-SHA256 / AES-256-GCM) to the user's public key.
//!   Both layers take `owner || machine id` as associated data.
//! * Create therefore needs only the public key and KMS; open needs the master password (to
//!   unwrap the seed, checked by its GCM tag before anything else happens) *and* a KMS Decrypt.
//! * Changing the master password makes a new key pair (generation + 1), keeps the previous
//!   seed wrapped under the *new* password until every machine is re-sealed, and re-seals only
//!   the outer layer, which needs no KMS call. The old password stops working at once.
//!
//! Argon2id is deliberately slow: callers run `create`, `unlock` and `rotate` on a blocking
//! thread (`tokio::task::spawn_blocking`), never on the async runtime.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::{Algorithm, Argon2, Params, Version};
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand::RngCore;
use rand::rngs::OsRng;
use rand_core_hpke::UnwrapErr;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::keys::{EncryptionContext, KeyError, KeyProvider};
use crate::machine::SealedSecrets;
use crate::secret::MachineSecrets;

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead256 = hpke::aead::AesGcm256;

const HPKE_INFO: &[u8] = b"sushi-vault/v1 machine secrets";
const NONCE_LEN: usize = 12;

/// The memory a freshly created vault's Argon2id uses, in MiB (what the KDF gate is told when
/// a vault is created or rotated).
pub const FRESH_MEMORY_MIB: u32 = 19;

/// Argon2id cost, stored per vault so it can be raised later without breaking old vaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub salt: Vec<u8>,
}

impl KdfParams {
    /// OWASP's first recommended Argon2id configuration (19 MiB, t=2, p=1).
    fn fresh() -> Self {
        let mut salt = vec![0u8; 16];
        OsRng.fill_bytes(&mut salt);
        Self {
            memory_kib: FRESH_MEMORY_MIB * 1024,
            iterations: 2,
            parallelism: 1,
            salt,
        }
    }

    /// Bounds checked before running the KDF, so a tampered record cannot make us allocate
    /// gigabytes or spin for minutes.
    fn derive(&self, password: &SecretString) -> Result<Zeroizing<[u8; 32]>, VaultError> {
        if self.memory_kib > 256 * 1024 || self.iterations > 10 || self.parallelism > 8 {
            return Err(VaultError::Corrupt("KDF parameters out of range"));
        }
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
            .map_err(|_| VaultError::Corrupt("invalid KDF parameters"))?;
        let mut key = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(
                password.expose_secret().as_bytes(),
                &self.salt,
                key.as_mut_slice(),
            )
            .map_err(|_| VaultError::Corrupt("KDF failed"))?;
        Ok(key)
    }
}

/// A user's vault as stored: public key in clear, private key seed(s) wrapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultRecord {
    pub owner_id: String,
    pub generation: u32,
    pub public_key: Vec<u8>,
    pub kdf: KdfParams,
    pub wrapped_seed: Vec<u8>,
    /// The previous generation's seed, wrapped under the current password, while a password
    /// change is still re-sealing machines. `None` once every machine is on `generation`.
    pub previous: Option<PreviousKey>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviousKey {
    pub generation: u32,
    pub wrapped_seed: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("wrong master password")]
    WrongPassword,
    #[error("vault record is corrupt: {0}")]
    Corrupt(&'static str),
    #[error("sealed secrets do not open for this machine")]
    Tampered,
    #[error("sealed to vault generation {0}, which this vault no longer holds")]
    UnknownGeneration(u32),
    #[error(transparent)]
    Keys(#[from] KeyError),
}

/// The private key seeds of an opened vault, by generation. Zeroized on drop.
pub struct UnlockedVault {
    owner_id: String,
    seeds: Vec<(u32, Zeroizing<[u8; 32]>)>,
}

fn seed_aad(owner_id: &str, generation: u32) -> Vec<u8> {
    let mut aad = b"sushi-vault-seed/v1\0".to_vec();
    aad.extend_from_slice(owner_id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&generation.to_be_bytes());
    aad
}

/// Associated data binding a machine's ciphertexts to their item.
fn machine_aad(owner_id: &str, machine_id: u64) -> Vec<u8> {
    let mut aad = b"sushi-machine/v1\0".to_vec();
    aad.extend_from_slice(&(owner_id.len() as u64).to_be_bytes());
    aad.extend_from_slice(owner_id.as_bytes());
    aad.extend_from_slice(&machine_id.to_be_bytes());
    aad
}

fn gcm_seal(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, VaultError> {
    let cipher = Aes256Gcm::new(key.into());
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| VaultError::Corrupt("AES-GCM seal failed"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// `None` when the tag does not verify (wrong key, wrong associated data, tampered bytes).
fn gcm_open(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    Aes256Gcm::new(key.into())
        .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
        .ok()
        .map(Zeroizing::new)
}

fn random_seed() -> Zeroizing<[u8; 32]> {
    let mut seed = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(seed.as_mut_slice());
    seed
}

fn public_key_of(seed: &[u8; 32]) -> Vec<u8> {
    let (_, public) = Kem::derive_keypair(seed);
    public.to_bytes().to_vec()
}

fn to_seed(bytes: &[u8]) -> Result<Zeroizing<[u8; 32]>, VaultError> {
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| VaultError::Corrupt("seed has the wrong length"))?;
    Ok(Zeroizing::new(seed))
}

impl VaultRecord {
    /// A new vault for `owner_id` under `password`. Blocking (Argon2id).
    pub fn create(owner_id: &str, password: &SecretString) -> Result<Self, VaultError> {
        let kdf = KdfParams::fresh();
        let kek = kdf.derive(password)?;
        let seed = random_seed();
        Ok(Self {
            owner_id: owner_id.to_owned(),
            generation: 1,
            public_key: public_key_of(&seed),
            wrapped_seed: gcm_seal(&kek, seed.as_slice(), &seed_aad(owner_id, 1))?,
            kdf,
            previous: None,
        })
    }

    /// The memory unlocking this vault's Argon2id takes, in MiB (its weight in the KDF gate).
    pub fn kdf_memory_mib(&self) -> u32 {
        self.kdf.memory_kib.div_ceil(1024)
    }

    /// Open the vault with the master password. Blocking (Argon2id). A wrong password fails the
    /// GCM tag of the wrapped seed: [`VaultError::WrongPassword`].
    pub fn unlock(&self, password: &SecretString) -> Result<UnlockedVault, VaultError> {
        let kek = self.kdf.derive(password)?;
        let current = gcm_open(
            &kek,
            &self.wrapped_seed,
            &seed_aad(&self.owner_id, self.generation),
        )
        .ok_or(VaultError::WrongPassword)?;
        let mut seeds = vec![(self.generation, to_seed(&current)?)];
        if let Some(previous) = &self.previous {
            let seed = gcm_open(
                &kek,
                &previous.wrapped_seed,
                &seed_aad(&self.owner_id, previous.generation),
            )
            .ok_or(VaultError::Corrupt("previous key does not open"))?;
            seeds.push((previous.generation, to_seed(&seed)?));
        }
        Ok(UnlockedVault {
            owner_id: self.owner_id.clone(),
            seeds,
        })
    }

    /// The record after a password change: a fresh key pair under `new_password`, the current
    /// key kept as `previous` (wrapped under the new password) until machines are re-sealed.
    /// Blocking (Argon2id). `unlocked` must not still hold an older `previous` generation.
    pub fn rotate(
        &self,
        unlocked: &UnlockedVault,
        new_password: &SecretString,
    ) -> Result<Self, VaultError> {
        if self.previous.is_some() {
            return Err(VaultError::Corrupt(
                "rotation requested while a previous one is unfinished",
            ));
        }
        let kdf = KdfParams::fresh();
        let kek = kdf.derive(new_password)?;
        let current_seed = unlocked.seed(self.generation)?;
        let generation = self
            .generation
            .checked_add(1)
            .ok_or(VaultError::Corrupt("generation overflow"))?;
        let seed = random_seed();
        Ok(Self {
            owner_id: self.owner_id.clone(),
            generation,
            public_key: public_key_of(&seed),
            wrapped_seed: gcm_seal(&kek, seed.as_slice(), &seed_aad(&self.owner_id, generation))?,
            kdf,
            previous: Some(PreviousKey {
                generation: self.generation,
                wrapped_seed: gcm_seal(
                    &kek,
                    current_seed.as_slice(),
                    &seed_aad(&self.owner_id, self.generation),
                )?,
            }),
        })
    }

    /// Same vault with the previous key dropped (after every machine was re-sealed). The
    /// current wrapped seed is unchanged, so no KDF run is needed.
    pub fn without_previous(&self) -> Self {
        Self {
            previous: None,
            ..self.clone()
        }
    }
}

impl UnlockedVault {
    fn seed(&self, generation: u32) -> Result<&Zeroizing<[u8; 32]>, VaultError> {
        self.seeds
            .iter()
            .find(|(g, _)| *g == generation)
            .map(|(_, seed)| seed)
            .ok_or(VaultError::UnknownGeneration(generation))
    }

    fn hpke_open(
        &self,
        sealed: &SealedSecrets,
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let (private, _) = Kem::derive_keypair(self.seed(sealed.vault_gen)?.as_slice());
        let encapped = <Kem as hpke::Kem>::EncappedKey::from_bytes(&sealed.hpke_enc)
            .map_err(|_| VaultError::Tampered)?;
        hpke::single_shot_open::<Aead256, Kdf, Kem>(
            &OpModeR::Base,
            &private,
            &encapped,
            HPKE_INFO,
            &sealed.ciphertext,
            aad,
        )
        .map(Zeroizing::new)
        .map_err(|_| VaultError::Tampered)
    }

    /// Open a machine's secrets: HPKE with the owner's private key, then the data key from the
    /// key provider (KMS Decrypt), then AES-GCM. Any mismatch of owner or machine id fails.
    pub async fn open(
        &self,
        keys: &dyn KeyProvider,
        machine_id: u64,
        sealed: &SealedSecrets,
    ) -> Result<MachineSecrets, VaultError> {
        let aad = machine_aad(&self.owner_id, machine_id);
        let inner = self.hpke_open(sealed, &aad)?;
        let context = EncryptionContext::for_machine(&self.owner_id, machine_id);
        let data_key = keys
            .decrypt_data_key(&sealed.wrapped_data_key, &context)
            .await?;
        let plaintext = gcm_open(&data_key, &inner, &aad).ok_or(VaultError::Tampered)?;
        MachineSecrets::decode(&plaintext).map_err(|_| VaultError::Tampered)
    }

    /// Re-seal the outer layer to `target`'s current key pair. No key-provider call: the inner
    /// layer (and its wrapped data key) is carried over unchanged.
    pub fn reseal(
        &self,
        machine_id: u64,
        sealed: &SealedSecrets,
        target: &VaultRecord,
    ) -> Result<SealedSecrets, VaultError> {
        let aad = machine_aad(&self.owner_id, machine_id);
        let inner = self.hpke_open(sealed, &aad)?;
        let (hpke_enc, ciphertext) = hpke_seal(&target.public_key, &inner, &aad)?;
        Ok(SealedSecrets {
            vault_gen: target.generation,
            wrapped_data_key: sealed.wrapped_data_key.clone(),
            hpke_enc,
            ciphertext,
        })
    }
}

fn hpke_seal(
    public_key: &[u8],
    inner: &[u8],
    aad: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), VaultError> {
    let public = <Kem as hpke::Kem>::PublicKey::from_bytes(public_key)
        .map_err(|_| VaultError::Corrupt("public key is not X25519"))?;
    let (encapped, ciphertext) = hpke::single_shot_seal::<Aead256, Kdf, Kem, _>(
        &OpModeS::Base,
        &public,
        HPKE_INFO,
        inner,
        aad,
        &mut UnwrapErr(rand_core_hpke::OsRng),
    )
    .map_err(|_| VaultError::Corrupt("HPKE seal failed"))?;
    Ok((encapped.to_bytes().to_vec(), ciphertext))
}

/// Seal `secrets` for machine `machine_id` of `vault`'s owner. Needs no master password.
pub async fn seal(
    keys: &dyn KeyProvider,
    vault: &VaultRecord,
    machine_id: u64,
    secrets: &MachineSecrets,
) -> Result<SealedSecrets, VaultError> {
    let context = EncryptionContext::for_machine(&vault.owner_id, machine_id);
    let data_key = keys.generate_data_key(&context).await?;
    let aad = machine_aad(&vault.owner_id, machine_id);
    let inner = Zeroizing::new(gcm_seal(&data_key.plaintext, &secrets.encode(), &aad)?);
    let (hpke_enc, ciphertext) = hpke_seal(&vault.public_key, &inner, &aad)?;
    Ok(SealedSecrets {
        vault_gen: vault.generation,
        wrapped_data_key: data_key.wrapped,
        hpke_enc,
        ciphertext,
    })
}
