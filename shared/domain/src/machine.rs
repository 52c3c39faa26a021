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
    /// An organization's machine (stored under `org:<slug>`) shows the slug as its owner.
    fn from(m: MachineSummary) -> Self {
        let (owner_id, owner_type) = match crate::vault::org_slug_of(&m.owner_id) {
            Some(slug) => (slug.to_owned(), "organization"),
            None => (m.owner_id, "user"),
        };
        Self {
            id: m.id,
            name: m.name,
            username: m.username,
            hostname: m.hostname,
            port: m.port,
            owner_id,
            owner_type,
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

/// One stored field's value, as an edit compares and writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldValue {
    Text(String),
    /// An optional text field; `None` is stored as absent (DynamoDB) or NULL (SQLite).
    OptionalText(Option<String>),
    Port(u16),
    /// A toggle, with the value an item written before the toggle existed reads as.
    Flag {
        value: bool,
        absent_reads_as: bool,
    },
}

/// A field an edit changes: its stored name (the same attribute name in both stores), the
/// value the edit read, and the value it writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldChange {
    pub field: &'static str,
    pub read: FieldValue,
    pub written: FieldValue,
}

impl MachineSummary {
    /// Every descriptive field as (stored name, value), in one fixed order: the single list an
    /// edit diffs, so a field added to the summary cannot be left out of edits by accident.
    fn fields(&self) -> [(&'static str, FieldValue); 9] {
        use FieldValue::{Flag, OptionalText, Port, Text};
        [
            ("name", Text(self.name.clone())),
            ("hostname", Text(self.hostname.clone())),
            ("port", Port(self.port)),
            ("username", Text(self.username.clone())),
            ("organization", OptionalText(self.organization.clone())),
            (
                "host_key_fingerprint",
                OptionalText(self.host_key_fingerprint.clone()),
            ),
            (
                "persistent_shell",
                Flag {
                    value: self.persistent_shell,
                    absent_reads_as: false,
                },
            ),
            (
                "recording",
                Flag {
                    value: self.recording,
                    absent_reads_as: true,
                },
            ),
            (
                "record_input",
                Flag {
                    value: self.record_input,
                    absent_reads_as: false,
                },
            ),
        ]
    }

    /// Every field as it was read, as (stored name, value): what a change of owner conditions
    /// its write on, since it rewrites the whole record.
    pub fn as_read(&self) -> Vec<(&'static str, FieldValue)> {
        self.fields().into_iter().collect()
    }

    /// The fields `updated` changes relative to `self` (the record as read). An edit writes
    /// only these, each on the condition that it still holds what was read, so two edits of
    /// different fields both land and two edits of one field cannot silently overwrite.
    pub fn changes_to(&self, updated: &MachineSummary) -> Vec<FieldChange> {
        self.fields()
            .into_iter()
            .zip(updated.fields())
            .filter(|((_, read), (_, written))| read != written)
            .map(|((field, read), (_, written))| FieldChange {
                field,
                read,
                written,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]

    use super::*;

    fn summary() -> MachineSummary {
        MachineSummary {
            id: 7,
            owner_id: "a@example.com".into(),
            name: "web".into(),
            hostname: "web.internal".into(),
            port: 22,
            username: "deploy".into(),
            organization: None,
            host_key_fingerprint: Some("SHA256:x".into()),
            persistent_shell: false,
            recording: true,
            record_input: false,
        }
    }

    #[test]
    fn an_edit_changes_only_the_fields_that_differ() {
        let read = summary();
        assert!(read.changes_to(&read.clone()).is_empty());
        let mut updated = read.clone();
        updated.port = 2222;
        updated.host_key_fingerprint = None;
        updated.recording = false;
        let changes = read.changes_to(&updated);
        let fields: Vec<_> = changes.iter().map(|c| c.field).collect();
        assert_eq!(fields, ["port", "host_key_fingerprint", "recording"]);
        assert_eq!(changes[0].read, FieldValue::Port(22));
        assert_eq!(changes[1].written, FieldValue::OptionalText(None));
        assert_eq!(
            changes[2].written,
            FieldValue::Flag {
                value: false,
                absent_reads_as: true
            }
        );
    }

    #[test]
    fn fingerprints_must_be_sha256() {
        assert!(is_valid_fingerprint(
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
        ));
        assert!(!is_valid_fingerprint("MD5:aa:bb"));
        assert!(!is_valid_fingerprint("SHA256:short"));
    }
}
