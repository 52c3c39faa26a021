//! Every request body the product accepts, validated in one place.
//!
//! Each type is built from the parsed JSON body by [`FromJson`], and only a value that passed
//! every rule exists: handlers receive `NewMachine`, `MasterPasswordChange`, `ConnectRequest` or
//! `HostKeyPin`, never a raw object. Validation works on the JSON object rather than a serde
//! struct so that every message names the offending field ("port must be ..."), which serde's
//! positional errors do not, and so that secrets are moved out of the parsed body into
//! `SecretString`s instead of being copied.

use std::net::IpAddr;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::error::DomainError;
use crate::identity::Identity;
use crate::machine::{is_valid_fingerprint, limits};
use crate::orgs::{Role, Slug};
use crate::secret::MachineSecrets;

/// Shortest and longest master password accepted.
pub const MIN_MASTER_PASSWORD: usize = 8;
pub const MAX_MASTER_PASSWORD: usize = 1024;

/// A request type built from a JSON body. The edge's body extractor calls this, so a handler
/// never sees an unvalidated body.
pub trait FromJson: Sized {
    fn from_json(body: Value) -> Result<Self, DomainError>;
}

/// Bodies read as plain JSON (the sign-in routes' small forms).
impl FromJson for Value {
    fn from_json(body: Value) -> Result<Self, DomainError> {
        Ok(body)
    }
}

/// A create request that passed validation of every field. One check is left to
/// [`Machines::create`](crate::Machines::create): that `private_key` decodes with its
/// passphrase, since that may run a costly KDF.
#[derive(Debug)]
pub struct NewMachine {
    pub name: String,
    pub hostname: String,
    pub port: u16,
    pub username: String,
    pub organization: Option<String>,
    /// `owner_type: "organization"`: the organization (`organization`, then a slug) owns the
    /// machine; `None` for the caller's own machine (`owner_type` absent or `"user"`), where
    /// `organization` stays a free label.
    pub owner_org: Option<Slug>,
    pub host_key_fingerprint: Option<String>,
    /// Terminals run inside tmux (or screen) on the target; absent means `false`.
    pub persistent_shell: bool,
    /// Record this machine's terminals; absent means `true`.
    pub recording: bool,
    /// Record keystrokes as well as output; absent means `false`.
    pub record_input: bool,
    pub secrets: MachineSecrets,
}

/// Every field a create request may carry (the OpenAPI schema is checked against this list).
pub const NEW_MACHINE_FIELDS: &[&str] = &[
    "name",
    "hostname",
    "port",
    "username",
    "password",
    "private_key",
    "passphrase",
    "organization",
    "owner_type",
    "host_key_fingerprint",
    "persistent_shell",
    "recording",
    "record_input",
];

impl FromJson for NewMachine {
    /// Unknown fields are refused: a typo such as `private-key` would otherwise silently save
    /// a machine without its key.
    fn from_json(body: Value) -> Result<Self, DomainError> {
        let fields = object_with_only(&body, NEW_MACHINE_FIELDS)?;
        let name = required_text(fields, "name", limits::NAME)?;
        let hostname = parse_hostname(&required_text(fields, "hostname", limits::HOSTNAME)?)?;
        let port = parse_port(fields.get("port"))?;
        let username = required_text(fields, "username", limits::USERNAME)?;
        let organization = optional_text(fields, "organization", limits::ORGANIZATION)?;
        let owner_org = match optional_text(fields, "owner_type", 16)?.as_deref() {
            None | Some("user") => None,
            Some("organization") => {
                let slug = organization.as_deref().ok_or_else(|| {
                    DomainError::invalid(
                        "organization (the organization's slug) is required with owner_type \"organization\"",
                    )
                })?;
                Some(Slug::parse(slug)?)
            }
            Some(_) => {
                return Err(DomainError::invalid(
                    "owner_type must be \"user\" or \"organization\"",
                ));
            }
        };
        let host_key_fingerprint = optional_text(fields, "host_key_fingerprint", 128)?;
        if let Some(fp) = &host_key_fingerprint {
            if !is_valid_fingerprint(fp) {
                return Err(DomainError::invalid(
                    "host_key_fingerprint must look like SHA256:<base64>, as ssh-keygen -lf prints it",
                ));
            }
        }
        let persistent_shell = optional_bool(fields, "persistent_shell")?.unwrap_or(false);
        let recording = optional_bool(fields, "recording")?.unwrap_or(true);
        let record_input = optional_bool(fields, "record_input")?.unwrap_or(false);
        let secrets = parse_secrets(fields)?;
        Ok(Self {
            name,
            hostname,
            port,
            username,
            organization,
            owner_org,
            host_key_fingerprint,
            persistent_shell,
            recording,
            record_input,
            secrets,
        })
    }
}

/// `PATCH /api/v1/machine/{id}`: the fields to change, each optional (absent means unchanged).
/// `organization` sent as `null` or `""` clears the label. Sending `password` or `private_key`
/// replaces the whole credential set, sealed again as a create seals it (no master password
/// needed: nothing is read). `master_password` is asked for only when the edit moves a machine
/// whose host key is pinned to another host or port, because that clears the pin, and for a
/// change of owner (`owner_type`, see [`NewOwner`]), because the secrets are opened to be sealed
/// again to the new owner's key.
#[derive(Debug)]
pub struct MachinePatch {
    pub name: Option<String>,
    pub hostname: Option<String>,
    pub port: Option<u16>,
    pub username: Option<String>,
    pub organization: Option<Option<String>>,
    pub persistent_shell: Option<bool>,
    pub recording: Option<bool>,
    pub record_input: Option<bool>,
    pub secrets: Option<MachineSecrets>,
    pub master_password: Option<SecretString>,
    /// `owner_type` sent: who should own the machine after the edit (the same words as create).
    pub owner: Option<NewOwner>,
}

/// The owner a `PATCH` names with `owner_type`: `"user"` (the caller) or `"organization"` with
/// `organization` as the slug, as in create. Naming the machine's current owner changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NewOwner {
    Caller,
    Organization(Slug),
}

/// Every field an edit may carry (the OpenAPI schema is checked against this list). The host
/// key pin is not among them: it changes through `PUT host-key`, with its own rules.
pub const MACHINE_PATCH_FIELDS: &[&str] = &[
    "name",
    "hostname",
    "port",
    "username",
    "organization",
    "persistent_shell",
    "recording",
    "record_input",
    "password",
    "private_key",
    "passphrase",
    "master_password",
    "owner_type",
];

impl FromJson for MachinePatch {
    fn from_json(body: Value) -> Result<Self, DomainError> {
        let fields = object_with_only(&body, MACHINE_PATCH_FIELDS)?;
        let hostname = changed_text(fields, "hostname", limits::HOSTNAME)?
            .map(|raw| parse_hostname(&raw))
            .transpose()?;
        let port = match fields.contains_key("port") {
            true => Some(parse_port(fields.get("port"))?),
            false => None,
        };
        let organization = match fields.contains_key("organization") {
            true => Some(optional_text(fields, "organization", limits::ORGANIZATION)?),
            false => None,
        };
        let owner = parse_new_owner(fields, organization.as_ref())?;
        let replaces_secrets = ["password", "private_key", "passphrase"]
            .iter()
            .any(|field| !matches!(fields.get(*field), None | Some(Value::Null)));
        let secrets = match replaces_secrets {
            true => Some(parse_secrets(fields)?),
            false => None,
        };
        let patch = Self {
            name: changed_text(fields, "name", limits::NAME)?,
            hostname,
            port,
            username: changed_text(fields, "username", limits::USERNAME)?,
            organization,
            persistent_shell: optional_bool(fields, "persistent_shell")?,
            recording: optional_bool(fields, "recording")?,
            record_input: optional_bool(fields, "record_input")?,
            secrets,
            master_password: optional_secret(fields, "master_password", MAX_MASTER_PASSWORD)?,
            owner,
        };
        if patch.changes_nothing() {
            return Err(DomainError::invalid(
                "Nothing to change: name a field to edit",
            ));
        }
        Ok(patch)
    }
}

impl MachinePatch {
    fn changes_nothing(&self) -> bool {
        self.name.is_none()
            && self.hostname.is_none()
            && self.port.is_none()
            && self.username.is_none()
            && self.organization.is_none()
            && self.persistent_shell.is_none()
            && self.recording.is_none()
            && self.record_input.is_none()
            && self.secrets.is_none()
            && self.owner.is_none()
    }
}

/// `owner_type` of a `PATCH`: absent leaves the owner alone (and `organization` alone stays
/// the label it always was on one's own machine); `"organization"` takes the slug from
/// `organization`, as create does.
fn parse_new_owner(
    fields: &Map<String, Value>,
    organization: Option<&Option<String>>,
) -> Result<Option<NewOwner>, DomainError> {
    match optional_text(fields, "owner_type", 16)?.as_deref() {
        None => Ok(None),
        Some("user") => Ok(Some(NewOwner::Caller)),
        Some("organization") => {
            let slug = organization.and_then(Option::as_deref).ok_or_else(|| {
                DomainError::invalid(
                    "organization (the organization's slug) is required with owner_type \"organization\"",
                )
            })?;
            Ok(Some(NewOwner::Organization(Slug::parse(slug)?)))
        }
        Some(_) => Err(DomainError::invalid(
            "owner_type must be \"user\" or \"organization\"",
        )),
    }
}

/// `POST /api/v1/orgs`: `{"slug": "platform-team", "name": "Platform team"}`.
#[derive(Debug)]
pub struct NewOrg {
    pub slug: Slug,
    pub name: String,
}

/// Every field an organization create may carry.
pub const NEW_ORG_FIELDS: &[&str] = &["slug", "name"];

impl FromJson for NewOrg {
    fn from_json(body: Value) -> Result<Self, DomainError> {
        let fields = object_with_only(&body, NEW_ORG_FIELDS)?;
        let slug = Slug::parse(&required_text(fields, "slug", 40)?)?;
        let name = required_text(fields, "name", crate::orgs::model::MAX_NAME)?;
        Ok(Self { slug, name })
    }
}

/// `POST /api/v1/orgs/{slug}/invitations`: `{"email": "...", "role": "member"}`. The email is
/// kept lower-case: the invitee accepts by signing in with it, in whatever case.
#[derive(Debug)]
pub struct OrgInvite {
    pub email: String,
    pub role: Role,
}

/// Every field an invitation may carry.
pub const ORG_INVITE_FIELDS: &[&str] = &["email", "role"];

impl FromJson for OrgInvite {
    fn from_json(body: Value) -> Result<Self, DomainError> {
        let fields = object_with_only(&body, ORG_INVITE_FIELDS)?;
        let raw = required_text(fields, "email", 254)?;
        let email = Identity::email(&raw)
            .ok_or_else(|| DomainError::invalid("email must be an email address"))?
            .0
            .to_ascii_lowercase();
        let role = parse_role(fields)?;
        Ok(Self { email, role })
    }
}

/// `PUT /api/v1/orgs/{slug}/members/{member}`: `{"role": "admin"}`.
#[derive(Debug)]
pub struct RoleUpdate {
    pub role: Role,
}

impl FromJson for RoleUpdate {
    fn from_json(body: Value) -> Result<Self, DomainError> {
        let fields = object_with_only(&body, &["role"])?;
        Ok(Self {
            role: parse_role(fields)?,
        })
    }
}

fn parse_role(fields: &Map<String, Value>) -> Result<Role, DomainError> {
    let raw = required_text(fields, "role", 16)?;
    Role::parse(&raw)
        .ok_or_else(|| DomainError::invalid("role must be owner, admin, member or auditor"))
}

/// `POST /api/v1/orgs/{slug}/members/{member}/key`, `POST /api/v1/orgs/{slug}/key/rotate` and
/// the optional body of `DELETE /api/v1/orgs/{slug}/members/{member}`: `{"password": master}`,
/// the caller's own master password (it opens their copy of the organization's key).
pub struct OrgKeyAction {
    pub password: SecretString,
}

impl FromJson for OrgKeyAction {
    fn from_json(body: Value) -> Result<Self, DomainError> {
        let fields = object_with_only(&body, &["password"])?;
        let password = optional_secret(fields, "password", MAX_MASTER_PASSWORD * 4)?
            .ok_or_else(|| DomainError::invalid("password (your master password) is required"))?;
        Ok(Self { password })
    }
}

/// `PUT /api/v1/master-password`: `{"password": new, "current_password": old}`, the latter only
/// when changing an existing one.
pub struct MasterPasswordChange {
    pub password: SecretString,
    pub current: Option<SecretString>,
}

/// Every field a master-password request may carry.
pub const MASTER_PASSWORD_FIELDS: &[&str] = &["password", "current_password"];

impl FromJson for MasterPasswordChange {
    fn from_json(body: Value) -> Result<Self, DomainError> {
        let fields = object_with_only(&body, MASTER_PASSWORD_FIELDS)?;
        let password = optional_secret(fields, "password", usize::MAX)?
            .ok_or_else(|| DomainError::invalid("password is required"))?;
        check_master_password_policy(&password)?;
        let current = optional_secret(fields, "current_password", usize::MAX)?;
        Ok(Self { password, current })
    }
}

fn check_master_password_policy(password: &SecretString) -> Result<(), DomainError> {
    let length = password.expose_secret().chars().count();
    if length < MIN_MASTER_PASSWORD {
        return Err(DomainError::invalid(format!(
            "password must be at least {MIN_MASTER_PASSWORD} characters"
        )));
    }
    if length > MAX_MASTER_PASSWORD {
        return Err(DomainError::invalid(format!(
            "password must be at most {MAX_MASTER_PASSWORD} characters"
        )));
    }
    Ok(())
}

/// `POST /api/v1/machine/{id}/connect`: `{"password": master}`, the seed's shape, plus an
/// optional `reattach`: the name of the tmux (or screen) session a persistent-shell machine's
/// terminal attaches to, or creates under that name. Other fields are ignored, as the seed's
/// clients may send them.
pub struct ConnectRequest {
    pub master_password: SecretString,
    pub reattach: Option<SessionName>,
}

impl FromJson for ConnectRequest {
    /// The password is moved out of the parsed JSON, not copied, so the `SecretString`
    /// (zeroized on drop) is the only copy this process owns. Not covered: the request body
    /// bytes (hyper's buffer) and serde_json's scratch buffer for strings with escapes.
    fn from_json(mut body: Value) -> Result<Self, DomainError> {
        let reattach = match body.get("reattach") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => Some(SessionName::parse(name)?),
            Some(_) => return Err(DomainError::invalid("reattach must be a string")),
        };
        match body.get_mut("password") {
            Some(Value::String(p)) if !p.is_empty() => Ok(Self {
                master_password: SecretString::from(std::mem::take(p)),
                reattach,
            }),
            Some(Value::String(_)) | None | Some(Value::Null) => Err(DomainError::invalid(
                "password (the master password) is required",
            )),
            Some(_) => Err(DomainError::invalid("password must be a string")),
        }
    }
}

/// A persistent shell's session name: `sushi-` and 8 to 32 lower-case hex digits. The relay
/// puts it into a command line on the target, so it is held to this alphabet rather than
/// quoted: nothing a client sends can reach the remote shell as syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionName(String);

impl SessionName {
    pub const PREFIX: &'static str = "sushi-";
    pub const MIN_HEX: usize = 8;
    pub const MAX_HEX: usize = 32;
    /// The same rule as a regular expression, for the OpenAPI document (checked by its tests).
    pub const PATTERN: &'static str = "^sushi-[0-9a-f]{8,32}$";

    pub fn parse(name: &str) -> Result<Self, DomainError> {
        let valid = name.strip_prefix(Self::PREFIX).is_some_and(|hex| {
            (Self::MIN_HEX..=Self::MAX_HEX).contains(&hex.len())
                && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(DomainError::invalid(
                "reattach must be a session name like sushi-0123abcd (sushi- and 8 to 32 lower-case hex digits)",
            ))
        }
    }

    /// A fresh name for a new terminal: 16 random hex digits (64 bits), so two terminals of
    /// one account never pick the same session by chance.
    pub fn random() -> Self {
        let bytes: [u8; 8] = rand::random();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self(format!("{}{hex}", Self::PREFIX))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `PUT /api/v1/machine/{id}/host-key`:
/// `{"fingerprint": "SHA256:…" | null, "master_password": "…"}`: pre-set, re-pin after a
/// legitimate key rotation, or clear (the next connect pins again). Replacing or clearing an
/// existing pin needs the master password: a stolen session alone must not be able to point a
/// machine at another host key.
pub struct HostKeyPin {
    pub fingerprint: Option<String>,
    pub master_password: Option<SecretString>,
}

impl FromJson for HostKeyPin {
    fn from_json(mut body: Value) -> Result<Self, DomainError> {
        let master_password = match body.get_mut("master_password") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) if p.is_empty() => None,
            Some(Value::String(p)) => Some(SecretString::from(std::mem::take(p))),
            Some(_) => return Err(DomainError::invalid("master_password must be a string")),
        };
        let fingerprint = match body.get("fingerprint") {
            Some(Value::Null) => None,
            Some(Value::String(fp)) if is_valid_fingerprint(fp.trim()) => {
                Some(fp.trim().to_owned())
            }
            Some(Value::String(_)) => {
                return Err(DomainError::invalid(
                    "fingerprint must look like SHA256:<43 base64 characters> (as ssh-keygen -lf prints it)",
                ));
            }
            None => {
                return Err(DomainError::invalid(
                    "fingerprint is required (a SHA256:… string, or null to clear the pin)",
                ));
            }
            Some(_) => {
                return Err(DomainError::invalid("fingerprint must be a string or null"));
            }
        };
        Ok(Self {
            fingerprint,
            master_password,
        })
    }
}

/// The body as an object that has no field outside `known`.
fn object_with_only<'a>(
    body: &'a Value,
    known: &[&str],
) -> Result<&'a Map<String, Value>, DomainError> {
    let Value::Object(fields) = body else {
        return Err(DomainError::invalid("Request body must be a JSON object"));
    };
    if let Some(unknown) = fields.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(DomainError::invalid(format!(
            "Unknown field '{}'",
            truncate(unknown, 64)
        )));
    }
    Ok(fields)
}

fn parse_secrets(fields: &Map<String, Value>) -> Result<MachineSecrets, DomainError> {
    let password = optional_secret(fields, "password", limits::PASSWORD)?;
    let private_key = optional_secret(fields, "private_key", limits::PRIVATE_KEY)?;
    let passphrase = optional_secret(fields, "passphrase", limits::PASSPHRASE)?;
    if password.is_none() && private_key.is_none() {
        return Err(DomainError::invalid(
            "Either password or private_key is required",
        ));
    }
    // Whether the key decodes (and decrypts with its passphrase) is checked by
    // `Machines::create`, because decrypting it is a key derivation: it belongs on the blocking
    // pool behind the KDF gate, not in body parsing on the async runtime.
    Ok(MachineSecrets {
        password,
        private_key,
        passphrase,
    })
}

fn string_field<'a>(
    fields: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, DomainError> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(DomainError::invalid(format!("{field} must be a string"))),
    }
}

fn check_length(field: &str, value: &str, max: usize) -> Result<(), DomainError> {
    if value.chars().count() > max {
        return Err(DomainError::invalid(format!(
            "{field} must be at most {max} characters"
        )));
    }
    Ok(())
}

/// A required, non-blank, single-line text field, trimmed.
fn required_text(
    fields: &Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<String, DomainError> {
    optional_text(fields, field, max)?
        .ok_or_else(|| DomainError::invalid(format!("{field} is required")))
}

fn optional_text(
    fields: &Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Option<String>, DomainError> {
    let Some(raw) = string_field(fields, field)? else {
        return Ok(None);
    };
    let value = raw.trim();
    if value.is_empty() {
        return Ok(None);
    }
    check_length(field, value, max)?;
    if value.chars().any(char::is_control) {
        return Err(DomainError::invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(Some(value.to_owned()))
}

/// A field an edit may leave out but not blank: absent is `None`, present must be non-blank.
fn changed_text(
    fields: &Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Option<String>, DomainError> {
    if !fields.contains_key(field) {
        return Ok(None);
    }
    optional_text(fields, field, max)?
        .map(Some)
        .ok_or_else(|| DomainError::invalid(format!("{field} must not be blank")))
}

/// An optional JSON boolean; `null` counts as absent.
fn optional_bool(fields: &Map<String, Value>, field: &str) -> Result<Option<bool>, DomainError> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(*value)),
        Some(_) => Err(DomainError::invalid(format!(
            "{field} must be true or false"
        ))),
    }
}

/// A secret is kept exactly as sent (a password may legitimately start with a space); an empty
/// string counts as absent.
fn optional_secret(
    fields: &Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Option<SecretString>, DomainError> {
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
fn parse_port(value: Option<&Value>) -> Result<u16, DomainError> {
    const MESSAGE: &str = "port must be a number between 1 and 65535";
    let text = match value {
        None | Some(Value::Null) => return Err(DomainError::invalid("port is required")),
        Some(Value::String(s)) if s.trim().is_empty() => {
            return Err(DomainError::invalid("port is required"));
        }
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(DomainError::invalid("port must be a string")),
    };
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DomainError::invalid(MESSAGE));
    }
    match text.parse::<u16>() {
        Ok(port) if port >= 1 => Ok(port),
        _ => Err(DomainError::invalid(MESSAGE)),
    }
}

/// A DNS name or an IP literal (IPv6 with or without brackets). Stored normalised: IPs in their
/// canonical form, names lower-cased without a trailing dot.
pub fn parse_hostname(raw: &str) -> Result<String, DomainError> {
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
        return Err(DomainError::invalid(
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
        NewMachine::from_json(body).unwrap_err().to_string()
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
        let machine = NewMachine::from_json(valid()).unwrap();
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
            NewMachine::from_json(with("port", json!(2222)))
                .unwrap()
                .port,
            2222
        );
        assert_eq!(
            NewMachine::from_json(with("port", json!("65535")))
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
    fn recording_is_on_and_input_off_unless_said() {
        let plain = NewMachine::from_json(valid()).unwrap();
        assert!(plain.recording && !plain.record_input);
        let off = NewMachine::from_json(with("recording", json!(false))).unwrap();
        assert!(!off.recording);
        assert!(
            NewMachine::from_json(with("record_input", json!(true)))
                .unwrap()
                .record_input
        );
        assert_eq!(
            message(with("record_input", json!(1))),
            "record_input must be true or false"
        );
    }

    #[test]
    fn persistent_shell_is_an_optional_boolean() {
        assert!(!NewMachine::from_json(valid()).unwrap().persistent_shell);
        assert!(
            NewMachine::from_json(with("persistent_shell", json!(true)))
                .unwrap()
                .persistent_shell
        );
        assert_eq!(
            message(with("persistent_shell", json!("yes"))),
            "persistent_shell must be true or false"
        );
    }

    fn reattach(value: Value) -> Result<Option<SessionName>, DomainError> {
        ConnectRequest::from_json(json!({"password": "pw", "reattach": value}))
            .map(|request| request.reattach)
    }

    #[test]
    fn reattach_names_are_held_to_their_alphabet() {
        assert_eq!(
            reattach(json!("sushi-0123abcd")).unwrap().unwrap().as_str(),
            "sushi-0123abcd"
        );
        assert!(reattach(Value::Null).unwrap().is_none());
        let longest = format!("sushi-{}", "f".repeat(32));
        assert!(reattach(json!(longest)).is_ok());
        for bad in [
            json!("sushi-0123abc"),
            json!(format!("sushi-{}", "f".repeat(33))),
            json!("sushi-0123ABCD"),
            json!("sushi-0123abcd;reboot"),
            json!("sushi-0123abcd\n"),
            json!("$(id)-0123abcd"),
            json!(" sushi-0123abcd"),
            json!("main"),
            json!(7),
        ] {
            assert!(reattach(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn random_session_names_pass_their_own_rule() {
        let name = SessionName::random();
        assert_eq!(SessionName::parse(name.as_str()).unwrap(), name);
        assert_ne!(SessionName::random(), name);
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

    fn patch(body: Value) -> Result<MachinePatch, String> {
        MachinePatch::from_json(body).map_err(|err| err.to_string())
    }

    #[test]
    fn an_edit_names_only_what_changes() {
        let edit = patch(json!({"port": 2222, "organization": null})).unwrap();
        assert_eq!(edit.port, Some(2222));
        assert_eq!(edit.organization, Some(None));
        assert!(edit.name.is_none() && edit.hostname.is_none() && edit.secrets.is_none());
        let moved = patch(json!({"hostname": "Example.COM."})).unwrap();
        assert_eq!(moved.hostname.as_deref(), Some("example.com"));
    }

    #[test]
    fn an_edit_refuses_blanks_nothing_and_the_pin() {
        assert_eq!(
            patch(json!({"name": "  "})).unwrap_err(),
            "name must not be blank"
        );
        assert_eq!(
            patch(json!({})).unwrap_err(),
            "Nothing to change: name a field to edit"
        );
        // A master password alone changes nothing either.
        assert!(patch(json!({"master_password": "long enough"})).is_err());
        assert_eq!(
            patch(json!({"host_key_fingerprint": "SHA256:x"})).unwrap_err(),
            "Unknown field 'host_key_fingerprint'"
        );
        assert_eq!(
            patch(json!({"port": "0"})).unwrap_err(),
            "port must be a number between 1 and 65535"
        );
    }

    #[test]
    fn an_edit_replaces_secrets_as_a_whole() {
        let edit = patch(json!({"password": "new"})).unwrap();
        assert!(edit.secrets.unwrap().password.is_some());
        assert_eq!(
            patch(json!({"passphrase": "only"})).unwrap_err(),
            "Either password or private_key is required"
        );
        assert_eq!(
            patch(json!({"password": 5})).unwrap_err(),
            "password must be a string"
        );
    }
}
