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
//! * An organization has a vault too (owner id `org:<slug>`, see [`org_owner_id`]): the same
//!   record shape, public key and generation, but its seed is not wrapped under a password.
//!   Each member holding access has an [`OrgKeyCopy`]: the organization's seed(s) sealed with
//!   HPKE to that member's own vault public key. Opening an organization machine is therefore
//!   the member's password → their seed → their copy → the organization's seed → the machine.
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
const ORG_COPY_INFO: &[u8] = b"sushi-vault/v1 organization key";
/// The prefix of an organization's owner id. A user's identity is an email (one `@`) or
/// `sub:… iss:…` (a space); a slug has neither, so `org:<slug>` is never a user's identity.
pub const ORG_OWNER_PREFIX: &str = "org:";
/// What an organization's vault record holds where a user's holds a password-wrapped seed:
/// its seed lives only in the members' copies.
const ORG_SEED_MARKER: &[u8] = b"org: seed held in member copies";
/// An organization copy carries the current seed and, after a rotation, the previous one.
const MAX_COPY_SEEDS: usize = 2;

/// The owner id of organization `slug`'s machines and vault.
pub fn org_owner_id(slug: &str) -> String {
    format!("{ORG_OWNER_PREFIX}{slug}")
}

/// The slug of an organization owner id, `None` for a user's.
pub fn org_slug_of(owner_id: &str) -> Option<&str> {
    owner_id.strip_prefix(ORG_OWNER_PREFIX)
}
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

/// One member's copy of an organization's private key seed(s), sealed with HPKE to the
/// member's own vault public key at `member_gen`. `org_gen` is the newest organization
/// generation it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgKeyCopy {
    /// The organization's owner id (`org:<slug>`).
    pub org_owner: String,
    pub member: String,
    pub org_gen: u32,
    pub member_gen: u32,
    pub hpke_enc: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

fn copy_aad(org_owner: &str, member: &str) -> Vec<u8> {
    let mut aad = b"sushi-org-key/v1\0".to_vec();
    for part in [org_owner, member] {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

impl VaultRecord {
    /// A new organization vault (generation 1) and its opened seed. No KDF: the seed is sealed
    /// to members with [`UnlockedVault::seal_copy`], never wrapped under a password.
    pub fn new_organization(org_owner: &str) -> (Self, UnlockedVault) {
        let seed = random_seed();
        let record = Self {
            owner_id: org_owner.to_owned(),
            generation: 1,
            public_key: public_key_of(&seed),
            kdf: KdfParams::none(),
            wrapped_seed: ORG_SEED_MARKER.to_vec(),
            previous: None,
        };
        let unlocked = UnlockedVault {
            owner_id: org_owner.to_owned(),
            seeds: vec![(1, seed)],
        };
        (record, unlocked)
    }

    /// Whether this is an organization's vault (its seed held in member copies).
    pub fn is_organization(&self) -> bool {
        org_slug_of(&self.owner_id).is_some()
    }
}

impl KdfParams {
    /// An organization vault's: no password, no KDF (unlocking one with a password fails).
    fn none() -> Self {
        Self {
            memory_kib: 0,
            iterations: 0,
            parallelism: 0,
            salt: ORG_SEED_MARKER.to_vec(),
        }
    }
}

impl UnlockedVault {
    /// The opened vault's owner id.
    pub fn owner_id(&self) -> &str {
        &self.owner_id
    }

    /// The generations whose seeds this opened vault holds, newest first.
    pub fn generations(&self) -> Vec<u32> {
        self.seeds.iter().map(|(g, _)| *g).collect()
    }

    /// Seal this (organization's) opened seeds to `member`'s vault: their copy.
    pub fn seal_copy(&self, member_vault: &VaultRecord) -> Result<OrgKeyCopy, VaultError> {
        let mut plaintext = Zeroizing::new(Vec::with_capacity(36 * MAX_COPY_SEEDS));
        for (generation, seed) in self.seeds.iter().take(MAX_COPY_SEEDS) {
            plaintext.extend_from_slice(&generation.to_be_bytes());
            plaintext.extend_from_slice(seed.as_slice());
        }
        let org_gen = self
            .seeds
            .first()
            .map(|(g, _)| *g)
            .ok_or(VaultError::Corrupt("no seed to seal"))?;
        let aad = copy_aad(&self.owner_id, &member_vault.owner_id);
        let (hpke_enc, ciphertext) =
            hpke_seal_info(&member_vault.public_key, &plaintext, &aad, ORG_COPY_INFO)?;
        Ok(OrgKeyCopy {
            org_owner: self.owner_id.clone(),
            member: member_vault.owner_id.clone(),
            org_gen,
            member_gen: member_vault.generation,
            hpke_enc,
            ciphertext,
        })
    }

    /// Open `copy` with this (member's) opened vault: the organization's opened seeds.
    pub fn open_copy(&self, copy: &OrgKeyCopy) -> Result<UnlockedVault, VaultError> {
        if copy.member != self.owner_id {
            return Err(VaultError::Tampered);
        }
        let aad = copy_aad(&copy.org_owner, &copy.member);
        let (private, _) = Kem::derive_keypair(self.seed(copy.member_gen)?.as_slice());
        let encapped = <Kem as hpke::Kem>::EncappedKey::from_bytes(&copy.hpke_enc)
            .map_err(|_| VaultError::Tampered)?;
        let plaintext = hpke::single_shot_open::<Aead256, Kdf, Kem>(
            &OpModeR::Base,
            &private,
            &encapped,
            ORG_COPY_INFO,
            &copy.ciphertext,
            &aad,
        )
        .map(Zeroizing::new)
        .map_err(|_| VaultError::Tampered)?;
        if plaintext.is_empty()
            || plaintext.len() % 36 != 0
            || plaintext.len() > 36 * MAX_COPY_SEEDS
        {
            return Err(VaultError::Tampered);
        }
        let mut seeds = Vec::with_capacity(MAX_COPY_SEEDS);
        for entry in plaintext.chunks_exact(36) {
            let (generation, seed) = entry.split_at(4);
            let generation: [u8; 4] = generation.try_into().map_err(|_| VaultError::Tampered)?;
            seeds.push((u32::from_be_bytes(generation), to_seed(seed)?));
        }
        Ok(UnlockedVault {
            owner_id: copy.org_owner.clone(),
            seeds,
        })
    }

    /// A rotation of this (organization's) opened vault, whose stored record is `record`: a new
    /// record (generation + 1, `previous` marking the rotation unfinished until every machine is
    /// re-sealed) and the opened seeds, new first, then the current one.
    pub fn rotate_org(&self, record: &VaultRecord) -> Result<(VaultRecord, Self), VaultError> {
        let generation = record
            .generation
            .checked_add(1)
            .ok_or(VaultError::Corrupt("generation overflow"))?;
        let current = self.seed(record.generation)?.clone();
        let seed = random_seed();
        let rotated = VaultRecord {
            owner_id: record.owner_id.clone(),
            generation,
            public_key: public_key_of(&seed),
            kdf: KdfParams::none(),
            wrapped_seed: ORG_SEED_MARKER.to_vec(),
            previous: Some(PreviousKey {
                generation: record.generation,
                wrapped_seed: ORG_SEED_MARKER.to_vec(),
            }),
        };
        let unlocked = Self {
            owner_id: self.owner_id.clone(),
            seeds: vec![(generation, seed), (record.generation, current)],
        };
        Ok((rotated, unlocked))
    }

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
    hpke_seal_info(public_key, inner, aad, HPKE_INFO)
}

fn hpke_seal_info(
    public_key: &[u8],
    inner: &[u8],
    aad: &[u8],
    info: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), VaultError> {
    let public = <Kem as hpke::Kem>::PublicKey::from_bytes(public_key)
        .map_err(|_| VaultError::Corrupt("public key is not X25519"))?;
    let (encapped, ciphertext) = hpke::single_shot_seal::<Aead256, Kdf, Kem, _>(
        &OpModeS::Base,
        &public,
        info,
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
