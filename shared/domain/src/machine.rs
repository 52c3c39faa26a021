//! Machines: what a user saves, how a create request is validated, and what the API shows.
//!
//! Three shapes on purpose: [`NewMachine`](crate::requests::NewMachine) is a validated create request (secrets still in
//! plaintext, briefly), [`Machine`] is the stored record (secrets only as a [`SealedSecrets`]
//! blob), and [`MachineView`] is the only thing ever serialised to a client. There is no path
//! from a sealed or plaintext secret to a response because `MachineView` has no field for one.

use serde::Serialize;

/// Bounds on every user-supplied field, so that nothing a client sends grows a record without
/// limit (DynamoDB items cap at 400 KB, and the request body at 64 KiB anyway).
pub mod limits {
    pub const NAME: usize = 128;
    pub const HOSTNAME: usize = 253;
    pub const USERNAME: usize = 128;
    pub const ORGANIZATION: usize = 128;
    pub const PASSWORD: usize = 4096;
    pub const PRIVATE_KEY: usize = 32 * 1024;
    pub const PASSPHRASE: usize = 1024;
}

/// A host key pin as OpenSSH prints it: `SHA256:` and unpadded base64 of 32 bytes.
pub fn is_valid_fingerprint(fp: &str) -> bool {
    use base64::Engine;
    fp.strip_prefix("SHA256:").is_some_and(|b64| {
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(b64)
            .is_ok_and(|raw| raw.len() == 32)
    })
}

/// Sealed credentials as stored: each layer's ciphertext, see `vault` for the construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSecrets {
    /// Which generation of the owner's vault key pair the outer (HPKE) layer is sealed to.
    pub vault_gen: u32,
    /// The KMS (or local key file) ciphertext of the per-machine data key.
    pub wrapped_data_key: Vec<u8>,
    /// HPKE encapsulated key.
    pub hpke_enc: Vec<u8>,
    /// HPKE ciphertext of (nonce || AES-256-GCM ciphertext under the data key).
    pub ciphertext: Vec<u8>,
}

/// A stored machine. Never serialised directly; see [`MachineView`].
#[derive(Clone, Debug)]
pub struct Machine {
    pub id: u64,
    pub owner_id: String,
    pub name: String,
    pub hostname: String,
    pub port: u16,
    pub username: String,
    pub organization: Option<String>,
    pub host_key_fingerprint: Option<String>,
    /// Run terminals inside a tmux (or screen) session on the target, so a shell survives the
    /// loss of the relay holding its SSH connection. Records written before it existed read
    /// as `false`.
    pub persistent_shell: bool,
    /// Record this machine's terminals (under `RECORDING=on`). Records written before it
    /// existed read as `true`, the default.
    pub recording: bool,
    /// Record keystrokes too (they hold passwords typed at prompts); off unless turned on.
    pub record_input: bool,
    pub sealed: SealedSecrets,
    pub created_at: i64,
}

/// What list and get return: the seed's fields plus organization and the host key pin.
/// Built by moving a summary's strings, never copying them: a list of a hundred machines is
/// the API's busiest answer.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct MachineView {
    pub id: u64,
    pub name: String,
    pub username: String,
    pub hostname: String,
    /// The seed's API carries the port as a string (`"22"`).
    #[serde(serialize_with = "as_string")]
    pub port: u16,
    pub owner_id: String,
    pub owner_type: &'static str,
    pub organization: Option<String>,
    pub host_key_fingerprint: Option<String>,
    pub persistent_shell: bool,
    pub recording: bool,
    pub record_input: bool,
}

fn as_string<S: serde::Serializer>(port: &u16, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(port)
}

/// A machine's descriptive fields without its sealed secrets or timestamps: what a listing
/// reads. A list of a hundred machines is the API's heaviest read, and it has no use for the
/// ciphertexts, so the stores do not load them (nor copy them) for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineSummary {
    pub id: u64,
    pub owner_id: String,
    pub name: String,
    pub hostname: String,
    pub port: u16,
    pub username: String,
    pub organization: Option<String>,
    pub host_key_fingerprint: Option<String>,
    pub persistent_shell: bool,
    pub recording: bool,
    pub record_input: bool,
}

impl From<Machine> for MachineSummary {
    fn from(m: Machine) -> Self {
        Self {
            id: m.id,
            owner_id: m.owner_id,
            name: m.name,
            hostname: m.hostname,
            port: m.port,
            username: m.username,
            organization: m.organization,
            host_key_fingerprint: m.host_key_fingerprint,
            persistent_shell: m.persistent_shell,
            recording: m.recording,
            record_input: m.record_input,
        }
    }
}

impl From<MachineSummary> for MachineView {
    fn from(m: MachineSummary) -> Self {
        Self {
            id: m.id,
            name: m.name,
            username: m.username,
            hostname: m.hostname,
            port: m.port,
            owner_id: m.owner_id,
            owner_type: "user",
            organization: m.organization,
            host_key_fingerprint: m.host_key_fingerprint,
            persistent_shell: m.persistent_shell,
            recording: m.recording,
            record_input: m.record_input,
        }
    }
}

impl From<Machine> for MachineView {
    fn from(m: Machine) -> Self {
        MachineSummary::from(m).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_must_be_sha256() {
        assert!(is_valid_fingerprint(
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
        ));
        assert!(!is_valid_fingerprint("MD5:aa:bb"));
        assert!(!is_valid_fingerprint("SHA256:short"));
    }
}
