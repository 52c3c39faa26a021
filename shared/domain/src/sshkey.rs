//! Checks that a private key the user uploads will actually work at connect time, without
//! linking the SSH client that will use it.
//!
//! The relay logs in with `russh`, and `russh::keys::decode_secret_key` is what decides which
//! keys work. Linking russh into the API function only to ask that question would put its whole
//! SSH stack, and the RSA and elliptic-curve arithmetic behind it, into the size-budgeted Lambda
//! zip. So this module re-states that decoder's acceptance rules on the RustCrypto parsers russh
//! is itself built on (`ssh-key`, `pkcs8`, `pkcs1`, `sec1`): the same PEM framing line by line,
//! the same formats, the same decryption, the same structural checks, down to the quirks of the
//! `ssh-key` fork russh ships (short P-521 scalars, PuTTYgen's 16-byte padding).
//!
//! What it cannot see without that arithmetic is whether a key is consistent with itself (RSA
//! primes that multiply to the modulus, an EC or Ed25519 public key that matches its secret).
//! Only a hand-corrupted key fails there; a wrong passphrase never gets that far, because
//! decryption padding or AEAD tags, OpenSSH check-ints and the DER structure catch it first.
//! PuTTY `.ppk` files, which russh also reads, are refused here as unparseable.
//!
//! The differential test at the bottom runs every format through this module and through russh
//! and fails on any disagreement: it is what keeps the two in step when either side moves.
//!
//! Nothing decoded leaves this module: key material is held in zeroizing buffers (or in
//! `ssh-key`/`der` types that zeroize on drop) and dropped before returning. Key-derivation
//! costs are read from the key's header and refused above fixed bounds before any KDF runs, so
//! an upload cannot make the API spend minutes of CPU or gigabytes of memory.

use std::cmp::Ordering;

use aes::Aes128;
use base64ct::{Base64, Encoding};
use cbc::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use md5::digest::generic_array::GenericArray;
use md5::{Digest, Md5};
use pkcs8::der::{SecretDocument, asn1::ObjectIdentifier};
use pkcs8::pkcs5::{EncryptionScheme, pbes2};
use pkcs8::{EncryptedPrivateKeyInfo, PrivateKeyInfo};
use sec1::consts::{U32, U48, U66};
use sec1::point::Tag;
use sec1::{EcPrivateKey, EncodedPoint};
use ssh_encoding::{Decode, Reader};
use ssh_key::private::KeypairData;
use ssh_key::public::{EcdsaPublicKey, KeyData};
use ssh_key::{Algorithm, Cipher, EcdsaCurve, Kdf};
use zeroize::Zeroizing;

/// Most bcrypt-pbkdf rounds an OpenSSH key may ask for (`ssh-keygen` writes 16 by default).
pub const MAX_BCRYPT_ROUNDS: u32 = 256;
/// Most PBKDF2 iterations an encrypted PKCS#8 key may ask for.
pub const MAX_PBKDF2_ITERATIONS: u32 = 1_000_000;
/// Most scrypt work, `N * r * p * 128` bytes, an encrypted PKCS#8 key may ask for. With `p = 1`
/// this is scrypt's memory; `p` is counted too because it repeats that memory-hard pass.
pub const MAX_SCRYPT_BYTES: u64 = 64 * 1024 * 1024;

/// Why a private key was refused; each maps to a 400 message that names the problem.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    #[error(
        "private_key could not be parsed (expected an OpenSSH or PEM RSA/ECDSA/Ed25519 private key)"
    )]
    Unparseable,
    #[error("private_key is encrypted; passphrase is required")]
    PassphraseRequired,
    #[error("passphrase does not decrypt private_key")]
    WrongPassphrase,
    /// Reported once a passphrase is given, instead of running the key derivation.
    #[error(
        "private_key's key derivation is too expensive (the limits are {} OpenSSH bcrypt rounds, \
         {} PBKDF2 iterations and {} MiB of scrypt work, N*r*p*128 bytes)",
        MAX_BCRYPT_ROUNDS,
        MAX_PBKDF2_ITERATIONS,
        MAX_SCRYPT_BYTES / (1024 * 1024)
    )]
    TooCostly,
}

/// The memory decrypting `pem` may take, in MiB, as a weight for the KDF gate: only encrypted
/// PKCS#8 can ask for scrypt (bounded by [`MAX_SCRYPT_BYTES`]); bcrypt-pbkdf and PBKDF2 need
/// kilobytes. Read from the armour alone, before anything is decoded.
pub fn kdf_memory_mib(pem: &str) -> u32 {
    if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        u32::try_from(MAX_SCRYPT_BYTES / (1024 * 1024)).unwrap_or(u32::MAX)
    } else {
        1
    }
}

/// Check that `pem` is a private key the relay's SSH client will load, decrypting it with
/// `passphrase` when it is encrypted. Nothing is returned: the relay decodes the stored text
/// again at connect time.
pub fn parse_private_key(pem: &str, passphrase: Option<&str>) -> Result<(), KeyProblem> {
    // Two attempts, exactly as the russh-based check this replaces made them: first without a
    // passphrase, so an unencrypted key is accepted whatever passphrase came with it, then with
    // it. Costs are judged in the second, where a KDF would otherwise run.
    let passphrase = passphrase.filter(|p| !p.is_empty());
    match decode(pem, None) {
        Ok(()) => return Ok(()),
        Err(Refusal::Encrypted) => {}
        Err(_) if looks_encrypted(pem) => {}
        Err(_) => return Err(KeyProblem::Unparseable),
    }
    let Some(passphrase) = passphrase else {
        return Err(KeyProblem::PassphraseRequired);
    };
    match decode(pem, Some(passphrase.as_bytes())) {
        Ok(()) => Ok(()),
        Err(Refusal::TooCostly) => Err(KeyProblem::TooCostly),
        Err(_) => Err(KeyProblem::WrongPassphrase),
    }
}

/// PEM encodings announce encryption in their armour; OpenSSH keys are caught by the decoder.
fn looks_encrypted(pem: &str) -> bool {
    pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") || pem.contains("Proc-Type: 4,ENCRYPTED")
}

/// How one decoding attempt failed: russh's callers can only tell "encrypted and no
/// passphrase given" from any other error; the cost refusal is ours.
enum Refusal {
    Encrypted,
    Invalid,
    TooCostly,
}

type Attempt = Result<(), Refusal>;

/// Every parser error means the same thing here, so their types are erased on the spot.
trait OrInvalid<T> {
    fn or_invalid(self) -> Result<T, Refusal>;
}

impl<T, E> OrInvalid<T> for Result<T, E> {
    fn or_invalid(self) -> Result<T, Refusal> {
        self.map_err(|_| Refusal::Invalid)
    }
}

// `ssh-encoding`'s length-prefixed readers need the closure's error to absorb theirs.
impl From<ssh_encoding::Error> for Refusal {
    fn from(_: ssh_encoding::Error) -> Self {
        Refusal::Invalid
    }
}

/// Which decoder the armour selected, as russh's `Format`.
enum Armour {
    OpenSsh,
    Pkcs1Rsa,
    /// `DEK-Info: AES-128-CBC,<iv>`: OpenSSL's legacy PEM encryption, the only variant russh
    /// decrypts; it always decodes the plaintext as PKCS#1 RSA.
    LegacyAes128Cbc([u8; 16]),
    /// PKCS#8, encrypted PKCS#8 and SEC1 all go through one decoder, as in russh.
    Pkcs8OrSec1,
}

/// One attempt of russh's `decode_secret_key(pem, passphrase)`: `Ok` where it returns a key.
fn decode(pem: &str, passphrase: Option<&[u8]>) -> Attempt {
    if pem.trim().starts_with("PuTTY-User-Key-File-") {
        // russh reads these with its fork's PPK parser; we have none (see the module doc).
        return Err(Refusal::Invalid);
    }
    let (armour, body) = unarmour(pem)?;
    match armour {
        Armour::OpenSsh => openssh(&body, passphrase),
        Armour::Pkcs1Rsa => pkcs1_rsa(&body),
        Armour::LegacyAes128Cbc(iv) => legacy_aes128_cbc(&body, passphrase, &iv),
        Armour::Pkcs8OrSec1 => pkcs8_or_sec1(&body, passphrase),
    }
}

const DEK_INFO_AES_128_CBC: &str = "DEK-Info: AES-128-CBC,";

/// russh's own PEM reader, line for line: it is laxer than RFC 7468 in some places (text
/// before the armour, any `-----END ` line ends it, header lines are skipped) and stricter in
/// others (the BEGIN line must match exactly), and a key must be accepted here exactly when it
/// is accepted there.
fn unarmour(pem: &str) -> Result<(Armour, Zeroizing<Vec<u8>>), Refusal> {
    let mut armour = None;
    let mut started = false;
    // Sized up front so pushing never reallocates and leaves unzeroized copies behind.
    let mut base64 = Zeroizing::new(String::with_capacity(pem.len()));
    for line in pem.lines() {
        if started {
            if line.starts_with("-----END ") {
                break;
            }
            if line.chars().all(is_base64_char) {
                base64.push_str(line);
            } else if let Some(hex) = line.strip_prefix(DEK_INFO_AES_128_CBC) {
                armour = Some(Armour::LegacyAes128Cbc(parse_iv(hex)?));
            }
        }
        // Checked on every line, even inside a block: a later BEGIN line switches the decoder.
        match line {
            "-----BEGIN OPENSSH PRIVATE KEY-----" => {
                started = true;
                armour = Some(Armour::OpenSsh);
            }
            "-----BEGIN RSA PRIVATE KEY-----" => {
                started = true;
                armour = Some(Armour::Pkcs1Rsa);
            }
            "-----BEGIN ENCRYPTED PRIVATE KEY-----"
            | "-----BEGIN PRIVATE KEY-----"
            | "-----BEGIN EC PRIVATE KEY-----" => {
                started = true;
                armour = Some(Armour::Pkcs8OrSec1);
            }
            _ => {}
        }
    }
    // russh decodes before it looks at the armour; both failures mean the same here.
    let body = decode_base64(&base64).ok_or(Refusal::Invalid)?;
    Ok((armour.ok_or(Refusal::Invalid)?, body))
}

fn is_base64_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '/' || c == '+' || c == '='
}

/// The IV after `DEK-Info: AES-128-CBC,`: exactly 16 bytes of hex in either case, as
/// `data_encoding::HEXLOWER_PERMISSIVE` reads it.
fn parse_iv(hex: &str) -> Result<[u8; 16], Refusal> {
    let digits: Vec<u8> = hex
        .chars()
        .map(|c| c.to_digit(16).and_then(|d| u8::try_from(d).ok()))
        .collect::<Option<_>>()
        .ok_or(Refusal::Invalid)?;
    let mut iv = [0u8; 16];
    if digits.len() != iv.len() * 2 {
        return Err(Refusal::Invalid);
    }
    for (byte, pair) in iv.iter_mut().zip(digits.chunks_exact(2)) {
        if let [high, low] = pair {
            *byte = (high << 4) | low;
        }
    }
    Ok(iv)
}

/// Padded standard base64 as `data_encoding::BASE64_MIME` decodes the concatenated lines:
/// whole 4-symbol blocks, each canonically padded on its own (so padded pieces may be
/// concatenated), with no stray bits left in a final symbol.
fn decode_base64(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let blocks = text.as_bytes().chunks_exact(4);
    if !blocks.remainder().is_empty() {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() / 4 * 3));
    let mut buffer = Zeroizing::new([0u8; 3]);
    for block in blocks {
        out.extend_from_slice(Base64::decode(block, &mut *buffer).ok()?);
    }
    Some(out)
}

const OPENSSH_MAGIC: &[u8; 15] = b"openssh-key-v1\0";

/// `ssh_key::PrivateKey::from_bytes` followed, for an encrypted key, by `decrypt`, as in the
/// `ssh-key` fork russh uses. Upstream `ssh-key` differs from the fork only in how it reads
/// the private half, so the outer structure is walked here with upstream's own decoders and
/// the private half by [`private_section`].
fn openssh(bytes: &[u8], passphrase: Option<&[u8]>) -> Attempt {
    let mut rest = bytes;
    let reader = &mut rest;
    let mut magic = [0u8; OPENSSH_MAGIC.len()];
    reader.read(&mut magic)?;
    if &magic != OPENSSH_MAGIC {
        return Err(Refusal::Invalid);
    }
    let cipher = Cipher::decode(reader).or_invalid()?;
    let kdf = Kdf::decode(reader).or_invalid()?;
    if usize::decode(reader)? != 1 {
        return Err(Refusal::Invalid);
    }
    let public = reader.read_prefixed(KeyData::decode).or_invalid()?;

    if cipher.is_none() {
        if kdf.is_some() {
            return Err(Refusal::Invalid);
        }
        // PuTTYgen pads unencrypted keys with up to 16 bytes; russh's fork allows that.
        reader
            .read_prefixed(|section| private_section(section, &public, cipher.block_size(), 16))?;
        return if reader.is_finished() {
            Ok(())
        } else {
            Err(Refusal::Invalid)
        };
    }

    let ciphertext = Vec::<u8>::decode(reader)?;
    if ciphertext.len().checked_rem(cipher.block_size()) != Some(0) {
        return Err(Refusal::Invalid);
    }
    let tag = if cipher.has_tag() {
        let mut tag = [0u8; 16];
        reader.read(&mut tag)?;
        Some(tag)
    } else {
        None
    };
    if !reader.is_finished() {
        return Err(Refusal::Invalid);
    }

    let Some(passphrase) = passphrase else {
        return Err(Refusal::Encrypted);
    };
    if let Kdf::Bcrypt { rounds, .. } = &kdf {
        if *rounds > MAX_BCRYPT_ROUNDS {
            return Err(Refusal::TooCostly);
        }
    }
    let (key, iv) = kdf.derive_key_and_iv(cipher, passphrase).or_invalid()?;
    let mut plaintext = Zeroizing::new(ciphertext);
    cipher
        .decrypt(&key, &iv, &mut plaintext, tag)
        .or_invalid()?;
    let padding = cipher.block_size().saturating_sub(1);
    private_section(
        &mut plaintext.as_slice(),
        &public,
        cipher.block_size(),
        padding,
    )
}

/// The check-ints, key pair, comment and padding of an OpenSSH key, read as the fork's
/// `decode_privatekey_comment_pair` does. A wrong passphrase fails at the check-ints.
fn private_section(
    reader: &mut impl Reader,
    public: &KeyData,
    block_size: usize,
    max_padding: usize,
) -> Attempt {
    if reader.remaining_len().checked_rem(block_size) != Some(0) {
        return Err(Refusal::Invalid);
    }
    if u32::decode(reader)? != u32::decode(reader)? {
        return Err(Refusal::Invalid);
    }
    let algorithm = Algorithm::decode(reader).or_invalid()?;
    let paired_public = if algorithm
        == (Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP521,
        }) {
        p521_keypair(reader)?
    } else {
        // Dropping the key pair zeroizes its private half.
        let keypair = KeypairData::decode_as(reader, algorithm).or_invalid()?;
        KeyData::try_from(&keypair).or_invalid()?
    };
    if paired_public != *public {
        return Err(Refusal::Invalid);
    }
    String::decode(reader)?; // the comment, which must be UTF-8

    let padding_len = reader.remaining_len();
    if padding_len > max_padding {
        return Err(Refusal::Invalid);
    }
    let mut padding = [0u8; 16];
    let padding = padding.get_mut(..padding_len).ok_or(Refusal::Invalid)?;
    reader.read(padding)?;
    // The padding must be 1, 2, 3, ...
    if padding
        .iter()
        .zip(1u8..)
        .any(|(byte, expected)| *byte != expected)
    {
        return Err(Refusal::Invalid);
    }
    if reader.is_finished() {
        Ok(())
    } else {
        Err(Refusal::Invalid)
    }
}

/// A P-521 key pair as russh's `ssh-key` fork reads it. OpenSSH writes the private scalar as
/// a minimal mpint, so about one key in four has a 65-byte scalar (rarely 64); upstream
/// `ssh-key` 0.6 insists on 66 and would refuse keys the relay accepts. The fork takes any
/// length from 64 up, reading at most 66 bytes, and so do we.
fn p521_keypair(reader: &mut impl Reader) -> Result<KeyData, Refusal> {
    let public = EcdsaPublicKey::decode(reader).or_invalid()?;
    if public.curve() != EcdsaCurve::NistP521 {
        return Err(Refusal::Invalid);
    }
    reader.read_prefixed(|scalar| -> Result<(), ssh_encoding::Error> {
        let len = scalar.remaining_len();
        if len == 67 && u8::decode(scalar)? != 0 {
            return Err(ssh_encoding::Error::Length);
        }
        if len <= 63 {
            return Err(ssh_encoding::Error::Length);
        }
        let mut bytes = Zeroizing::new([0u8; 66]);
        let wanted = bytes
            .get_mut(..len.min(66))
            .ok_or(ssh_encoding::Error::Length)?;
        scalar.read(wanted)?;
        Ok(())
    })?;
    Ok(KeyData::Ecdsa(public))
}

/// `-----BEGIN RSA PRIVATE KEY-----`: russh's `rsa::RsaPrivateKey::from_pkcs1_der`.
fn pkcs1_rsa(der: &[u8]) -> Attempt {
    let key = pkcs1::RsaPrivateKey::try_from(der).or_invalid()?;
    rsa_components(&key)
}

/// What the `rsa` crate checks when russh builds a key from its components, short of the
/// modular arithmetic (`p * q == n`, `d * e == 1 mod p-1 and q-1`), which only a corrupted key
/// fails and which would bring that crate's big-number code into the API function.
fn rsa_components(key: &pkcs1::RsaPrivateKey<'_>) -> Attempt {
    // Multi-prime keys: `rsa` refuses them in PKCS#1, and inside PKCS#8 russh uses only the
    // first two primes, whose product is then not the modulus.
    if key.version() != pkcs1::Version::TwoPrime {
        return Err(Refusal::Invalid);
    }
    let n = key.modulus.as_bytes();
    let e_bytes = key.public_exponent.as_bytes();
    let e = small_uint(e_bytes).ok_or(Refusal::Invalid)?;
    // `rsa::RsaPublicKey::MIN_PUB_EXPONENT..=MAX_PUB_EXPONENT`, odd, below an odd modulus.
    let exponent_ok = (2..=(1u64 << 33) - 1).contains(&e) && e % 2 == 1;
    let modulus_ok = n.last().is_some_and(|low| low % 2 == 1) && compare(e_bytes, n).is_lt();
    let p = key.prime1.as_bytes();
    let q = key.prime2.as_bytes();
    let primes_ok = compare(p, &[1]).is_gt() && compare(q, &[1]).is_gt();
    // With p == q there is no CRT coefficient, which `ssh-key` needs to hold the key.
    let distinct = compare(p, q).is_ne();
    if exponent_ok && modulus_ok && primes_ok && distinct {
        Ok(())
    } else {
        Err(Refusal::Invalid)
    }
}

/// A big-endian unsigned integer that fits a `u64`.
fn small_uint(bytes: &[u8]) -> Option<u64> {
    let bytes = strip_zeros(bytes);
    if bytes.len() > 8 {
        return None;
    }
    Some(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// Compare big-endian unsigned integers of any length.
fn compare(a: &[u8], b: &[u8]) -> Ordering {
    let (a, b) = (strip_zeros(a), strip_zeros(b));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

/// OpenSSL's legacy PEM encryption (`Proc-Type: 4,ENCRYPTED`), as russh's `decode_pkcs5`.
fn legacy_aes128_cbc(ciphertext: &[u8], passphrase: Option<&[u8]>, iv: &[u8; 16]) -> Attempt {
    let Some(passphrase) = passphrase else {
        return Err(Refusal::Encrypted);
    };
    // EVP_BytesToKey with MD5 and one round; the salt is the IV's first half.
    let mut key = Zeroizing::new([0u8; 16]);
    let mut md5 = Md5::new();
    md5.update(passphrase);
    md5.update(iv.get(..8).unwrap_or_default());
    md5.finalize_into(GenericArray::from_mut_slice(key.as_mut_slice()));
    let decryptor = cbc::Decryptor::<Aes128>::new_from_slices(key.as_slice(), iv).or_invalid()?;
    let mut buffer = Zeroizing::new(ciphertext.to_vec());
    let plaintext = decryptor
        .decrypt_padded_mut::<Pkcs7>(&mut buffer)
        .or_invalid()?;
    pkcs1_rsa(plaintext)
}

const ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const RSA_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const P521_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");

/// russh's `decode_pkcs8`, which also takes SEC1 (`BEGIN EC PRIVATE KEY`). With a passphrase
/// it insists on an `EncryptedPrivateKeyInfo`, whatever the armour said.
fn pkcs8_or_sec1(der: &[u8], passphrase: Option<&[u8]>) -> Attempt {
    let document = SecretDocument::try_from(der).or_invalid()?;
    let decrypted;
    let document = match passphrase {
        None => &document,
        Some(passphrase) => {
            let encrypted = document
                .decode_msg::<EncryptedPrivateKeyInfo<'_>>()
                .or_invalid()?;
            refuse_costly_pbes2(&encrypted.encryption_algorithm)?;
            decrypted = encrypted.decrypt(passphrase).or_invalid()?;
            &decrypted
        }
    };
    // SEC1 is tried first, as in russh; a PKCS#8 body never parses as one.
    match document.decode_msg::<EcPrivateKey<'_>>() {
        Ok(key) => {
            let curve = key
                .parameters
                .and_then(|p| p.named_curve())
                .ok_or(Refusal::Invalid)?;
            ec_secret(curve, &key)
        }
        Err(_) => {
            let info = document.decode_msg::<PrivateKeyInfo<'_>>().or_invalid()?;
            private_key_info(&info)
        }
    }
}

/// The cost bounds, read from the PBES2 header before `pkcs5` would run the KDF. PBES1 is
/// left alone: `pkcs5` refuses it without deriving anything.
fn refuse_costly_pbes2(scheme: &EncryptionScheme<'_>) -> Attempt {
    let EncryptionScheme::Pbes2(params) = scheme else {
        return Ok(());
    };
    let too_costly = match &params.kdf {
        pbes2::Kdf::Pbkdf2(pbkdf2) => pbkdf2.iteration_count > MAX_PBKDF2_ITERATIONS,
        pbes2::Kdf::Scrypt(scrypt) => {
            let work = u128::from(scrypt.cost_parameter)
                * u128::from(scrypt.block_size)
                * u128::from(scrypt.parallelization.max(1))
                * 128;
            work > u128::from(MAX_SCRYPT_BYTES)
        }
        // Any KDF a later `pkcs5` adds is one we have no bound for.
        _ => true,
    };
    if too_costly {
        Err(Refusal::TooCostly)
    } else {
        Ok(())
    }
}

/// The algorithms russh's `pkcs8_pki_into_keypair_data` takes, with the checks its
/// converters (`ed25519`, `rsa`, `elliptic-curve`) make.
fn private_key_info(info: &PrivateKeyInfo<'_>) -> Attempt {
    match info.algorithm.oid {
        ED25519_OID => {
            // `ed25519::pkcs8::KeypairBytes`: no parameters, a nested 32-byte OCTET STRING,
            // and a 32-byte public key if one is present (russh then ignores it).
            let nested_secret =
                matches!(info.private_key, [0x04, 0x20, rest @ ..] if rest.len() == 32);
            let public_ok = info.public_key.is_none_or(|public| public.len() == 32);
            if info.algorithm.parameters.is_none() && nested_secret && public_ok {
                Ok(())
            } else {
                Err(Refusal::Invalid)
            }
        }
        RSA_OID => rsa_components(&pkcs1::RsaPrivateKey::try_from(info.private_key).or_invalid()?),
        EC_PUBLIC_KEY_OID => {
            let curve = info.algorithm.parameters_oid().or_invalid()?;
            // The nested SEC1 key's own curve parameters are ignored, as `elliptic-curve` does.
            ec_secret(
                curve,
                &EcPrivateKey::try_from(info.private_key).or_invalid()?,
            )
        }
        _ => Err(Refusal::Invalid),
    }
}

/// Group orders, big-endian, as the standards print them: a secret scalar must lie in
/// `1..order`.
const P256_ORDER: [u8; 32] =
    hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
const P384_ORDER: [u8; 48] = hex(concat!(
    "ffffffffffffffffffffffffffffffffffffffffffffffff",
    "c7634d81f4372ddf581a0db248b0a77aecec196accc52973",
));
const P521_ORDER: [u8; 66] = hex(concat!(
    "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "fa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409",
));

/// `elliptic_curve::SecretKey::try_from(sec1::EcPrivateKey)` for the curves russh knows,
/// without the curve arithmetic: the public point's shape is checked, not that it matches.
fn ec_secret(curve: ObjectIdentifier, key: &EcPrivateKey<'_>) -> Attempt {
    let (order, field_size): (&[u8], usize) = match curve {
        P256_OID => (&P256_ORDER, 32),
        P384_OID => (&P384_ORDER, 48),
        P521_OID => (&P521_ORDER, 66),
        _ => return Err(Refusal::Invalid),
    };
    // `SecretKey::from_slice`: the field size, or down to 24 bytes read as left-padded.
    let scalar = key.private_key;
    let length_ok = (24..=field_size).contains(&scalar.len());
    let value_ok = compare(scalar, &[0]).is_gt() && compare(scalar, order).is_lt();
    let point_ok = key.public_key.is_none_or(|point| {
        let tag = match field_size {
            32 => EncodedPoint::<U32>::from_bytes(point).map(|p| p.tag()),
            48 => EncodedPoint::<U48>::from_bytes(point).map(|p| p.tag()),
            _ => EncodedPoint::<U66>::from_bytes(point).map(|p| p.tag()),
        };
        // The identity and "compact" encodings never equal the point `elliptic-curve`
        // recomputes from the secret, so they always fail its comparison.
        matches!(
            tag,
            Ok(Tag::Uncompressed | Tag::CompressedEvenY | Tag::CompressedOddY)
        )
    });
    if length_ok && value_ok && point_ok {
        Ok(())
    } else {
        Err(Refusal::Invalid)
    }
}

/// Hex to bytes at compile time; a typo in a constant fails the build, never a request.
#[allow(clippy::indexing_slicing, clippy::panic)] // const evaluation only
const fn hex<const N: usize>(hex: &str) -> [u8; N] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not a lowercase hex digit"),
        }
    }
    let hex = hex.as_bytes();
    assert!(hex.len() == 2 * N, "wrong number of hex digits");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = (nibble(hex[2 * i]) << 4) | nibble(hex[2 * i + 1]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbc::cipher::BlockEncryptMut;
    use data_encoding::{BASE64, BASE64_MIME};
    use pkcs8::der::Encode as _;
    use pkcs8::pkcs5::pbes2::{Kdf as Pbes2Kdf, Parameters, Pbkdf2Params, Pbkdf2Prf, ScryptParams};
    use pkcs8::spki::AlgorithmIdentifierRef;
    use russh::keys::ssh_key as fork;
    use russh::keys::ssh_key::rand_core::{OsRng, RngCore};
    use sec1::EcParameters;
    use std::process::Command;
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    const PASS: &str = "correct horse";
    const WRONG: &str = "battery staple";

    /// The relay's verdict: the check this module replaces, verbatim, over russh's decoder.
    fn russh_verdict(pem: &str, passphrase: Option<&str>) -> Result<(), KeyProblem> {
        use russh::keys::{Error as KeyError, decode_secret_key};
        let passphrase = passphrase.filter(|p| !p.is_empty());
        match decode_secret_key(pem, None) {
            Ok(key) if !key.is_encrypted() => return Ok(()),
            Ok(_) | Err(KeyError::KeyIsEncrypted) => {}
            Err(_) if looks_encrypted(pem) => {}
            Err(_) => return Err(KeyProblem::Unparseable),
        }
        let Some(passphrase) = passphrase else {
            return Err(KeyProblem::PassphraseRequired);
        };
        match decode_secret_key(pem, Some(passphrase)) {
            Ok(key) if !key.is_encrypted() => Ok(()),
            _ => Err(KeyProblem::WrongPassphrase),
        }
    }

    /// Both sides must give the same verdict for every passphrase the API can be sent, and
    /// russh's verdict with the right one must be `expected`, so that a case cannot pass by
    /// both sides failing the same way.
    #[track_caller]
    fn agree(label: &str, pem: &str, right: Option<&str>, expected: Result<(), KeyProblem>) {
        agree_any(label, pem, right);
        assert_eq!(
            russh_verdict(pem, right),
            expected,
            "{label}: russh's verdict"
        );
    }

    /// Agreement only, for crafted and mutilated inputs where russh's verdict is the spec.
    #[track_caller]
    fn agree_any(label: &str, pem: &str, right: Option<&str>) {
        for passphrase in [None, Some(""), right, Some(WRONG)] {
            assert_eq!(
                parse_private_key(pem, passphrase),
                russh_verdict(pem, passphrase),
                "{label}: disagreement with passphrase {passphrase:?}\n{pem}"
            );
        }
    }

    fn armour(label: &str, der: &[u8]) -> String {
        format!(
            "-----BEGIN {label}-----\n{}-----END {label}-----\n",
            wrap(der)
        )
    }

    fn wrap(bytes: &[u8]) -> String {
        let base64 = BASE64.encode(bytes);
        let mut out = String::new();
        for line in base64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).unwrap());
            out.push('\n');
        }
        out
    }

    fn dearmour(pem: &str) -> Vec<u8> {
        let body: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----") && !l.contains(':') && !l.is_empty())
            .collect();
        BASE64_MIME.decode(body.as_bytes()).unwrap()
    }

    /// One key per algorithm the relay can log in with, generated once: RSA is 1024 bits
    /// (russh's `ssh-key` fork allows it) so that debug-mode generation stays quick.
    fn keys() -> &'static [(&'static str, fork::PrivateKey)] {
        static KEYS: OnceLock<Vec<(&'static str, fork::PrivateKey)>> = OnceLock::new();
        KEYS.get_or_init(|| {
            let ecdsa =
                |curve| fork::PrivateKey::random(&mut OsRng, fork::Algorithm::Ecdsa { curve });
            let rsa = fork::private::RsaKeypair::random(&mut OsRng, 1024).unwrap();
            vec![
                (
                    "ed25519",
                    fork::PrivateKey::random(&mut OsRng, fork::Algorithm::Ed25519).unwrap(),
                ),
                ("ecdsa-p256", ecdsa(fork::EcdsaCurve::NistP256).unwrap()),
                ("ecdsa-p384", ecdsa(fork::EcdsaCurve::NistP384).unwrap()),
                ("ecdsa-p521", ecdsa(fork::EcdsaCurve::NistP521).unwrap()),
                (
                    "rsa-1024",
                    fork::PrivateKey::new(fork::private::KeypairData::Rsa(rsa), "").unwrap(),
                ),
            ]
        })
    }

    fn key(name: &str) -> &'static fork::PrivateKey {
        &keys().iter().find(|(n, _)| *n == name).unwrap().1
    }

    /// OpenSSH encryption with few bcrypt rounds, so the many encrypted cases stay fast.
    fn encrypt_openssh(key: &fork::PrivateKey, cipher: fork::Cipher) -> String {
        let mut salt = vec![0u8; 16];
        OsRng.fill_bytes(&mut salt);
        let kdf = fork::Kdf::Bcrypt { salt, rounds: 2 };
        let encrypted = key
            .encrypt_with(cipher, kdf, OsRng.next_u32(), PASS)
            .unwrap();
        encrypted
            .to_openssh(fork::LineEnding::LF)
            .unwrap()
            .to_string()
    }

    fn pkcs8_der(key: &fork::PrivateKey) -> Vec<u8> {
        let mut pem = Vec::new();
        russh::keys::encode_pkcs8_pem(key, &mut pem).unwrap();
        dearmour(std::str::from_utf8(&pem).unwrap())
    }

    /// SEC1 `ECPrivateKey` from the one nested in PKCS#8, which leaves out the curve.
    fn sec1_der(key: &fork::PrivateKey, with_curve: bool, with_public: bool) -> Vec<u8> {
        let pkcs8 = pkcs8_der(key);
        let info = PrivateKeyInfo::try_from(pkcs8.as_slice()).unwrap();
        let mut ec = EcPrivateKey::try_from(info.private_key).unwrap();
        if with_curve {
            let curve = info.algorithm.parameters_oid().unwrap();
            ec.parameters = Some(EcParameters::NamedCurve(curve));
        }
        if !with_public {
            ec.public_key = None;
        }
        ec.to_der().unwrap()
    }

    /// PKCS#1 `RSAPrivateKey`, the body of the PKCS#8 encoding.
    fn pkcs1_der(key: &fork::PrivateKey) -> Vec<u8> {
        let pkcs8 = pkcs8_der(key);
        PrivateKeyInfo::try_from(pkcs8.as_slice())
            .unwrap()
            .private_key
            .to_vec()
    }

    /// OpenSSL's legacy PEM encryption with AES-128-CBC, under whatever `dek` name is given.
    fn legacy_pem(label: &str, der: &[u8], dek: &str, uppercase_iv: bool) -> String {
        let mut iv = [0u8; 16];
        OsRng.fill_bytes(&mut iv);
        let mut key = [0u8; 16];
        let mut md5 = Md5::new();
        md5.update(PASS);
        md5.update(&iv[..8]);
        key.copy_from_slice(&md5.finalize());
        let mut buffer = der.to_vec();
        buffer.resize(der.len() + 16, 0);
        let ciphertext = cbc::Encryptor::<Aes128>::new_from_slices(&key, &iv)
            .unwrap()
            .encrypt_padded_mut::<Pkcs7>(&mut buffer, der.len())
            .unwrap()
            .to_vec();
        let mut hex: String = iv.iter().map(|b| format!("{b:02x}")).collect();
        if uppercase_iv {
            hex = hex.to_uppercase();
        }
        format!(
            "-----BEGIN {label}-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: {dek},{hex}\n\n{}-----END {label}-----\n",
            wrap(&ciphertext)
        )
    }

    fn encrypted_pkcs8(der: &[u8], params: Parameters<'_>) -> String {
        let info = PrivateKeyInfo::try_from(der).unwrap();
        let encrypted = info.encrypt_with_params(params, PASS).unwrap();
        armour("ENCRYPTED PRIVATE KEY", encrypted.as_bytes())
    }

    /// An `EncryptedPrivateKeyInfo` whose ciphertext is junk: for headers that must be judged
    /// before anything is decrypted.
    fn junk_encrypted_pkcs8(params: Parameters<'_>) -> String {
        let info = EncryptedPrivateKeyInfo {
            encryption_algorithm: EncryptionScheme::Pbes2(params),
            encrypted_data: &[0x42; 64],
        };
        armour("ENCRYPTED PRIVATE KEY", &info.to_der().unwrap())
    }

    #[test]
    fn openssh_keys_agree() {
        for (name, key) in keys() {
            let plain = key.to_openssh(fork::LineEnding::LF).unwrap();
            agree(&format!("{name} plain"), &plain, None, Ok(()));
            let crlf = key.to_openssh(fork::LineEnding::CRLF).unwrap();
            agree(&format!("{name} plain CRLF"), &crlf, None, Ok(()));
            let encrypted = encrypt_openssh(key, fork::Cipher::Aes256Ctr);
            agree(
                &format!("{name} aes256-ctr"),
                &encrypted,
                Some(PASS),
                Ok(()),
            );
        }
        // `ssh-keygen`'s defaults: aes256-ctr, 16 bcrypt rounds.
        let default = key("ed25519").encrypt(&mut OsRng, PASS).unwrap();
        let default = default.to_openssh(fork::LineEnding::LF).unwrap();
        agree("ed25519 default encryption", &default, Some(PASS), Ok(()));
        for cipher in [
            fork::Cipher::Aes128Cbc,
            fork::Cipher::Aes192Cbc,
            fork::Cipher::Aes256Cbc,
            fork::Cipher::Aes128Ctr,
            fork::Cipher::Aes192Ctr,
            fork::Cipher::Aes128Gcm,
            fork::Cipher::Aes256Gcm,
            fork::Cipher::ChaCha20Poly1305,
        ] {
            let pem = encrypt_openssh(key("ed25519"), cipher);
            agree(&format!("ed25519 {cipher}"), &pem, Some(PASS), Ok(()));
        }
    }

    #[test]
    fn pkcs8_keys_agree() {
        for (name, key) in keys() {
            let der = pkcs8_der(key);
            agree(
                &format!("{name} PKCS#8"),
                &armour("PRIVATE KEY", &der),
                None,
                Ok(()),
            );
            let mut pem = Vec::new();
            russh::keys::encode_pkcs8_pem_encrypted(key, PASS.as_bytes(), 1000, &mut pem).unwrap();
            let pem = String::from_utf8(pem).unwrap();
            agree(
                &format!("{name} PKCS#8 encrypted by russh"),
                &pem,
                Some(PASS),
                Ok(()),
            );
        }

        let der = pkcs8_der(key("ecdsa-p256"));
        let (salt, iv) = ([7u8; 16], [9u8; 16]);
        let aes128 = Parameters::pbkdf2_sha256_aes128cbc(1000, &salt, &iv).unwrap();
        agree(
            "PBKDF2-SHA256 AES-128-CBC",
            &encrypted_pkcs8(&der, aes128),
            Some(PASS),
            Ok(()),
        );
        let mut sha512 = Parameters::pbkdf2_sha256_aes256cbc(1000, &salt, &iv).unwrap();
        if let Pbes2Kdf::Pbkdf2(pbkdf2) = &mut sha512.kdf {
            pbkdf2.prf = Pbkdf2Prf::HmacWithSha512;
        }
        agree(
            "PBKDF2-SHA512",
            &encrypted_pkcs8(&der, sha512),
            Some(PASS),
            Ok(()),
        );
        let scrypt_params = pkcs8::pkcs5::scrypt::Params::new(10, 8, 1, 32).unwrap();
        let scrypt = Parameters::scrypt_aes256cbc(scrypt_params, &salt, &iv).unwrap();
        agree("scrypt", &encrypted_pkcs8(&der, scrypt), Some(PASS), Ok(()));
        // russh's `pkcs5` is built without SHA-1, so such a key never opens, right passphrase
        // or not; the header alone decides.
        let mut sha1 = Parameters::pbkdf2_sha256_aes256cbc(1000, &salt, &iv).unwrap();
        if let Pbes2Kdf::Pbkdf2(pbkdf2) = &mut sha1.kdf {
            pbkdf2.prf = Pbkdf2Prf::HmacWithSha1;
        }
        let pem = junk_encrypted_pkcs8(sha1);
        agree(
            "PBKDF2-SHA1",
            &pem,
            Some(PASS),
            Err(KeyProblem::WrongPassphrase),
        );

        // PKCS#8 v2 carries the Ed25519 public key too; russh checks only its length.
        let ed25519 = key("ed25519").key_data().ed25519().unwrap();
        let mut nested = vec![0x04, 0x20];
        nested.extend_from_slice(&ed25519.private.to_bytes());
        for (public_len, expected) in [(32, Ok(())), (31, Err(KeyProblem::Unparseable))] {
            let info = PrivateKeyInfo {
                algorithm: AlgorithmIdentifierRef {
                    oid: ED25519_OID,
                    parameters: None,
                },
                private_key: &nested,
                public_key: Some(&ed25519.public.0[..public_len]),
            };
            let pem = armour("PRIVATE KEY", &info.to_der().unwrap());
            agree(
                &format!("Ed25519 PKCS#8 v2, {public_len}-byte public"),
                &pem,
                None,
                expected,
            );
        }
        // The same body mislabelled: russh only looks at the armour to pick a decoder.
        agree(
            "PKCS#8 under EC armour",
            &armour("EC PRIVATE KEY", &der),
            None,
            Ok(()),
        );
        let encrypted =
            junk_encrypted_pkcs8(Parameters::pbkdf2_sha256_aes128cbc(1000, &salt, &iv).unwrap());
        let relabelled = encrypted.replace("ENCRYPTED PRIVATE KEY", "PRIVATE KEY");
        agree(
            "encrypted PKCS#8 as plain",
            &relabelled,
            Some(PASS),
            Err(KeyProblem::Unparseable),
        );
    }

    #[test]
    fn pkcs1_and_sec1_keys_agree() {
        let rsa = pkcs1_der(key("rsa-1024"));
        agree("PKCS#1", &armour("RSA PRIVATE KEY", &rsa), None, Ok(()));
        let legacy = legacy_pem("RSA PRIVATE KEY", &rsa, "AES-128-CBC", false);
        agree("PKCS#1 legacy AES-128", &legacy, Some(PASS), Ok(()));
        let legacy = legacy_pem("RSA PRIVATE KEY", &rsa, "AES-128-CBC", true);
        agree("PKCS#1 legacy, uppercase IV", &legacy, Some(PASS), Ok(()));
        // Only AES-128-CBC is decrypted; other DEK-Info lines are skipped and the ciphertext
        // is read as a plain key.
        let legacy = legacy_pem("RSA PRIVATE KEY", &rsa, "AES-256-CBC", false);
        agree(
            "PKCS#1 legacy AES-256",
            &legacy,
            Some(PASS),
            Err(KeyProblem::WrongPassphrase),
        );
        let legacy = legacy_pem("RSA PRIVATE KEY", &rsa, "DES-EDE3-CBC", false);
        agree(
            "PKCS#1 legacy 3DES",
            &legacy,
            Some(PASS),
            Err(KeyProblem::WrongPassphrase),
        );
        let no_proc_type = legacy_pem("RSA PRIVATE KEY", &rsa, "AES-128-CBC", false)
            .replace("Proc-Type: 4,ENCRYPTED\n", "");
        agree(
            "legacy without Proc-Type",
            &no_proc_type,
            Some(PASS),
            Ok(()),
        );

        for name in ["ecdsa-p256", "ecdsa-p384", "ecdsa-p521"] {
            let sec1 = sec1_der(key(name), true, true);
            agree(
                &format!("{name} SEC1"),
                &armour("EC PRIVATE KEY", &sec1),
                None,
                Ok(()),
            );
            let bare = sec1_der(key(name), true, false);
            agree(
                &format!("{name} SEC1 without public key"),
                &armour("EC PRIVATE KEY", &bare),
                None,
                Ok(()),
            );
            let curveless = sec1_der(key(name), false, true);
            let pem = armour("EC PRIVATE KEY", &curveless);
            agree(
                &format!("{name} SEC1 without curve"),
                &pem,
                None,
                Err(KeyProblem::Unparseable),
            );
            // Legacy encryption always decrypts to "PKCS#1", so an EC key never opens.
            let legacy = legacy_pem("EC PRIVATE KEY", &sec1, "AES-128-CBC", false);
            agree(
                &format!("{name} SEC1 legacy"),
                &legacy,
                Some(PASS),
                Err(KeyProblem::WrongPassphrase),
            );
        }
    }

    /// A SEC1 key for `curve` with the given scalar and public point (none if `None`).
    fn sec1_with(curve: ObjectIdentifier, scalar: &[u8], point: Option<&[u8]>) -> String {
        let key = EcPrivateKey {
            private_key: scalar,
            parameters: Some(EcParameters::NamedCurve(curve)),
            public_key: point,
        };
        armour("EC PRIVATE KEY", &key.to_der().unwrap())
    }

    #[test]
    fn ec_scalar_and_point_checks_agree() {
        for (curve, order) in [
            (P256_OID, &P256_ORDER[..]),
            (P384_OID, &P384_ORDER[..]),
            (P521_OID, &P521_ORDER[..]),
        ] {
            let mut below = order.to_vec();
            *below.last_mut().unwrap() -= 1;
            agree("order - 1", &sec1_with(curve, &below, None), None, Ok(()));
            agree(
                "order",
                &sec1_with(curve, order, None),
                None,
                Err(KeyProblem::Unparseable),
            );
            let zero = vec![0u8; order.len()];
            agree(
                "zero",
                &sec1_with(curve, &zero, None),
                None,
                Err(KeyProblem::Unparseable),
            );
            agree(
                "24 bytes",
                &sec1_with(curve, &[0x11; 24], None),
                None,
                Ok(()),
            );
            agree(
                "23 bytes",
                &sec1_with(curve, &[0x11; 23], None),
                None,
                Err(KeyProblem::Unparseable),
            );
            let long = vec![0u8; order.len() + 1];
            agree_any("field + 1 bytes", &sec1_with(curve, &long, None), None);
            // Points whose encoding can never match the secret's public key.
            let field = order.len();
            agree(
                "identity point",
                &sec1_with(curve, &below, Some(&[0])),
                None,
                Err(KeyProblem::Unparseable),
            );
            let mut compact = vec![5u8];
            compact.extend(std::iter::repeat_n(1, field));
            agree(
                "compact point",
                &sec1_with(curve, &below, Some(&compact)),
                None,
                Err(KeyProblem::Unparseable),
            );
            let short = vec![4u8; field];
            agree(
                "malformed point",
                &sec1_with(curve, &below, Some(&short)),
                None,
                Err(KeyProblem::Unparseable),
            );
        }
        let secp256k1 = ObjectIdentifier::new_unwrap("1.3.132.0.10");
        agree(
            "unknown curve",
            &sec1_with(secp256k1, &[0x11; 32], None),
            None,
            Err(KeyProblem::Unparseable),
        );
    }

    /// A PKCS#1 key from a real one, with `edit` applied to its components.
    fn pkcs1_edited(edit: impl FnOnce(&mut pkcs1::RsaPrivateKey<'_>)) -> String {
        let der = pkcs1_der(key("rsa-1024"));
        let mut rsa = pkcs1::RsaPrivateKey::try_from(der.as_slice()).unwrap();
        edit(&mut rsa);
        armour("RSA PRIVATE KEY", &rsa.to_der().unwrap())
    }

    fn uint(bytes: &'static [u8]) -> pkcs1::UintRef<'static> {
        pkcs1::UintRef::new(bytes).unwrap()
    }

    #[test]
    fn rsa_component_checks_agree() {
        type Edit = fn(&mut pkcs1::RsaPrivateKey<'_>);
        let cases: [(&str, Edit); 8] = [
            ("e = 1", |k| k.public_exponent = uint(&[1])),
            ("e even", |k| k.public_exponent = uint(&[1, 0, 0])),
            ("e = 2^33 + 1", |k| {
                k.public_exponent = uint(&[2, 0, 0, 0, 1])
            }),
            ("e > u64", |k| {
                k.public_exponent = uint(&[1, 0, 0, 0, 0, 0, 0, 0, 1])
            }),
            ("n even", |k| {
                k.modulus = uint(&[0x80, 0, 0, 0, 0, 0, 0, 0, 2])
            }),
            ("n < e", |k| k.modulus = uint(&[0x01, 0x01])),
            ("p = 1", |k| k.prime1 = uint(&[1])),
            ("p = q", |k| k.prime1 = k.prime2),
        ];
        for (label, edit) in cases {
            agree(
                label,
                &pkcs1_edited(edit),
                None,
                Err(KeyProblem::Unparseable),
            );
        }
        agree("untouched", &pkcs1_edited(|_| {}), None, Ok(()));
    }

    fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&u32::try_from(bytes.len()).unwrap().to_be_bytes());
        out.extend_from_slice(bytes);
    }

    fn strings(parts: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for part in parts {
            put_string(&mut out, part);
        }
        out
    }

    /// The private half of an unencrypted OpenSSH key: check-ints, key fields, comment and
    /// `padding` pad bytes (`None`: as many as align it to 8, as OpenSSH writes it).
    fn section(
        checkints: (u32, u32),
        keypair: &[u8],
        comment: &[u8],
        padding: Option<usize>,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&checkints.0.to_be_bytes());
        out.extend_from_slice(&checkints.1.to_be_bytes());
        out.extend_from_slice(keypair);
        put_string(&mut out, comment);
        let padding = padding.unwrap_or((8 - out.len() % 8) % 8);
        out.extend((1..=padding).map(|i| u8::try_from(i).unwrap()));
        out
    }

    fn openssh_binary(
        cipher: &str,
        kdf: &str,
        kdf_options: &[u8],
        nkeys: u32,
        public: &[u8],
        section: &[u8],
    ) -> Vec<u8> {
        let mut out = OPENSSH_MAGIC.to_vec();
        put_string(&mut out, cipher.as_bytes());
        put_string(&mut out, kdf.as_bytes());
        put_string(&mut out, kdf_options);
        out.extend_from_slice(&nkeys.to_be_bytes());
        put_string(&mut out, public);
        put_string(&mut out, section);
        out
    }

    fn openssh_plain(public: &[u8], section: &[u8]) -> String {
        armour(
            "OPENSSH PRIVATE KEY",
            &openssh_binary("none", "none", b"", 1, public, section),
        )
    }

    #[test]
    fn p521_scalar_lengths_agree() {
        // OpenSSH writes the scalar as a minimal mpint: 65 bytes for about one key in four.
        let public = key("ecdsa-p521").public_key().key_data().ecdsa().unwrap();
        let point = public.as_sec1_bytes();
        let blob = strings(&[b"ecdsa-sha2-nistp521", b"nistp521", point]);
        for (len, lead, expected) in [
            (62, 0x11, Some(Err(KeyProblem::Unparseable))),
            (63, 0x11, Some(Err(KeyProblem::Unparseable))),
            (64, 0x11, Some(Ok(()))),
            (65, 0x11, Some(Ok(()))),
            (66, 0x01, Some(Ok(()))),
            (67, 0x00, Some(Ok(()))),
            (67, 0x01, Some(Err(KeyProblem::Unparseable))),
            (68, 0x00, None),
            (70, 0x00, None),
        ] {
            let mut scalar = vec![0x11u8; len];
            scalar[0] = lead;
            let mut keypair = blob.clone();
            put_string(&mut keypair, &scalar);
            let pem = openssh_plain(&blob, &section((7, 7), &keypair, b"", None));
            match expected {
                Some(expected) => agree(&format!("P-521 {len}-byte scalar"), &pem, None, expected),
                None => agree_any(&format!("P-521 {len}-byte scalar"), &pem, None),
            }
        }
        let p256 = key("ecdsa-p256").public_key().key_data().ecdsa().unwrap();
        let blob = strings(&[b"ecdsa-sha2-nistp256", b"nistp256", p256.as_sec1_bytes()]);
        for len in [31, 32, 33] {
            let mut keypair = blob.clone();
            put_string(&mut keypair, &vec![0u8; len]);
            let pem = openssh_plain(&blob, &section((7, 7), &keypair, b"", None));
            agree_any(&format!("P-256 {len}-byte scalar"), &pem, None);
        }
    }

    fn ed25519_parts() -> (Vec<u8>, Vec<u8>) {
        let pair = key("ed25519").key_data().ed25519().unwrap();
        let public = strings(&[b"ssh-ed25519", &pair.public.0]);
        let mut secret = pair.private.to_bytes().to_vec();
        secret.extend_from_slice(&pair.public.0);
        let keypair = strings(&[b"ssh-ed25519", &pair.public.0, &secret]);
        (public, keypair)
    }

    #[test]
    fn crafted_openssh_structures_agree() {
        let (public, keypair) = ed25519_parts();
        agree(
            "baseline",
            &openssh_plain(&public, &section((1, 1), &keypair, b"c", None)),
            None,
            Ok(()),
        );
        // PuTTYgen pads unencrypted keys with up to 16 bytes; the total must stay 8-aligned.
        for padding in 0..=24 {
            let pem = openssh_plain(&public, &section((1, 1), &keypair, b"c", Some(padding)));
            agree_any(&format!("{padding} padding bytes"), &pem, None);
        }
        let mut bad_padding = section((1, 1), &keypair, b"c", Some(13));
        *bad_padding.last_mut().unwrap() = 0;
        agree(
            "wrong padding bytes",
            &openssh_plain(&public, &bad_padding),
            None,
            Err(KeyProblem::Unparseable),
        );
        let cases = [
            (
                "check-ints differ",
                openssh_plain(&public, &section((1, 2), &keypair, b"c", None)),
            ),
            (
                "comment not UTF-8",
                openssh_plain(&public, &section((1, 1), &keypair, b"\xff\xfe", None)),
            ),
            (
                "two keys",
                armour(
                    "OPENSSH PRIVATE KEY",
                    &openssh_binary(
                        "none",
                        "none",
                        b"",
                        2,
                        &public,
                        &section((1, 1), &keypair, b"", None),
                    ),
                ),
            ),
            (
                "KDF without cipher",
                armour(
                    "OPENSSH PRIVATE KEY",
                    &openssh_binary(
                        "none",
                        "bcrypt",
                        &strings(&[b"salt"]),
                        1,
                        &public,
                        &section((1, 1), &keypair, b"", None),
                    ),
                ),
            ),
            (
                "unknown cipher",
                armour(
                    "OPENSSH PRIVATE KEY",
                    &openssh_binary(
                        "rot13",
                        "none",
                        b"",
                        1,
                        &public,
                        &section((1, 1), &keypair, b"", None),
                    ),
                ),
            ),
            (
                "3des-cbc, not built",
                armour(
                    "OPENSSH PRIVATE KEY",
                    &openssh_binary(
                        "3des-cbc",
                        "bcrypt",
                        &[
                            strings(&[b"saltsaltsaltsalt"]),
                            16u32.to_be_bytes().to_vec(),
                        ]
                        .concat(),
                        1,
                        &public,
                        &[0u8; 64],
                    ),
                ),
            ),
        ];
        for (label, pem) in cases {
            agree_any(label, &pem, Some(PASS));
        }
        let mut trailing = dearmour(&openssh_plain(
            &public,
            &section((1, 1), &keypair, b"", None),
        ));
        trailing.push(0);
        agree(
            "trailing byte",
            &armour("OPENSSH PRIVATE KEY", &trailing),
            None,
            Err(KeyProblem::Unparseable),
        );
        let mut flipped = key("ed25519").key_data().ed25519().unwrap().public.0;
        flipped[0] ^= 1;
        let other_public = strings(&[b"ssh-ed25519", &flipped]);
        let pem = openssh_plain(&other_public, &section((1, 1), &keypair, b"", None));
        agree(
            "outer public key differs",
            &pem,
            None,
            Err(KeyProblem::Unparseable),
        );

        // Algorithms russh decodes though it cannot log in with them; `ssh-key` reads them
        // all without arithmetic, so they agree too.
        let mpint: &[u8] = &[0x11, 0x22, 0x33];
        let dsa_public = strings(&[b"ssh-dss", mpint, mpint, mpint, mpint]);
        let dsa_keypair = strings(&[b"ssh-dss", mpint, mpint, mpint, mpint, mpint]);
        let pem = openssh_plain(&dsa_public, &section((1, 1), &dsa_keypair, b"", None));
        agree("DSA", &pem, None, Ok(()));
        let sk_public = strings(&[b"sk-ssh-ed25519@openssh.com", &[0x33; 32], b"ssh:"]);
        let mut sk_keypair = sk_public.clone();
        sk_keypair.push(1);
        sk_keypair.extend_from_slice(&strings(&[b"handle", b""]));
        let pem = openssh_plain(&sk_public, &section((1, 1), &sk_keypair, b"", None));
        agree("sk-ssh-ed25519", &pem, None, Ok(()));
        let other_public = strings(&[b"foo@example.com", b"public"]);
        let other_keypair = strings(&[b"foo@example.com", b"public", b"private"]);
        let pem = openssh_plain(&other_public, &section((1, 1), &other_keypair, b"", None));
        agree("unknown algorithm", &pem, None, Ok(()));
    }

    #[test]
    fn garbage_agrees() {
        let cases = [
            "",
            "hello",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----",
            "-----BEGIN OPENSSH PRIVATE KEY-----\n-----END OPENSSH PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
            "-----BEGIN RSA PRIVATE KEY-----\nMAA=\n-----END RSA PRIVATE KEY-----",
            "-----BEGIN EC PRIVATE KEY-----\n!!!!\n-----END EC PRIVATE KEY-----",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----",
            "-----BEGIN DSA PRIVATE KEY-----\nAAAA\n-----END DSA PRIVATE KEY-----",
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----",
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,0g000000000000000000000000000000\n\nAAAA\n-----END RSA PRIVATE KEY-----",
            "-----BEGIN RSA PRIVATE KEY-----\nDEK-Info: AES-128-CBC,00000000000000000000000000000000\n\nAAAA\n-----END RSA PRIVATE KEY-----",
            "-----BEGIN RSA PRIVATE KEY-----\nDEK-Info: AES-128-CBC,00000000000000000000000000000000\n\nAAA\n-----END RSA PRIVATE KEY-----",
            "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n",
            "Proc-Type: 4,ENCRYPTED",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
        ];
        for pem in cases {
            agree_any(pem, pem, Some(PASS));
        }
        assert_eq!(
            parse_private_key("hello", None),
            Err(KeyProblem::Unparseable)
        );
    }

    #[test]
    fn framing_agrees() {
        let plain = key("ed25519")
            .to_openssh(fork::LineEnding::LF)
            .unwrap()
            .to_string();
        let body = dearmour(&plain);
        let one_line = format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
            BASE64.encode(&body)
        );
        let (head, tail) = body.split_at(10);
        let concatenated = format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
            BASE64.encode(head),
            BASE64.encode(tail)
        );
        let lines: Vec<&str> = plain.lines().collect();
        let cases = [
            ("one line", one_line),
            ("padded pieces", concatenated),
            ("text around", format!("my key:\n{plain}\nthanks")),
            (
                "no END",
                plain.replace("-----END OPENSSH PRIVATE KEY-----", ""),
            ),
            (
                "END without dashes",
                plain.replace("-----END OPENSSH PRIVATE KEY-----", "-----END"),
            ),
            ("blank lines", plain.replace('\n', "\n\n")),
            (
                "header line",
                plain.replacen('\n', "\nComment: \"work laptop\"\n", 1),
            ),
            (
                "trailing space on BEGIN",
                plain.replacen("-----\n", "----- \n", 1),
            ),
            (
                "indented",
                plain.lines().map(|l| format!("  {l}\n")).collect(),
            ),
            ("leading whitespace", format!("\n  \n{plain}")),
            (
                "a line dropped",
                [&lines[..2], &lines[3..]].concat().join("\n"),
            ),
            (
                "later BEGIN switches decoder",
                plain.replacen("\n", "\n-----BEGIN PRIVATE KEY-----\n", 1),
            ),
            (
                "two keys",
                format!(
                    "{plain}{}",
                    key("ecdsa-p256")
                        .to_openssh(fork::LineEnding::LF)
                        .unwrap()
                        .as_str()
                ),
            ),
            ("CR only", plain.replace('\n', "\r")),
        ];
        for (label, pem) in cases {
            agree_any(label, &pem, None);
        }
        // Any line that is not pure base64 is skipped, even prose between the base64 lines.
        let prose = plain.replacen('\n', "\nsee the wiki\n", 2);
        agree("prose line inside", &prose, None, Ok(()));
    }

    #[test]
    fn truncated_and_corrupted_bodies_agree() {
        let (public, keypair) = ed25519_parts();
        let openssh = dearmour(&openssh_plain(
            &public,
            &section((1, 1), &keypair, b"", None),
        ));
        let encrypted = dearmour(&encrypt_openssh(key("ecdsa-p256"), fork::Cipher::Aes256Ctr));
        let bodies = [
            ("OPENSSH PRIVATE KEY", openssh, 1),
            ("OPENSSH PRIVATE KEY", encrypted, 1),
            ("PRIVATE KEY", pkcs8_der(key("ed25519")), 1),
            ("EC PRIVATE KEY", sec1_der(key("ecdsa-p384"), true, true), 1),
            ("RSA PRIVATE KEY", pkcs1_der(key("rsa-1024")), 5),
        ];
        for (label, body, step) in &bodies {
            for len in (0..body.len()).step_by(*step) {
                agree_any(
                    &format!("{label} cut at {len}"),
                    &armour(label, &body[..len]),
                    Some(PASS),
                );
            }
        }
        // Flipping a ciphertext byte is what a wrong passphrase looks like to the decoder.
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let (label, body, _) = &bodies[1];
        for _ in 0..64 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let mut corrupted = body.clone();
            let at = body.len() - 1 - usize::try_from(rng % 64).unwrap();
            corrupted[at] ^= 0x80;
            agree_any(
                &format!("{label} flipped at {at}"),
                &armour(label, &corrupted),
                Some(PASS),
            );
        }
    }

    #[test]
    fn base64_matches_data_encoding() {
        // Symbols chosen to hit every trailing-bit and padding position.
        let alphabet = ['A', 'B', 'Q', 'g', 'w', '/', '='];
        let mut inputs = vec![String::new()];
        for len in 1..=5 {
            let mut next = Vec::new();
            for prefix in inputs.iter().filter(|s| s.len() == len - 1) {
                for c in alphabet {
                    next.push(format!("{prefix}{c}"));
                }
            }
            inputs.extend(next);
        }
        let blocks: Vec<String> = inputs.iter().filter(|s| s.len() == 4).cloned().collect();
        for a in blocks.iter().step_by(7) {
            for b in blocks.iter().step_by(11) {
                inputs.push(format!("{a}{b}"));
            }
        }
        for input in &inputs {
            let ours = decode_base64(input).map(|bytes| bytes.to_vec());
            let theirs = BASE64_MIME.decode(input.as_bytes()).ok();
            assert_eq!(ours, theirs, "{input:?}");
        }
    }

    /// Rewrite the bcrypt rounds of an encrypted OpenSSH key: the last 4 bytes of its
    /// kdfoptions string.
    fn with_bcrypt_rounds(pem: &str, rounds: u32) -> String {
        let mut body = dearmour(pem);
        let mut at = OPENSSH_MAGIC.len();
        for _ in 0..3 {
            let len = u32::from_be_bytes(body[at..at + 4].try_into().unwrap());
            at += 4 + usize::try_from(len).unwrap();
        }
        body[at - 4..at].copy_from_slice(&rounds.to_be_bytes());
        armour("OPENSSH PRIVATE KEY", &body)
    }

    /// Refused before any derivation: a KDF that did run would take hours or gigabytes. The
    /// bound is loose because other builds share this machine.
    #[track_caller]
    fn assert_too_costly(label: &str, pem: &str) {
        let started = Instant::now();
        assert_eq!(
            parse_private_key(pem, Some(PASS)),
            Err(KeyProblem::TooCostly),
            "{label}"
        );
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_millis(250),
            "{label}: took {elapsed:?}"
        );
    }

    #[test]
    fn bcrypt_rounds_are_bounded() {
        let pem = encrypt_openssh(key("ed25519"), fork::Cipher::Aes256Ctr);
        // The rewrite hits the rounds field: the same count still opens, another does not.
        assert_eq!(
            parse_private_key(&with_bcrypt_rounds(&pem, 2), Some(PASS)),
            Ok(())
        );
        let three = with_bcrypt_rounds(&pem, 3);
        assert_eq!(
            parse_private_key(&three, Some(PASS)),
            Err(KeyProblem::WrongPassphrase)
        );
        for rounds in [MAX_BCRYPT_ROUNDS + 1, u32::MAX] {
            let costly = with_bcrypt_rounds(&pem, rounds);
            assert_too_costly(&format!("{rounds} rounds"), &costly);
            // Without a passphrase nothing would be derived, so the usual answer stands.
            assert_eq!(
                parse_private_key(&costly, None),
                Err(KeyProblem::PassphraseRequired)
            );
        }
    }

    #[test]
    fn pbkdf2_iterations_are_bounded() {
        let (salt, iv) = ([7u8; 16], [9u8; 16]);
        for iterations in [MAX_PBKDF2_ITERATIONS + 1, u32::MAX] {
            let params = Parameters {
                kdf: Pbes2Kdf::Pbkdf2(Pbkdf2Params {
                    salt: &salt,
                    iteration_count: iterations,
                    key_length: None,
                    prf: Pbkdf2Prf::HmacWithSha256,
                }),
                encryption: pbes2::EncryptionScheme::Aes256Cbc { iv: &iv },
            };
            assert_too_costly(
                &format!("{iterations} iterations"),
                &junk_encrypted_pkcs8(params),
            );
        }
        let modest = Parameters::pbkdf2_sha256_aes256cbc(1000, &salt, &iv).unwrap();
        let pem = junk_encrypted_pkcs8(modest);
        assert_eq!(
            parse_private_key(&pem, Some(PASS)),
            Err(KeyProblem::WrongPassphrase)
        );
    }

    #[test]
    fn scrypt_work_is_bounded() {
        let (salt, iv) = ([7u8; 16], [9u8; 16]);
        let scrypt = |n: u64, r: u16, p: u16| Parameters {
            kdf: Pbes2Kdf::Scrypt(ScryptParams {
                salt: &salt,
                cost_parameter: n,
                block_size: r,
                parallelization: p,
                key_length: None,
            }),
            encryption: pbes2::EncryptionScheme::Aes256Cbc { iv: &iv },
        };
        for (label, params) in [
            ("1 GiB", scrypt(1 << 20, 8, 1)),
            ("80 MiB", scrypt(1 << 17, 5, 1)),
            ("16 MiB, 5 times", scrypt(1 << 14, 8, 5)),
            ("2^62 blocks", scrypt(1 << 62, 1, 1)),
            ("no p", scrypt(1 << 20, 8, 0)),
        ] {
            assert_too_costly(label, &junk_encrypted_pkcs8(params));
        }
        // At the bound scrypt runs (and the junk ciphertext then fails to decrypt).
        for params in [
            scrypt(1 << 10, 8, 1),
            scrypt(1 << 16, 8, 1),
            scrypt(1 << 14, 8, 4),
        ] {
            let pem = junk_encrypted_pkcs8(params);
            assert_eq!(
                parse_private_key(&pem, Some(PASS)),
                Err(KeyProblem::WrongPassphrase)
            );
        }
    }

    #[test]
    fn too_costly_names_its_bounds() {
        let message = KeyProblem::TooCostly.to_string();
        for bound in [
            "256 OpenSSH bcrypt rounds",
            "1000000 PBKDF2 iterations",
            "64 MiB of scrypt work",
        ] {
            assert!(message.contains(bound), "{message}");
        }
    }

    /// What russh decodes but this module cannot check without curve and big-number
    /// arithmetic; see the module doc. Only a hand-edited key gets here.
    #[test]
    fn known_gaps_are_only_self_consistency() {
        let p256 = key("ecdsa-p256");
        let sec1 = sec1_der(p256, true, true);
        let mut ec = EcPrivateKey::try_from(sec1.as_slice()).unwrap();
        let mut point = ec.public_key.unwrap().to_vec();
        *point.last_mut().unwrap() ^= 1;
        ec.public_key = Some(&point);
        let pem = armour("EC PRIVATE KEY", &ec.to_der().unwrap());
        assert_eq!(russh_verdict(&pem, None), Err(KeyProblem::Unparseable));
        assert_eq!(parse_private_key(&pem, None), Ok(()));

        let pem = pkcs1_edited(|k| k.private_exponent = uint(&[3]));
        assert_eq!(russh_verdict(&pem, None), Err(KeyProblem::Unparseable));
        assert_eq!(parse_private_key(&pem, None), Ok(()));

        let (public, mut keypair) = ed25519_parts();
        // The secret half sits 32 bytes before the end of the key fields; change it.
        let at = keypair.len() - 40;
        keypair[at] ^= 1;
        let pem = openssh_plain(&public, &section((1, 1), &keypair, b"", None));
        assert_eq!(russh_verdict(&pem, None), Err(KeyProblem::Unparseable));
        assert_eq!(parse_private_key(&pem, None), Ok(()));
    }

    fn have(tool: &str) -> bool {
        Command::new(tool).arg("-h").output().is_ok()
    }

    fn run(program: &str, args: &[&str]) {
        let output = Command::new(program).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Real-world output of the tools users make keys with, when this machine has them.
    #[test]
    fn agrees_on_ssh_keygen_and_openssl_output() {
        if !have("ssh-keygen") || !have("openssl") {
            eprintln!("ssh-keygen or openssl missing: skipping the real-world key check");
            return;
        }
        let dir = std::env::temp_dir().join(format!("sshkey-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        let pass_arg = format!("pass:{PASS}");
        let mut cases: Vec<(String, Option<&str>, Result<(), KeyProblem>)> = Vec::new();

        let types: [(&str, &[&str]); 5] = [
            ("ed25519", &["-t", "ed25519"]),
            ("p256", &["-t", "ecdsa", "-b", "256"]),
            ("p384", &["-t", "ecdsa", "-b", "384"]),
            ("p521", &["-t", "ecdsa", "-b", "521"]),
            ("rsa", &["-t", "rsa", "-b", "2048"]),
        ];
        for (name, type_args) in types {
            for (format, format_args) in [
                ("openssh", &[][..]),
                ("pem", &["-m", "PEM"][..]),
                ("pkcs8", &["-m", "PKCS8"][..]),
            ] {
                for (suffix, passphrase) in [("plain", ""), ("encrypted", PASS)] {
                    let file = format!("{name}-{format}-{suffix}");
                    let out = path(&file);
                    let mut args = vec!["-q", "-C", "", "-N", passphrase, "-f", &out];
                    args.extend_from_slice(type_args);
                    args.extend_from_slice(format_args);
                    run("ssh-keygen", &args);
                    let right = (!passphrase.is_empty()).then_some(PASS);
                    // OpenSSH encrypts PEM with AES-128-CBC, which opens only for PKCS#1 RSA.
                    let expected = if suffix == "encrypted"
                        && format == "pem"
                        && name != "rsa"
                        && name != "ed25519"
                    {
                        Err(KeyProblem::WrongPassphrase)
                    } else {
                        Ok(())
                    };
                    cases.push((file, right, expected));
                }
            }
        }
        // One P-521 key in four has a 65-byte scalar: make a dozen.
        for i in 0..12 {
            let file = format!("p521-extra-{i}");
            run(
                "ssh-keygen",
                &[
                    "-q",
                    "-C",
                    "",
                    "-N",
                    "",
                    "-t",
                    "ecdsa",
                    "-b",
                    "521",
                    "-f",
                    &path(&file),
                ],
            );
            cases.push((file, None, Ok(())));
        }

        run(
            "openssl",
            &[
                "genpkey",
                "-algorithm",
                "ed25519",
                "-out",
                &path("ossl-ed25519"),
            ],
        );
        run(
            "openssl",
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
                "-out",
                &path("ossl-p384"),
            ],
        );
        run(
            "openssl",
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:1024",
                "-out",
                &path("ossl-rsa"),
            ],
        );
        for base in ["ossl-ed25519", "ossl-p384", "ossl-rsa"] {
            cases.push((base.to_owned(), None, Ok(())));
            for (variant, args, expected) in [
                (
                    "sha256",
                    &["-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA256"][..],
                    Ok(()),
                ),
                (
                    "sha512-aes128",
                    &["-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA512"][..],
                    Ok(()),
                ),
                (
                    "scrypt",
                    &[
                        "-scrypt",
                        "-scrypt_N",
                        "1024",
                        "-scrypt_r",
                        "8",
                        "-scrypt_p",
                        "1",
                    ][..],
                    Ok(()),
                ),
                (
                    "sha1",
                    &["-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA1"][..],
                    Err(KeyProblem::WrongPassphrase),
                ),
                (
                    "des3",
                    &["-v2", "des3"][..],
                    Err(KeyProblem::WrongPassphrase),
                ),
                (
                    "pbes1",
                    &["-v1", "PBE-SHA1-3DES"][..],
                    Err(KeyProblem::WrongPassphrase),
                ),
            ] {
                let file = format!("{base}-{variant}");
                let (input, out) = (path(base), path(&file));
                let mut all = vec![
                    "pkcs8", "-topk8", "-in", &input, "-passout", &pass_arg, "-out", &out,
                ];
                all.extend_from_slice(args);
                run("openssl", &all);
                cases.push((file, Some(PASS), expected));
            }
        }
        for (file, args, right, expected) in [
            ("ossl-rsa-pkcs1", &["rsa", "-traditional"][..], None, Ok(())),
            (
                "ossl-rsa-aes128",
                &["rsa", "-traditional", "-aes128"][..],
                Some(PASS),
                Ok(()),
            ),
            (
                "ossl-rsa-aes256",
                &["rsa", "-traditional", "-aes256"][..],
                Some(PASS),
                Err(KeyProblem::WrongPassphrase),
            ),
            (
                "ossl-rsa-des3",
                &["rsa", "-traditional", "-des3"][..],
                Some(PASS),
                Err(KeyProblem::WrongPassphrase),
            ),
            ("ossl-p384-sec1", &["ec"][..], None, Ok(())),
            (
                "ossl-p384-compressed",
                &["ec", "-conv_form", "compressed"][..],
                None,
                Ok(()),
            ),
            (
                "ossl-p384-no-public",
                &["ec", "-no_public"][..],
                None,
                Ok(()),
            ),
            (
                "ossl-p384-explicit",
                &["ec", "-param_enc", "explicit"][..],
                None,
                Err(KeyProblem::Unparseable),
            ),
            (
                "ossl-p384-aes128",
                &["ec", "-aes128"][..],
                Some(PASS),
                Err(KeyProblem::WrongPassphrase),
            ),
        ] {
            let source = if file.starts_with("ossl-rsa") {
                "ossl-rsa"
            } else {
                "ossl-p384"
            };
            let mut all = args.to_vec();
            let (input, out) = (path(source), path(file));
            all.extend_from_slice(&["-in", &input, "-out", &out, "-passout", &pass_arg]);
            run("openssl", &all);
            cases.push((file.to_owned(), right, expected));
        }

        for (file, right, expected) in cases {
            agree(&file, &read(&file), right, expected);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
