//! The wire shapes, as JSON Schema: request bodies, the data each success carries, the success
//! envelope per answer and the one error envelope.
//!
//! These are description types, never built at run time. The request bodies are validated by
//! hand in `domain::requests` (so every message names its field, and secrets move straight
//! into `SecretString`s), which leaves no serde struct to derive a schema from; and the domain
//! must not learn about documents served over HTTP. So the shapes are written here once more,
//! and `tests` in this crate hold them to the real thing: field lists against the validators'
//! own lists, length bounds against `domain::machine::limits`, response shapes against what the
//! domain and the edge actually serialise, and the error-code enum against `ErrorCode::ALL`.

use std::borrow::Cow;

use edge::ErrorCode;
use serde::Deserialize;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{RefOr, SchemaFormat};
use utoipa::{PartialSchema, ToSchema};

/// `POST /api/v1/machine`. Unknown fields are refused (a typo would otherwise save a machine
/// without its key); at least one of `password` and `private_key` is required; text fields
/// are trimmed and must not be blank or hold control characters.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "web", "hostname": "example.com", "port": "22", "username": "root", "password": "ssh-password"}))]
pub struct NewMachineRequest {
    #[schema(min_length = 1, max_length = 128)]
    pub name: String,
    /// A DNS name or an IP address (IPv6 with or without brackets).
    #[schema(min_length = 1, max_length = 253)]
    pub hostname: String,
    pub port: Port,
    #[schema(min_length = 1, max_length = 128)]
    pub username: String,
    /// The SSH password (sealed, never returned).
    #[schema(max_length = 4096)]
    pub password: Option<String>,
    /// An OpenSSH or PEM private key (sealed, never returned); checked to decode, with
    /// `passphrase` when it is encrypted.
    #[schema(max_length = 32768)]
    pub private_key: Option<String>,
    #[schema(max_length = 1024)]
    pub passphrase: Option<String>,
    /// A free label; with `owner_type: "organization"`, the owning organization's slug.
    #[schema(max_length = 128)]
    pub organization: Option<String>,
    /// `user` (the default: the caller's own) or `organization` (owned by `organization`;
    /// its owners and admins may create one).
    #[schema(pattern = "^(user|organization)$", max_length = 16)]
    pub owner_type: Option<String>,
    /// Pin the host key up front instead of on first connect.
    #[schema(
        pattern = r"^SHA256:[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]$",
        max_length = 128
    )]
    pub host_key_fingerprint: Option<String>,
    /// Run terminals inside a tmux (or screen) session on the machine, so a shell survives a
    /// relay restart (default false).
    pub persistent_shell: Option<bool>,
    /// Record this machine's terminals (default true; the deployment's `RECORDING` policy can
    /// turn recording off, or make it required).
    pub recording: Option<bool>,
    /// Record keystrokes too (default false: keystrokes include passwords typed at prompts).
    pub record_input: Option<bool>,
}

/// The seed sends the port as a string (`"22"`); a JSON integer is accepted too.
#[derive(Deserialize)]
pub struct Port(pub serde_json::Value);

impl ToSchema for Port {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Port")
    }
}

impl PartialSchema for Port {
    fn schema() -> RefOr<Schema> {
        let text = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(r"^\s*[0-9]{1,5}\s*$"))
            .build();
        let number = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(65535))
            .build();
        Schema::OneOf(
            utoipa::openapi::schema::OneOfBuilder::new()
                .item(text)
                .item(number)
                .description(Some("1-65535, as a string or an integer"))
                .build(),
        )
        .into()
    }
}

/// `PATCH /api/v1/machine/{id}`: the fields to change, each optional (at least one). Text
/// fields follow the create rules; `organization` as `null` or `""` clears it. `password` or
/// `private_key` replaces the whole credential set (no master password needed).
/// `master_password` is required to move a machine whose host key is pinned to another
/// hostname or port (the pin is cleared), and to move a machine to another owner
/// (`owner_type`). The pin itself changes through `PUT host-key`.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"port": "2222", "master_password": "my master password"}))]
pub struct MachinePatchRequest {
    #[schema(min_length = 1, max_length = 128)]
    pub name: Option<String>,
    #[schema(min_length = 1, max_length = 253)]
    pub hostname: Option<String>,
    pub port: Option<Port>,
    #[schema(min_length = 1, max_length = 128)]
    pub username: Option<String>,
    /// On one's own machine, a free label; with `owner_type: "organization"`, the slug of the
    /// organization to move the machine to.
    #[schema(max_length = 128)]
    pub organization: Option<String>,
    /// Move the machine: `user` (to the caller) or `organization` (to `organization`). The
    /// caller must be an owner or admin of every organization involved; `master_password`
    /// opens the secrets, which are sealed again to the new owner's key. The id and the
    /// host-key pin stay; the current owner named changes nothing.
    #[schema(pattern = "^(user|organization)$", max_length = 16)]
    pub owner_type: Option<String>,
    pub persistent_shell: Option<bool>,
    pub recording: Option<bool>,
    pub record_input: Option<bool>,
    #[schema(max_length = 4096)]
    pub password: Option<String>,
    #[schema(max_length = 32768)]
    pub private_key: Option<String>,
    #[schema(max_length = 1024)]
    pub passphrase: Option<String>,
    #[schema(max_length = 1024)]
    pub master_password: Option<String>,
}

/// `PUT /api/v1/master-password`: set one (`password` only) or change it (with
/// `current_password`), which re-seals every machine.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterPasswordRequest {
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
    /// Required when a master password is already set.
    pub current_password: Option<String>,
}

/// `POST /api/v1/machine/{id}/connect`: the master password (the seed's field name) and, for
/// a persistent-shell machine, optionally the session to attach to. Other fields are ignored,
/// as the seed's clients may send them.
#[derive(ToSchema, Deserialize)]
pub struct ConnectRequest {
    /// The master password.
    #[schema(min_length = 1)]
    pub password: String,
    /// Persistent-shell machines only (400 otherwise): the tmux (or screen) session to attach
    /// to, created under this name if it does not exist. Without it a new terminal gets a new
    /// random name.
    #[schema(pattern = "^sushi-[0-9a-f]{8,32}$", max_length = 38)]
    pub reattach: Option<String>,
}

/// `PUT /api/v1/machine/{id}/host-key`: set, re-pin or clear (`null`) the pin. Replacing or
/// clearing an existing pin needs the master password.
#[derive(ToSchema, Deserialize)]
pub struct HostKeyPinRequest {
    #[schema(pattern = r"^\s*SHA256:[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]\s*$")]
    pub fingerprint: Option<String>,
    pub master_password: Option<String>,
}

/// `POST /api/v1/auth/dev`: development sign-in (loopback servers with the embedded
/// backends only).
#[derive(ToSchema, Deserialize)]
pub struct DevSignInRequest {
    pub email: String,
}

/// A saved machine as list and get return it: never a secret.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    #[schema(minimum = 1)]
    pub id: u64,
    pub name: String,
    pub username: String,
    pub hostname: String,
    /// As the seed sends it: a string (`"22"`).
    #[schema(pattern = "^[0-9]{1,5}$")]
    pub port: String,
    /// The owning user's identity, or the owning organization's slug.
    pub owner_id: String,
    /// `user` or `organization`.
    #[schema(pattern = "^(user|organization)$")]
    pub owner_type: String,
    #[schema(required = true)]
    pub organization: Option<String>,
    #[schema(required = true)]
    pub host_key_fingerprint: Option<String>,
    /// Terminals run inside tmux (or screen) on the machine.
    pub persistent_shell: bool,
    /// Terminals are recorded (see `GET /api/v1/recordings`).
    pub recording: bool,
    /// Keystrokes are recorded too.
    pub record_input: bool,
}

/// What setting or changing the master password did.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterPasswordOutcome {
    /// Machines re-sealed to the new key pair.
    pub resealed: u64,
    /// Machines whose secrets did not open with the old key (reported, not fatal).
    pub unopenable: Vec<u64>,
}

/// One audit log entry (`domain::audit::AuditEntry`); see docs/audit.md.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// Position in the chain (the caller's, or the organization's), from 1, without gaps.
    pub seq: u64,
    /// When, in Unix milliseconds.
    pub at: i64,
    /// What happened: `sign_in`, `logout`, `machine_created`, `machine_updated`,
    /// `machine_deleted`, `master_password_set`, `master_password_changed`, `host_key_pinned`, `host_key_changed`,
    /// `connect_succeeded`, `connect_wrong_password`, `connect_rate_limited`, `connect_refused`,
    /// `session_started`, `session_resumed`, `session_ended`, `share_created`, `share_joined`,
    /// `share_revoked`, `control_granted`, `control_revoked`, `recording_started`,
    /// `recording_failed`, `org_created`, `org_invited`, `org_invitation_withdrawn`,
    /// `org_joined`, `org_role_changed`, `org_member_removed`, `org_key_created`,
    /// `org_key_granted`, `org_key_rotated`, `file_transferred`, `file_changed`.
    pub kind: String,
    /// Who acted: present on an organization's log only (the member's identity); a user's own
    /// entries are their own acts.
    #[serde(default)]
    pub actor: Option<String>,
    /// A small object about the event (at most 1 KiB as JSON), e.g. `{"machine_id": 7}`.
    pub details: serde_json::Value,
    /// The client address (at most 64 bytes).
    #[schema(required = true)]
    pub ip: Option<String>,
    /// The client's `User-Agent` (at most 256 bytes).
    #[schema(required = true)]
    pub user_agent: Option<String>,
    /// The request id (`x-request-id` of the answer).
    #[schema(required = true)]
    pub request_id: Option<String>,
    /// `hash` of the previous entry; 64 zeros for the first.
    pub prev_hash: String,
    /// SHA-256 (hex) over the entry's canonical encoding, `prev_hash` included.
    pub hash: String,
}

/// A page of the caller's audit log, newest first.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<u64>,
}

/// A session recording (`GET /api/v1/recordings`, `GET /api/v1/orgs/{slug}/recordings`).
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    /// The recording's id (a UUID), for `GET|DELETE /api/v1/recording/{id}`.
    #[schema(format = "uuid")]
    pub id: String,
    pub machine_id: u64,
    /// The machine's name when the session started.
    pub machine_name: String,
    /// When the session started, in Unix milliseconds.
    pub started_at: i64,
    /// When it ended (`null` while it runs, or if its relay stopped first).
    #[schema(required = true)]
    pub ended_at: Option<i64>,
    /// Its length in seconds (`null` until it ended).
    #[schema(required = true)]
    pub duration_secs: Option<f64>,
    /// Output bytes recorded.
    pub bytes: u64,
    /// The remote shell's exit status, if it exited with one.
    #[schema(required = true)]
    pub exit_status: Option<u32>,
    /// Places where the recording has a gap (storage failing or behind); each is a marker
    /// event in the recording.
    pub gaps: u64,
    /// Keystrokes were recorded too.
    pub record_input: bool,
    /// Who opened the session (for an organization's recording, the member who typed);
    /// `null` for a damaged recording or one made before this was kept.
    #[schema(required = true)]
    pub user: Option<String>,
    /// `null` for a recording whose metadata verified; otherwise why it did not (changed,
    /// from another recording, or not sealed), and the fields above are zero or empty. Such
    /// a recording does not play (`recording_damaged`) and can be deleted.
    #[schema(required = true)]
    pub damaged: Option<String>,
}

/// One entry of a remote directory (`GET /files/{session}/list`).
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteEntry {
    pub name: String,
    /// `file`, `dir`, `link` or `other`.
    pub kind: String,
    pub size: u64,
    /// Last modification, in Unix seconds, when the server says.
    #[schema(required = true)]
    pub modified: Option<u32>,
    /// Permission bits as `ls` shows them, e.g. `rwxr-xr-x`.
    pub mode: String,
}

/// A remote directory: its absolute path and its entries, directories first.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteListing {
    pub path: String,
    pub entries: Vec<RemoteEntry>,
    /// More than 5,000 entries: the rest were cut.
    pub truncated: bool,
}

/// A finished upload.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Uploaded {
    pub path: String,
    pub size: u64,
    /// SHA-256 (hex) of the bytes received.
    pub sha256: String,
}

/// Where a changed path now is.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemotePath {
    pub path: String,
}

/// What walking the caller's chain found.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditVerification {
    /// Every link holds.
    pub ok: bool,
    /// Entries checked (up to and including the first broken one).
    pub entries: u64,
    /// The first sequence number whose link does not hold (absent when `ok`).
    pub broken_seq: Option<u64>,
    /// Why it does not hold (absent when `ok`).
    pub reason: Option<String>,
}

/// Health: api-fn (and the local binary) answer `{"service"}`; the relay binary answers
/// `{"sessions","draining"}` on `/health` and `/relay/health`.
#[derive(ToSchema, Deserialize)]
#[serde(untagged)]
pub enum Health {
    Api(ApiHealth),
    Relay(RelayHealth),
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiHealth {
    pub service: String,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayHealth {
    /// Pending and open SSH sessions on this relay.
    pub sessions: u64,
    pub draining: bool,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInOptions {
    pub providers: Vec<ProviderOption>,
    /// Whether the development sign-in is on.
    pub dev: bool,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderOption {
    pub id: String,
    pub name: String,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInUrl {
    /// Where to send the browser.
    pub url: String,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionOwner {
    pub email: String,
    /// `dev` after a development sign-in; absent on `/me`.
    pub provider: Option<String>,
}

/// `data: null`.
pub struct Null;

impl PartialSchema for Null {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::Null).into()
    }
}

impl ToSchema for Null {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Null")
    }
}

/// A connect ticket: the uuid to open `/ssh?uuid=` with.
pub struct Ticket;

impl PartialSchema for Ticket {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::Custom("uuid".to_owned())))
            .description(Some(
                "Single-use ticket for `GET /ssh?uuid=`, valid 1-2 minutes",
            ))
            .into()
    }
}

impl ToSchema for Ticket {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Ticket")
    }
}

/// The machine-readable error code, enumerated from `edge::ErrorCode`'s one table.
pub struct ErrorCodeSchema;

impl PartialSchema for ErrorCodeSchema {
    fn schema() -> RefOr<Schema> {
        let values: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(values))
            .description(Some(
                "What went wrong, for clients to switch on (never the message); each code has \
                 one HTTP status, see docs/api.md",
            ))
            .into()
    }
}

impl ToSchema for ErrorCodeSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ErrorCode")
    }
}

/// `POST /api/v1/orgs`.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"slug": "platform-team", "name": "Platform team"}))]
pub struct NewOrgRequest {
    /// 3 to 40 lower-case letters, digits and inner hyphens; unique and immutable.
    #[schema(
        pattern = "^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$",
        min_length = 3,
        max_length = 40
    )]
    pub slug: String,
    #[schema(min_length = 1, max_length = 128)]
    pub name: String,
}

/// A role in an organization.
#[derive(ToSchema, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    Owner,
    Admin,
    Member,
    Auditor,
}

/// `POST /api/v1/orgs/{slug}/invitations`.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "dev@example.com", "role": "member"}))]
pub struct OrgInviteRequest {
    /// The invitee accepts by signing in with this (verified) email, in any case.
    #[schema(min_length = 3, max_length = 254)]
    pub email: String,
    pub role: OrgRole,
}

/// `PUT /api/v1/orgs/{slug}/members/{member}`.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleUpdateRequest {
    pub role: OrgRole,
}

/// `POST /api/v1/orgs/{slug}/members/{member}/key`, `POST /api/v1/orgs/{slug}/key/rotate`,
/// and the optional body of `DELETE /api/v1/orgs/{slug}/members/{member}`: the caller's own
/// master password (it opens their copy of the organization's key).
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgKeyRequest {
    #[schema(min_length = 1, max_length = 4096)]
    pub password: String,
}

/// Who holds the organization's key (owners and admins see it).
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgKeyStatus {
    /// The key's generation; `null` until the organization's first machine makes it.
    #[schema(required = true)]
    pub generation: Option<u32>,
    /// Members holding a copy.
    pub holders: Vec<String>,
    /// Someone no longer a member still holds a copy (they left): rotate the key.
    pub rotation_pending: bool,
}

/// What a rotation of the organization's key did (a removal that rotated, or an explicit
/// rotation); `generation` is `null` when nothing rotated.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgKeyRotation {
    #[schema(required = true)]
    pub generation: Option<u32>,
    /// Machines re-sealed to the new key.
    pub resealed: u64,
    /// Members who received a copy of the new key.
    pub copies: u64,
    /// Machines whose secrets did not open with the old key (left as they were).
    pub unopenable: Vec<u64>,
}

/// One of the caller's organizations.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgSummary {
    pub slug: String,
    pub name: String,
    /// The caller's role.
    pub role: OrgRole,
    /// When the caller joined (Unix seconds).
    pub since: i64,
}

/// A member as other members see them.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgMember {
    /// The member's identity (verified email).
    pub member: String,
    pub role: OrgRole,
    pub since: i64,
}

/// A pending invitation.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgInvitation {
    pub slug: String,
    pub org_name: String,
    pub email: String,
    pub role: OrgRole,
    pub invited_by: String,
    /// Unix seconds; an expired invitation cannot be accepted.
    pub expires_at: i64,
}

/// One organization as a member sees it.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgDetails {
    pub slug: String,
    pub name: String,
    /// The caller's role.
    pub role: OrgRole,
    pub created_at: i64,
    pub members: Vec<OrgMember>,
    /// Pending invitations: shown to owners and admins, `null` for others.
    #[schema(required = true)]
    pub invitations: Option<Vec<OrgInvitation>>,
}

/// Every error: the reason phrase, a message a person can act on, `data` (`null`, or details
/// such as both fingerprints of a changed host key or `retry_after_secs`), and `code`.
#[derive(ToSchema)]
pub struct ErrorEnvelope {
    /// The HTTP reason phrase ("Not Found").
    pub status: String,
    pub message: String,
    pub data: serde_json::Value,
    #[schema(value_type = ErrorCodeSchema)]
    pub code: String,
}

/// One of the caller's live shares (`GET /api/v1/shares`).
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Share {
    /// The share's id (a UUID), for `DELETE /api/v1/share/{id}`.
    #[schema(format = "uuid")]
    pub id: String,
    /// The shared terminal's session id.
    #[schema(format = "uuid")]
    pub session: String,
    /// `view`, or `control` (viewers may type once the owner grants it).
    #[schema(pattern = "^(view|control)$")]
    pub mode: String,
    /// The users it is for; empty for a link share (anyone with the link).
    pub emails: Vec<String>,
    /// When it expires, in Unix seconds.
    pub expires_at: u64,
}

/// A success envelope per data type: `{"status": "OK", "message", "data"}`.
macro_rules! replies {
    ($($name:ident => $data:ty, $doc:literal;)*) => {$(
        #[doc = $doc]
        #[derive(ToSchema)]
        pub struct $name {
            /// The HTTP reason phrase: `OK`.
            pub status: String,
            pub message: String,
            pub data: $data,
        }
    )*};
}

replies! {
    MachineReply => Machine, "One machine.";
    MachineListReply => Vec<Machine>, "The caller's machines and their organizations'.";
    OrgKeyStatusReply => OrgKeyStatus, "Who holds the organization's key.";
    OrgKeyRotationReply => OrgKeyRotation, "What a rotation of the organization's key did.";
    EmptyReply => Null, "No data.";
    MasterPasswordReply => MasterPasswordOutcome, "A master password set or changed.";
    HealthReply => Health, "Health.";
    TicketReply => Ticket, "A connect ticket.";
    SignInOptionsReply => SignInOptions, "Sign-in options.";
    SignInUrlReply => SignInUrl, "Where to sign in.";
    SessionOwnerReply => SessionOwner, "Who the session belongs to.";
    AuditPageReply => AuditPage, "A page of the caller's audit log.";
    AuditVerificationReply => AuditVerification, "The caller's audit chain, verified.";
    RecordingListReply => Vec<Recording>, "Session recordings (the caller's, or an organization's), newest first.";
    OrgReply => OrgSummary, "One of the caller's organizations.";
    OrgListReply => Vec<OrgSummary>, "The caller's organizations.";
    OrgDetailsReply => OrgDetails, "An organization with its members.";
    InvitationReply => OrgInvitation, "An invitation.";
    InvitationListReply => Vec<OrgInvitation>, "Invitations waiting for the caller.";
    ShareListReply => Vec<Share>, "The caller's live shares.";
    RemoteListingReply => RemoteListing, "A directory on a terminal's machine.";
    UploadedReply => Uploaded, "A file uploaded to a terminal's machine.";
    RemotePathReply => RemotePath, "A path changed on a terminal's machine.";
}
