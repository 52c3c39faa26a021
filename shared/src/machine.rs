//! Machines: what a user saves, how a create request is validated, and what the API shows.
//!
//! Three shapes on purpose: [`NewMachine`] is a validated create request (secrets still in
//! plaintext, briefly), [`Machine`] is the stored record (secrets only as a [`SealedSecrets`]
//! blob), and [`MachineView`] is the only thing ever serialised to a client. There is no path
//! from a sealed or plaintext secret to a response because `MachineView` has no field for one.

use std::net::IpAddr;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::secret::MachineSecrets;
use crate::sshkey::parse_private_key;

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
        }
    }
}

impl From<Machine> for MachineView {
    fn from(m: Machine) -> Self {
        MachineSummary::from(m).into()
    }
}

/// A create request that passed validation.
#[derive(Debug)]
pub struct NewMachine {
    pub name: String,
    pub hostname: String,
    pub port: u16,
    pub username: String,
    pub organization: Option<String>,
    pub host_key_fingerprint: Option<String>,
    pub secrets: MachineSecrets,
}

const KNOWN_FIELDS: &[&str] = &[
    "name",
    "hostname",
    "port",
    "username",
    "password",
    "private_key",
    "passphrase",
    "organization",
    "host_key_fingerprint",
];

impl NewMachine {
    /// Validate a create body. Works on the raw JSON object rather than a serde struct so that
    /// every message names the offending field ("port must be ..."), which serde's positional
    /// errors do not. Unknown fields are refused: a typo such as `private-key` would otherwise
    /// silently save a machine without its key.
    pub fn from_json(body: &Value) -> Result<Self, ApiError> {
        let Value::Object(fields) = body else {
            return Err(ApiError::bad_request("Request body must be a JSON object"));
        };
        if let Some(unknown) = fields.keys().find(|k| !KNOWN_FIELDS.contains(&k.as_str())) {
            return Err(ApiError::bad_request(format!(
                "Unknown field '{}'",
                truncate(unknown, 64)
            )));
        }
        let name = required_text(fields, "name", limits::NAME)?;
        let hostname = parse_hostname(&required_text(fields, "hostname", limits::HOSTNAME)?)?;
        let port = parse_port(fields.get("port"))?;
        let username = required_text(fields, "username", limits::USERNAME)?;
        let organization = optional_text(fields, "organization", limits::ORGANIZATION)?;
        let host_key_fingerprint = optional_text(fields, "host_key_fingerprint", 128)?;
        if let Some(fp) = &host_key_fingerprint {
            if !is_valid_fingerprint(fp) {
                return Err(ApiError::bad_request(
                    "host_key_fingerprint must look like SHA256:<base64>, as ssh-keygen -lf prints it",
                ));
            }
        }
        let secrets = parse_secrets(fields)?;
        Ok(Self {
            name,
            hostname,
            port,
            username,
            organization,
            host_key_fingerprint,
            secrets,
        })
    }
}

fn parse_secrets(fields: &Map<String, Value>) -> Result<MachineSecrets, ApiError> {
    let password = optional_secret(fields, "password", limits::PASSWORD)?;
    let private_key = optional_secret(fields, "private_key", limits::PRIVATE_KEY)?;
    let passphrase = optional_secret(fields, "passphrase", limits::PASSPHRASE)?;
    if password.is_none() && private_key.is_none() {
        return Err(ApiError::bad_request(
            "Either password or private_key is required",
        ));
    }
    if let Some(key) = &private_key {
        let passphrase = passphrase.as_ref().map(|p| p.expose_secret());
        parse_private_key(key.expose_secret(), passphrase)
            .map_err(|problem| ApiError::bad_request(problem.to_string()))?;
    }
    Ok(MachineSecrets {
        password,
        private_key,
        passphrase,
    })
}

fn string_field<'a>(
    fields: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, ApiError> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::bad_request(format!("{field} must be a string"))),
    }
}

fn check_length(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.chars().count() > max {
        return Err(ApiError::bad_request(format!(
            "{field} must be at most {max} characters"
        )));
    }
    Ok(())
}

/// A required, non-blank, single-line text field, trimmed.
fn required_text(fields: &Map<String, Value>, field: &str, max: usize) -> Result<String, ApiError> {
    optional_text(fields, field, max)?
        .ok_or_else(|| ApiError::bad_request(format!("{field} is required")))
}

fn optional_text(
    fields: &Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Option<String>, ApiError> {
    let Some(raw) = string_field(fields, field)? else {
        return Ok(None);
    };
    let value = raw.trim();
    if value.is_empty() {
        return Ok(None);
    }
    check_length(field, value, max)?;
    if value.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(Some(value.to_owned()))
}

/// A secret is kept exactly as sent (a password may legitimately start with a space); an empty
/// string counts as absent.
fn optional_secret(
    fields: &Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Option<SecretString>, ApiError> {
    let Some(raw) = string_field(fields, field)? else {
        return Ok(None);
    };
    if raw.is_empty() {
        return Ok(None);
    }
    check_length(field, raw, max)?;
    Ok(Some(SecretString::from(raw.to_owned())))
}

/// The seed sends the port as a string; a JSON integer is accepted too, as clients often send it.
fn parse_port(value: Option<&Value>) -> Result<u16, ApiError> {
    const MESSAGE: &str = "port must be a number between 1 and 65535";
    let text = match value {
        None | Some(Value::Null) => return Err(ApiError::bad_request("port is required")),
        Some(Value::String(s)) if s.trim().is_empty() => {
            return Err(ApiError::bad_request("port is required"));
        }
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(ApiError::bad_request("port must be a string")),
    };
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(MESSAGE));
    }
    match text.parse::<u16>() {
        Ok(port) if port >= 1 => Ok(port),
        _ => Err(ApiError::bad_request(MESSAGE)),
    }
}

/// A DNS name or an IP literal (IPv6 with or without brackets). Stored normalised: IPs in their
/// canonical form, names lower-cased without a trailing dot.
pub fn parse_hostname(raw: &str) -> Result<String, ApiError> {
    let unbracketed = raw
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(raw);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    let name = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let all_numeric = name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if name.is_empty() || name.len() > 253 || all_numeric || !name.split('.').all(valid_label) {
        return Err(ApiError::bad_request(
            "hostname must be a DNS name or an IP address",
        ));
    }
    Ok(name)
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(body: Value) -> String {
        NewMachine::from_json(&body).unwrap_err().to_string()
    }

    fn valid() -> Value {
        json!({"name": "web", "hostname": "example.com", "port": "22", "username": "root", "password": "pw"})
    }

    fn with(field: &str, value: Value) -> Value {
        let mut body = valid();
        body[field] = value;
        body
    }

    #[test]
    fn accepts_the_seed_example() {
        let machine = NewMachine::from_json(&valid()).unwrap();
        assert_eq!(machine.port, 22);
        assert_eq!(machine.hostname, "example.com");
    }

    #[test]
    fn every_required_field_is_named_when_missing_or_blank() {
        for field in ["name", "hostname", "port", "username"] {
            let mut body = valid();
            body.as_object_mut().unwrap().remove(field);
            assert_eq!(message(body), format!("{field} is required"));
            assert_eq!(
                message(with(field, json!("   "))),
                format!("{field} is required")
            );
        }
    }

    #[test]
    fn ports_outside_1_to_65535_are_refused() {
        for port in [
            json!("0"),
            json!("65536"),
            json!("-1"),
            json!("22a"),
            json!("1e3"),
            json!(0),
        ] {
            assert_eq!(
                message(with("port", port)),
                "port must be a number between 1 and 65535"
            );
        }
        assert_eq!(
            NewMachine::from_json(&with("port", json!(2222)))
                .unwrap()
                .port,
            2222
        );
        assert_eq!(
            NewMachine::from_json(&with("port", json!("65535")))
                .unwrap()
                .port,
            65535
        );
    }

    #[test]
    fn wrong_types_name_the_field() {
        assert_eq!(message(with("name", json!(5))), "name must be a string");
        assert_eq!(message(with("port", json!(true))), "port must be a string");
        assert_eq!(
            message(with("password", json!(["x"]))),
            "password must be a string"
        );
        assert_eq!(message(json!([1, 2])), "Request body must be a JSON object");
    }

    #[test]
    fn a_secret_is_required() {
        let mut body = valid();
        body["password"] = json!("");
        assert_eq!(message(body), "Either password or private_key is required");
    }

    #[test]
    fn hostnames_accept_names_and_ips_only() {
        assert_eq!(parse_hostname("[::1]").unwrap(), "::1");
        assert_eq!(parse_hostname("2001:DB8::1").unwrap(), "2001:db8::1");
        assert_eq!(
            parse_hostname("Host.Example.COM.").unwrap(),
            "host.example.com"
        );
        for bad in [
            "a b",
            "-x.com",
            "x..com",
            "http://x",
            "1.2.3.999",
            "x/y",
            "ä.com",
        ] {
            assert!(parse_hostname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_fields_and_oversized_values_are_refused() {
        assert_eq!(
            message(with("private-key", json!("x"))),
            "Unknown field 'private-key'"
        );
        assert_eq!(
            message(with("name", json!("x".repeat(129)))),
            "name must be at most 128 characters"
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
