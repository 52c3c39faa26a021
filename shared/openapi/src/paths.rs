//! One description per operation the product serves, as `#[utoipa::path]` items.
//!
//! The handlers live in three crates (api-fn, signin, relay) and the deployed API function
//! links only two of them, yet its document must describe the whole product that one origin
//! serves. So the operations are described here, on empty items, rather than on the handlers;
//! `relay/sushi/tests/openapi_routes.rs` holds this list to the routers (every documented
//! operation answers on the real binary, every routed path and method is documented).
//!
//! Only the answers particular to an operation are listed here; those the edge gives on every
//! route (421, 500, 503, and 400/413/415 for bodies, 401/403 for authenticated routes) are
//! added by [`crate::EdgeResponses`], so they cannot be forgotten on a new operation.

#![allow(dead_code)]

use crate::schemas::{
    AuditPageReply, AuditVerificationReply, ConnectRequest, DevSignInRequest, EmptyReply,
    ErrorEnvelope, HealthReply, HostKeyPinRequest, InvitationListReply, InvitationReply,
    MachineListReply, MachinePatchRequest, MachineReply, MasterPasswordReply,
    MasterPasswordRequest, NewMachineRequest, NewOrgRequest, OrgDetailsReply, OrgInviteRequest,
    OrgKeyRequest, OrgKeyRotationReply, OrgKeyStatusReply, OrgListReply, OrgReply,
    RecordingListReply, RemoteListingReply, RemotePathReply, RoleUpdateRequest, SessionOwnerReply,
    ShareListReply, SignInOptionsReply, SignInUrlReply, TicketReply, UploadedReply,
};

#[utoipa::path(
    post, path = "/api/v1/machine", tag = "machines", operation_id = "create_machine",
    summary = "Save a machine",
    description = "Seals its secrets under the caller's master password (set one first). \
                   With `owner_type: \"organization\"` the organization named by `organization` \
                   owns it (its owners and admins create; members list and connect) and its \
                   secrets are sealed to the organization's key. \
                   Answers 200 \"OK\", as the seed does, not 201.",
    request_body = NewMachineRequest,
    responses(
        (status = 200, description = "Machine created successfully", body = MachineReply,
            links(
                ("GetMachine" = (operation_id = "get_machine",
                    parameters(("id" = "$response.body#/data/id")))),
                ("UpdateMachine" = (operation_id = "update_machine",
                    parameters(("id" = "$response.body#/data/id")))),
                ("DeleteMachine" = (operation_id = "delete_machine",
                    parameters(("id" = "$response.body#/data/id")))),
                ("ConnectMachine" = (operation_id = "connect",
                    parameters(("id" = "$response.body#/data/id")))),
                ("SetHostKey" = (operation_id = "set_host_key",
                    parameters(("id" = "$response.body#/data/id")))),
            )),
        (status = 403, description = "`forbidden`: an organization machine and the caller is neither owner nor admin of it", body = ErrorEnvelope),
        (status = 404, description = "`org_not_found`: `owner_type: \"organization\"` names one the caller does not belong to", body = ErrorEnvelope),
        (status = 409, description = "`master_password_required`, `machine_limit_reached` or `conflict`", body = ErrorEnvelope),
        (status = 503, description = "`unavailable` (store or key service) or `busy` (checking the private key's passphrase waited too long for key-derivation capacity); `Retry-After` says when to retry", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn create_machine() {}

#[utoipa::path(
    get, path = "/api/v1/machines", tag = "machines", operation_id = "list_machines",
    summary = "The caller's machines, then those of each of their organizations",
    params(("organization" = Option<String>, Query, description = "Only this organization's machines (its slug)")),
    responses(
        (status = 200, description = "Machines fetched successfully", body = MachineListReply),
        (status = 400, description = "`invalid_request`: the query could not be read", body = ErrorEnvelope),
        (status = 404, description = "`org_not_found`: `organization` names none the caller belongs to", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn list_machines() {}

#[utoipa::path(
    get, path = "/api/v1/machine/{id}", tag = "machines", operation_id = "get_machine",
    summary = "One machine",
    params(("id" = u64, Path, minimum = 1, description = "The machine's id")),
    responses(
        (status = 200, description = "Machine fetched successfully", body = MachineReply),
        (status = 400, description = "`invalid_request`: the id is not a positive integer", body = ErrorEnvelope),
        (status = 404, description = "`machine_not_found` (another user's machine answers the same)", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn get_machine() {}

#[utoipa::path(
    patch, path = "/api/v1/machine/{id}", tag = "machines", operation_id = "update_machine",
    summary = "Edit a machine",
    description = "Writes only the fields sent, each on the condition that it was not changed \
                   meanwhile: concurrent edits of different fields both land, of one field \
                   the later answers 409. Moving a machine with a pinned host key to another \
                   hostname or port needs `master_password` and clears the pin. `owner_type` \
                   (with `organization` for `\"organization\"`) moves the machine to another \
                   owner: the caller, or an organization; the caller must be an owner or admin \
                   of every organization involved, and `master_password` opens the secrets to \
                   seal them again to the new owner's key. The id and the pin stay.",
    params(("id" = u64, Path, minimum = 1, description = "The machine's id")),
    request_body = MachinePatchRequest,
    responses(
        (status = 200, description = "Machine updated successfully", body = MachineReply),
        (status = 400, description = "`invalid_request` (a field, nothing to change, or `master_password` missing for a move) or `master_password_not_set`", body = ErrorEnvelope),
        (status = 401, description = "`invalid_master_password`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: an organization machine (or, for a move, the destination organization) and the caller is neither its owner nor admin; `org_key_not_granted`: moving out of an organization whose key the caller holds no copy of", body = ErrorEnvelope),
        (status = 404, description = "`machine_not_found` (another user's machine answers the same); `org_not_found`: a move to an organization the caller does not belong to", body = ErrorEnvelope),
        (status = 409, description = "`conflict`: the machine (or the vault) was changed concurrently; `machine_limit_reached`: the new owner has as many machines as allowed", body = ErrorEnvelope),
        (status = 429, description = "`too_many_attempts`: the master-password guess budget is spent", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn update_machine() {}

#[utoipa::path(
    delete, path = "/api/v1/machine/{id}", tag = "machines", operation_id = "delete_machine",
    summary = "Delete a machine",
    params(("id" = u64, Path, minimum = 1, description = "The machine's id")),
    responses(
        (status = 200, description = "Machine deleted successfully", body = EmptyReply),
        (status = 400, description = "`invalid_request`: the id is not a positive integer", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: an organization machine and the caller is neither its owner nor admin", body = ErrorEnvelope),
        (status = 404, description = "`machine_not_found`", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn delete_machine() {}

#[utoipa::path(
    put, path = "/api/v1/master-password", tag = "account", operation_id = "set_master_password",
    summary = "Set or change the master password",
    description = "Changing it re-seals every machine. Wrong current passwords are limited \
                   (5 per 5 minutes per user), and each attempt runs Argon2id under the \
                   server's key-derivation budget.",
    request_body = MasterPasswordRequest,
    responses(
        (status = 200, description = "Master password set (or changed) successfully", body = MasterPasswordReply),
        (status = 401, description = "`unauthorized`, or `invalid_master_password`: `current_password` is missing or wrong", body = ErrorEnvelope),
        (status = 409, description = "`conflict`: a concurrent change won", body = ErrorEnvelope),
        (status = 429, description = "`too_many_attempts`; `Retry-After` and `data.retry_after_secs` say when to retry", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`, or `busy`: key-derivation capacity stayed full; `Retry-After` says when to retry", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn set_master_password() {}

#[utoipa::path(
    post, path = "/api/v1/machine/{id}/connect", tag = "terminal", operation_id = "connect",
    summary = "Open SSH to a machine and get a terminal ticket",
    description = "Opens the vault with the master password, connects and logs in (pinning \
                   the host key on first use), and answers a single-use ticket for \
                   `GET /ssh?uuid=`.",
    params(("id" = u64, Path, minimum = 1, description = "The machine's id")),
    request_body = ConnectRequest,
    responses(
        (status = 200, description = "The ticket", body = TicketReply),
        (status = 400, description = "`invalid_request`", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized` or `invalid_master_password`", body = ErrorEnvelope),
        (status = 403, description = "`target_not_allowed` (the target policy), `cross_site_request`, `forbidden` (an organization machine and the caller is its auditor) or `org_key_not_granted` (an organization machine and the caller holds no copy of its key)", body = ErrorEnvelope),
        (status = 404, description = "`machine_not_found` (another user's, or an organization's the caller is not a member of, answers the same)", body = ErrorEnvelope),
        (status = 409, description = "`master_password_not_set`, or `host_key_changed` (`data` has both fingerprints)", body = ErrorEnvelope),
        (status = 429, description = "`too_many_attempts` or `user_limit_reached`; `Retry-After` says when", body = ErrorEnvelope),
        (status = 502, description = "`ssh_failed`: refused, unreachable, or the login failed", body = ErrorEnvelope),
        (status = 503, description = "`unavailable` (a backend, a full or draining relay) or `busy`; `Retry-After` says when", body = ErrorEnvelope),
        (status = 504, description = "`ssh_timeout`", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn connect() {}

#[utoipa::path(
    put, path = "/api/v1/machine/{id}/host-key", tag = "terminal", operation_id = "set_host_key",
    summary = "Pin, re-pin or clear a machine's host key",
    description = "Replacing or clearing an existing pin needs the master password: a stolen \
                   session alone cannot point a machine at another host.",
    params(("id" = u64, Path, minimum = 1, description = "The machine's id")),
    request_body = HostKeyPinRequest,
    responses(
        (status = 200, description = "Host key pin updated", body = MachineReply),
        (status = 401, description = "`unauthorized` or `invalid_master_password`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: an organization machine and the caller is neither owner nor admin of it", body = ErrorEnvelope),
        (status = 404, description = "`machine_not_found`", body = ErrorEnvelope),
        (status = 409, description = "`master_password_not_set` or `conflict`", body = ErrorEnvelope),
        (status = 429, description = "`too_many_attempts`; `Retry-After` says when", body = ErrorEnvelope),
        (status = 503, description = "`unavailable` or `busy`; `Retry-After` says when", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn set_host_key() {}

#[utoipa::path(
    get, path = "/api/v1/shares", tag = "terminal", operation_id = "list_shares",
    summary = "The caller's live shares of their terminals, on every relay",
    description = "Shares created on a terminal's WebSocket (`share_create`) that have not \
                   ended. Served by the relay; answers from any replica.",
    responses(
        (status = 200, description = "Shares retrieved", body = ShareListReply),
        (status = 503, description = "`unavailable`: session routing (Redis) is unavailable", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn list_shares() {}

#[utoipa::path(
    delete, path = "/api/v1/share/{id}", tag = "terminal", operation_id = "revoke_share",
    summary = "Revoke one of the caller's live shares",
    description = "Ends the share at once, as `share_revoke` on the terminal's WebSocket does, \
                   also while the terminal is parked or from another device: its viewers are \
                   closed with 4016, its link stops working. Any replica forwards it to the \
                   relay holding the terminal.",
    params(("id" = String, Path, format = "uuid", description = "The share's id")),
    responses(
        (status = 200, description = "Share revoked", body = EmptyReply),
        (status = 403, description = "`forbidden` (an invalid relay hop header) or `cross_site_request`", body = ErrorEnvelope),
        (status = 404, description = "`share_not_found` (also another user's share, an ended one, and an id that is not a UUID)", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: routing, or the relay holding the share, is unavailable", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn revoke_share() {}

#[utoipa::path(
    get, path = "/ssh", tag = "terminal", operation_id = "terminal",
    summary = "The terminal WebSocket",
    description = "A WebSocket upgrade (`Connection: Upgrade`, `Upgrade: websocket`). Binary \
                   frames are raw terminal bytes both ways, text frames JSON events; the close \
                   code says why a terminal ended (docs/websocket-protocol.md has the tables). \
                   A browser's `Origin` must be allowed. The ticket is single-use. \
                   `?session=<id>` instead resumes a terminal, and `?share=<id>` joins a \
                   share of one as a viewer (each with its secret in the first frame, never \
                   in the URL).",
    params(("uuid" = String, Query, description = "The ticket (a uuid) `connect` answered")),
    responses(
        (status = 101, description = "Switching Protocols: the terminal is open"),
        (status = 400, description = "`invalid_request`: not a WebSocket upgrade", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`: the ticket is unknown, used or expired, or not the caller's", body = ErrorEnvelope),
        (status = 403, description = "`origin_not_allowed`, or `forbidden` (a bad relay hop)", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: the relay is draining or routing is down", body = ErrorEnvelope),
    ),
    security((), ("jwt" = [])),
)]
fn terminal() {}

#[utoipa::path(
    get, path = "/files/{session}/list", tag = "files", operation_id = "files_list",
    summary = "List a directory on a live terminal's machine (SFTP)",
    description = "Only the terminal's owner; any other caller, an unknown or ended session \
                   answers 404 `session_not_found`. Any relay replica answers (it forwards to \
                   the one holding the terminal). docs/files.md.",
    params(
        ("session" = String, Path, format = "uuid", description = "The terminal's session id (its `session` event)"),
        ("path" = Option<String>, Query, description = "Directory, absolute or relative to the login directory (default: the login directory); at most 4096 bytes"),
    ),
    responses(
        (status = 200, description = "Directory listed successfully", body = RemoteListingReply),
        (status = 404, description = "`session_not_found`, `files_disabled` or `remote_path_not_found`", body = ErrorEnvelope),
        (status = 403, description = "`remote_permission_denied`", body = ErrorEnvelope),
        (status = 502, description = "`sftp_unavailable`: the machine has no SFTP subsystem", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn files_list() {}

#[utoipa::path(
    get, path = "/files/{session}/download", tag = "files", operation_id = "files_download",
    summary = "Download a file from a live terminal's machine",
    description = "A streamed `application/octet-stream` body with `Content-Length` and \
                   `Content-Disposition: attachment`, for the browser's own download. Recorded \
                   in the audit log (`file_transferred`) and marked in the session's recording.",
    params(
        ("session" = String, Path, format = "uuid", description = "The terminal's session id"),
        ("path" = String, Query, description = "The file; at most 4096 bytes"),
    ),
    responses(
        (status = 200, description = "The file's bytes", content_type = "application/octet-stream", body = String),
        (status = 404, description = "`session_not_found`, `files_disabled` or `remote_path_not_found`", body = ErrorEnvelope),
        (status = 413, description = "`file_too_large`: over `FILES_MAX_BYTES`", body = ErrorEnvelope),
        (status = 429, description = "`transfer_limit_reached`", body = ErrorEnvelope),
        (status = 502, description = "`sftp_unavailable`", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn files_download() {}

#[utoipa::path(
    put, path = "/files/{session}/upload", tag = "files", operation_id = "files_upload",
    summary = "Upload a file to a live terminal's machine",
    description = "The body (`Content-Type: application/octet-stream`) is streamed into \
                   `<path>.part`, renamed to `<path>` once every byte is written; a cancelled \
                   upload leaves nothing. Recorded in the audit log and the session's recording.",
    params(
        ("session" = String, Path, format = "uuid", description = "The terminal's session id"),
        ("path" = String, Query, description = "The file to create; at most 4096 bytes"),
        ("overwrite" = Option<bool>, Query, description = "Replace an existing file (default: refuse with 409 `remote_exists`)"),
    ),
    request_body(content = String, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "File uploaded successfully", body = UploadedReply),
        (status = 404, description = "`session_not_found`, `files_disabled` or `remote_path_not_found`", body = ErrorEnvelope),
        (status = 409, description = "`remote_exists` (use `overwrite=true`), or `remote_failed`: the machine refused", body = ErrorEnvelope),
        (status = 413, description = "`file_too_large`: over `FILES_MAX_BYTES`", body = ErrorEnvelope),
        (status = 429, description = "`transfer_limit_reached`", body = ErrorEnvelope),
        (status = 502, description = "`sftp_unavailable`", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn files_upload() {}

#[utoipa::path(
    post, path = "/files/{session}/mkdir", tag = "files", operation_id = "files_mkdir",
    summary = "Create a directory on a live terminal's machine",
    params(
        ("session" = String, Path, format = "uuid", description = "The terminal's session id"),
        ("path" = String, Query, description = "The directory to create"),
    ),
    responses(
        (status = 200, description = "Directory created successfully", body = RemotePathReply),
        (status = 404, description = "`session_not_found`, `files_disabled` or `remote_path_not_found`", body = ErrorEnvelope),
        (status = 409, description = "`remote_failed`", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn files_mkdir() {}

#[utoipa::path(
    post, path = "/files/{session}/rename", tag = "files", operation_id = "files_rename",
    summary = "Rename (move) a file or directory on a live terminal's machine",
    params(
        ("session" = String, Path, format = "uuid", description = "The terminal's session id"),
        ("from" = String, Query, description = "The current path"),
        ("to" = String, Query, description = "The new path (must not exist)"),
    ),
    responses(
        (status = 200, description = "Renamed successfully", body = RemotePathReply),
        (status = 404, description = "`session_not_found`, `files_disabled` or `remote_path_not_found`", body = ErrorEnvelope),
        (status = 409, description = "`remote_failed`", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn files_rename() {}

#[utoipa::path(
    delete, path = "/files/{session}", tag = "files", operation_id = "files_delete",
    summary = "Delete a file or an empty directory on a live terminal's machine",
    params(
        ("session" = String, Path, format = "uuid", description = "The terminal's session id"),
        ("path" = String, Query, description = "What to delete"),
    ),
    responses(
        (status = 200, description = "Deleted successfully", body = RemotePathReply),
        (status = 404, description = "`session_not_found`, `files_disabled` or `remote_path_not_found`", body = ErrorEnvelope),
        (status = 409, description = "`remote_failed`: a directory that is not empty", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn files_delete() {}

#[utoipa::path(
    get, path = "/api/v1/health", tag = "health", operation_id = "api_health",
    summary = "Health (unauthenticated)",
    responses((status = 200, description = "OK", body = HealthReply)),
)]
fn api_health() {}

#[utoipa::path(
    get, path = "/health", tag = "health", operation_id = "health",
    summary = "Health for load balancers (unauthenticated)",
    responses((status = 200, description = "OK", body = HealthReply)),
)]
fn health() {}

#[utoipa::path(
    get, path = "/relay/health", tag = "health", operation_id = "relay_health",
    summary = "The relay's health: live sessions and whether it drains",
    responses((status = 200, description = "OK", body = HealthReply)),
)]
fn relay_health() {}

#[utoipa::path(
    get, path = "/api/v1/openapi.json", tag = "health", operation_id = "openapi_document",
    summary = "This document (unauthenticated)",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)),
)]
fn openapi_document() {}

#[utoipa::path(
    get, path = "/api/v1/auth/providers", tag = "sign-in", operation_id = "auth_providers",
    summary = "Which sign-in buttons to show",
    responses((status = 200, description = "Sign-in options fetched successfully", body = SignInOptionsReply)),
)]
fn auth_providers() {}

#[utoipa::path(
    get, path = "/api/v1/auth/url", tag = "sign-in", operation_id = "auth_url",
    summary = "Start a sign-in: the provider URL, plus the short-lived state cookie",
    params(
        ("to" = String, Query, description = "`github`, `google` or `oidc`"),
        ("return_to" = Option<String>, Query, description = "A same-site path to come back to"),
    ),
    responses(
        (status = 200, description = "Sign-in URL created successfully (sets the state cookie)", body = SignInUrlReply),
        (status = 400, description = "`invalid_request`: `to` is missing or unknown, or `return_to` is not a same-site path", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: that provider is not configured here", body = ErrorEnvelope),
        (status = 502, description = "`provider_unavailable`", body = ErrorEnvelope),
    ),
)]
fn auth_url() {}

#[utoipa::path(
    get, path = "/api/v1/auth/callback", tag = "sign-in", operation_id = "auth_callback",
    summary = "The identity provider's redirect back",
    params(
        ("code" = Option<String>, Query),
        ("state" = Option<String>, Query),
        ("error" = Option<String>, Query),
    ),
    responses(
        (status = 303, description = "Signed in: sets the `jwt` session cookie and redirects to where the sign-in started"),
        (status = 400, description = "`invalid_request`, or `session_expired`: the attempt's state is missing, expired or does not match", body = ErrorEnvelope),
        (status = 401, description = "`sign_in_failed`", body = ErrorEnvelope),
        (status = 403, description = "`email_unverified`", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: that provider is not configured here", body = ErrorEnvelope),
        (status = 502, description = "`provider_unavailable`", body = ErrorEnvelope),
    ),
)]
fn auth_callback() {}

#[utoipa::path(
    post, path = "/api/v1/auth/logout", tag = "sign-in", operation_id = "auth_logout",
    summary = "Sign out: revoke the presented token everywhere and clear the cookie",
    responses(
        (status = 200, description = "Signed out successfully (also without a valid token)", body = EmptyReply),
        (status = 503, description = "`unavailable`: the deny-list cannot be written, so the session would live on", body = ErrorEnvelope),
    ),
    security((), ("bearer" = []), ("jwt" = [])),
)]
fn auth_logout() {}

#[utoipa::path(
    post, path = "/api/v1/auth/dev", tag = "sign-in", operation_id = "auth_dev",
    summary = "Development sign-in (loopback servers on the embedded backends only)",
    request_body = DevSignInRequest,
    responses(
        (status = 200, description = "Signed in successfully (sets the `jwt` cookie)", body = SessionOwnerReply),
        (status = 404, description = "`not_found`: development sign-in is off on this server", body = ErrorEnvelope),
    ),
)]
fn auth_dev() {}

#[utoipa::path(
    get, path = "/api/v1/auth/me", tag = "sign-in", operation_id = "auth_me",
    summary = "Who the session belongs to",
    responses((status = 200, description = "Session fetched successfully", body = SessionOwnerReply)),
    security(("bearer" = []), ("jwt" = [])),
)]
fn auth_me() {}

#[utoipa::path(
    get, path = "/api/v1/audit", tag = "account", operation_id = "audit_log",
    summary = "The caller's audit log, newest first",
    description = "Only the caller's own entries. Page with `cursor` (the previous page's \
                   `next_cursor`).",
    params(
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 200, description = "Entries per page (default 50)"),
        ("cursor" = Option<u64>, Query, description = "Entries with a smaller `seq` than this"),
    ),
    responses(
        (status = 200, description = "Audit log fetched successfully", body = AuditPageReply),
        (status = 400, description = "`invalid_request`: `limit` or `cursor` is not a number in range", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn audit_log() {}

#[utoipa::path(
    get, path = "/api/v1/audit/export", tag = "account", operation_id = "audit_export",
    summary = "The caller's audit log as JSON lines, oldest first",
    description = "One entry (as in the list) per line, at most 5000 per answer; when more \
                   remain, the `x-audit-next-after` header is the `after` to ask for next.",
    params(("after" = Option<u64>, Query, description = "Entries with a larger `seq` than this (default 0)")),
    responses(
        (status = 200, description = "JSON lines (`application/x-ndjson`)", content_type = "application/x-ndjson", body = String),
        (status = 400, description = "`invalid_request`: `after` is not a number", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn audit_export() {}

#[utoipa::path(
    get, path = "/api/v1/audit/verify", tag = "account", operation_id = "audit_verify",
    summary = "Walk the caller's hash chain and report the first broken link",
    responses((status = 200, description = "Audit log verified (`ok` false names `broken_seq`)", body = AuditVerificationReply)),
    security(("bearer" = []), ("jwt" = [])),
)]
fn audit_verify() {}

#[utoipa::path(
    get, path = "/api/v1/recordings", tag = "recordings", operation_id = "list_recordings",
    summary = "The caller's session recordings, newest first",
    description = "Only the caller's own (at most 500; an organization machine's sessions are the \
                   organization's: `GET /api/v1/orgs/{slug}/recordings`). Metadata only; fetch one for its content. \
                   Each recording's metadata is sealed under its data key and verified here; one \
                   that does not verify is listed with `damaged` (the reason) and zeroed fields.",
    responses(
        (status = 200, description = "Recordings fetched successfully", body = RecordingListReply),
        (status = 404, description = "`not_found`: recording is not enabled on this server", body = ErrorEnvelope),
        (status = 503, description = "`recording_unavailable`: recording storage could not be read", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn list_recordings() {}

#[utoipa::path(
    get, path = "/api/v1/recording/{id}", tag = "recordings", operation_id = "get_recording",
    summary = "One recording as asciicast v2, decrypted and verified (whole, or a window)",
    description = "The caller's own recording, or an organization's where the caller is an owner, \
                   admin or auditor. The asciicast v2 text itself (header line, then `[time, code, data]` events), \
                   not an envelope. Every chunk is verified first, and the metadata too: a \
                   recording tampered with, reordered, truncated or still being written is \
                   refused (`recording_damaged`, the message names the chunk). Without \
                   `from_chunk` the whole recording is returned or nothing, up to 5 MiB. With \
                   `from_chunk=N`, whole chunks from N, at most 5 MiB, and the chunk the next \
                   window starts at in `X-Recording-Next-Chunk` (absent on the window that ends \
                   the recording); the windows from 0 concatenated are the recording, and it is \
                   complete and verified once a window without that header arrived.",
    params(
        ("id" = String, Path, format = "uuid", description = "The recording's id"),
        ("from_chunk" = Option<u64>, Query, minimum = 0, description = "Answer a window starting at this chunk (0 for the first); the next window's start is in `X-Recording-Next-Chunk`"),
    ),
    responses(
        (status = 200, description = "The recording, or a window of it (`application/x-asciicast`)", content_type = "application/x-asciicast", body = String,
            headers(("X-Recording-Next-Chunk" = u64, description = "With `from_chunk`: where the next window starts; absent on the last window"))),
        (status = 400, description = "`invalid_request`: `from_chunk` is not a number, or past the recording's last chunk", body = ErrorEnvelope),
        (status = 404, description = "`recording_not_found` (also another user's recording, an organization's for a plain member or an outsider, and an id that is not a UUID)", body = ErrorEnvelope),
        (status = 413, description = "`recording_too_large`: over 5 MiB without `from_chunk` (fetch it in windows), or one chunk over 5 MiB", body = ErrorEnvelope),
        (status = 500, description = "`recording_damaged`: the recording (a chunk, or its metadata) failed verification", body = ErrorEnvelope),
        (status = 503, description = "`recording_unavailable` or `unavailable`: storage or the key service could not be reached", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn get_recording() {}

#[utoipa::path(
    delete, path = "/api/v1/recording/{id}", tag = "recordings", operation_id = "delete_recording",
    summary = "Delete a recording",
    description = "The caller's own, or an organization's where the caller is an owner or admin.",
    params(("id" = String, Path, format = "uuid", description = "The recording's id")),
    responses(
        (status = 200, description = "Recording deleted successfully", body = EmptyReply),
        (status = 403, description = "`forbidden`: an organization's recording and the caller is its auditor", body = ErrorEnvelope),
        (status = 404, description = "`recording_not_found`", body = ErrorEnvelope),
        (status = 503, description = "`recording_unavailable`", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn delete_recording() {}

const ORG_SLUG: &str = "The organization's slug";

#[utoipa::path(
    post, path = "/api/v1/orgs", tag = "organizations", operation_id = "create_org",
    summary = "Create an organization",
    description = "The caller becomes its first owner.",
    request_body = NewOrgRequest,
    responses(
        (status = 200, description = "Organization created successfully", body = OrgReply,
            links(("GetOrg" = (operation_id = "get_org",
                parameters(("slug" = "$response.body#/data/slug")))))),
        (status = 409, description = "`org_slug_taken` or `org_limit_reached`", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn create_org() {}

#[utoipa::path(
    get, path = "/api/v1/orgs", tag = "organizations", operation_id = "list_orgs",
    summary = "The caller's organizations, with their role in each",
    responses((status = 200, description = "Organizations fetched successfully", body = OrgListReply)),
    security(("bearer" = []), ("jwt" = [])),
)]
fn list_orgs() {}

#[utoipa::path(
    get, path = "/api/v1/orgs/{slug}", tag = "organizations", operation_id = "get_org",
    summary = "One organization with its members",
    params(("slug" = String, Path, description = ORG_SLUG)),
    responses(
        (status = 200, description = "Organization fetched successfully", body = OrgDetailsReply),
        (status = 404, description = "`org_not_found` (one the caller does not belong to answers the same)", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn get_org() {}

#[utoipa::path(
    post, path = "/api/v1/orgs/{slug}/invitations", tag = "organizations", operation_id = "invite",
    summary = "Invite someone by email (owners and admins)",
    description = "Replaces an earlier invitation of the same email. Admins cannot invite owners.",
    params(("slug" = String, Path, description = ORG_SLUG)),
    request_body = OrgInviteRequest,
    responses(
        (status = 200, description = "Invitation created successfully", body = InvitationReply),
        (status = 403, description = "`forbidden`: the caller's role may not invite with this role", body = ErrorEnvelope),
        (status = 404, description = "`org_not_found`", body = ErrorEnvelope),
        (status = 409, description = "`conflict` (already a member) or `org_limit_reached`", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn invite() {}

#[utoipa::path(
    delete, path = "/api/v1/orgs/{slug}/invitations/{email}", tag = "organizations",
    operation_id = "withdraw_invitation",
    summary = "Withdraw a pending invitation (owners and admins)",
    params(("slug" = String, Path, description = ORG_SLUG),
        ("email" = String, Path, description = "The invited email")),
    responses(
        (status = 200, description = "Invitation withdrawn successfully", body = EmptyReply),
        (status = 400, description = "`invalid_request`: the email in the path is over 254 bytes or holds control characters", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`", body = ErrorEnvelope),
        (status = 404, description = "`org_not_found` or `invitation_not_found`", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn withdraw_invitation() {}

#[utoipa::path(
    put, path = "/api/v1/orgs/{slug}/members/{member}", tag = "organizations",
    operation_id = "set_member_role",
    summary = "Change a member's role (owners; admins for non-owners, never to owner)",
    params(("slug" = String, Path, description = ORG_SLUG),
        ("member" = String, Path, description = "The member's identity")),
    request_body = RoleUpdateRequest,
    responses(
        (status = 200, description = "Role changed successfully", body = EmptyReply),
        (status = 403, description = "`forbidden`", body = ErrorEnvelope),
        (status = 404, description = "`org_not_found` or `member_not_found`", body = ErrorEnvelope),
        (status = 409, description = "`last_owner` or `conflict`", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn set_member_role() {}

#[utoipa::path(
    delete, path = "/api/v1/orgs/{slug}/members/{member}", tag = "organizations",
    operation_id = "remove_member",
    summary = "Remove a member, or leave (the member is the caller); removing a holder of the organization's key rotates it",
    description = "Removing a member who holds a copy of the organization's key needs the caller's master password (`{\"password\"}`) and rotates the key in the same request. Leaving, or removing someone without a copy, takes no body.",
    params(("slug" = String, Path, description = ORG_SLUG),
        ("member" = String, Path, description = "The member's identity")),
    request_body(content = Option<OrgKeyRequest>, description = "Only to remove a holder of the organization's key"),
    responses(
        (status = 200, description = "Member removed successfully", body = OrgKeyRotationReply),
        (status = 400, description = "`invalid_request`: the member in the path is over 254 bytes or holds control characters, or the password is missing", body = ErrorEnvelope),
        (status = 401, description = "`invalid_master_password`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`, or `org_key_not_granted` (the caller holds no copy of the key)", body = ErrorEnvelope),
        (status = 404, description = "`org_not_found` or `member_not_found`", body = ErrorEnvelope),
        (status = 409, description = "`last_owner`, `master_password_not_set` or `conflict`", body = ErrorEnvelope),
        (status = 413, description = "`payload_too_large`", body = ErrorEnvelope),
        (status = 415, description = "`unsupported_media_type`", body = ErrorEnvelope),
        (status = 429, description = "`too_many_attempts`", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn remove_member() {}

#[utoipa::path(
    get, path = "/api/v1/orgs/{slug}/key", tag = "organizations", operation_id = "org_key_status",
    summary = "Who holds the organization's key (owners and admins)",
    params(("slug" = String, Path, description = ORG_SLUG)),
    responses(
        (status = 200, description = "Organization key fetched successfully", body = OrgKeyStatusReply),
        (status = 403, description = "`forbidden`", body = ErrorEnvelope),
        (status = 404, description = "`org_not_found`", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn org_key_status() {}

#[utoipa::path(
    get, path = "/api/v1/orgs/{slug}/recordings", tag = "organizations",
    operation_id = "list_org_recordings",
    summary = "Recordings of sessions on the organization's machines (owners, admins, auditors), newest first",
    description = "Metadata only (at most 500), with `user`, the member who opened the session; \
                   fetch one with `GET /api/v1/recording/{id}`. A plain member gets 403, someone \
                   outside the organization 404.",
    params(("slug" = String, Path, description = ORG_SLUG)),
    responses(
        (status = 200, description = "Recordings fetched successfully", body = RecordingListReply),
        (status = 403, description = "`forbidden`: a plain member", body = ErrorEnvelope),
        (status = 404, description = "`org_not_found`, or `not_found`: recording is not enabled on this server", body = ErrorEnvelope),
        (status = 503, description = "`recording_unavailable`: recording storage could not be read", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn list_org_recordings() {}

#[utoipa::path(
    get, path = "/api/v1/orgs/{slug}/audit", tag = "organizations", operation_id = "org_audit_log",
    summary = "The organization's audit log (owners, admins, auditors), newest first",
    description = "Every change to the organization and its machines, and every session on its \
                   machines, with `actor`, the member who acted (their own log has the same \
                   event). Page with `cursor` as `GET /api/v1/audit`. A plain member gets 403, \
                   someone outside the organization 404.",
    params(
        ("slug" = String, Path, description = ORG_SLUG),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 200, description = "Entries per page (default 50)"),
        ("cursor" = Option<u64>, Query, description = "Entries with a smaller `seq` than this"),
    ),
    responses(
        (status = 200, description = "Audit log fetched successfully", body = AuditPageReply),
        (status = 400, description = "`invalid_request`: `limit` or `cursor` is not a number in range", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: a plain member", body = ErrorEnvelope),
        (status = 404, description = "`org_not_found`", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn org_audit_log() {}

#[utoipa::path(
    get, path = "/api/v1/orgs/{slug}/audit/export", tag = "organizations",
    operation_id = "org_audit_export",
    summary = "The organization's audit log as JSON lines, oldest first",
    description = "As `GET /api/v1/audit/export`, for the organization's owners, admins and \
                   auditors.",
    params(
        ("slug" = String, Path, description = ORG_SLUG),
        ("after" = Option<u64>, Query, description = "Entries with a larger `seq` than this (default 0)"),
    ),
    responses(
        (status = 200, description = "JSON lines (`application/x-ndjson`)", content_type = "application/x-ndjson", body = String),
        (status = 400, description = "`invalid_request`: `after` is not a number", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: a plain member", body = ErrorEnvelope),
        (status = 404, description = "`org_not_found`", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn org_audit_export() {}

#[utoipa::path(
    get, path = "/api/v1/orgs/{slug}/audit/verify", tag = "organizations",
    operation_id = "org_audit_verify",
    summary = "Walk the organization's hash chain and report the first broken link",
    params(("slug" = String, Path, description = ORG_SLUG)),
    responses(
        (status = 200, description = "Audit log verified (`ok` false names `broken_seq`)", body = AuditVerificationReply),
        (status = 403, description = "`forbidden`: a plain member", body = ErrorEnvelope),
        (status = 404, description = "`org_not_found`", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn org_audit_verify() {}

#[utoipa::path(
    post, path = "/api/v1/orgs/{slug}/members/{member}/key", tag = "organizations",
    operation_id = "grant_org_key",
    summary = "Grant the organization's key to a member (owners and admins, with their master password)",
    params(("slug" = String, Path, description = ORG_SLUG),
        ("member" = String, Path, description = "The member's identity")),
    request_body = OrgKeyRequest,
    responses(
        (status = 200, description = "Organization key granted successfully", body = OrgKeyStatusReply),
        (status = 400, description = "`invalid_request` (the body, the member in the path, or an auditor named)", body = ErrorEnvelope),
        (status = 401, description = "`invalid_master_password`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`, or `org_key_not_granted` (the caller holds no copy of the key)", body = ErrorEnvelope),
        (status = 404, description = "`org_not_found` or `member_not_found`", body = ErrorEnvelope),
        (status = 409, description = "`member_master_password_not_set`, `master_password_not_set` or `conflict` (no key yet)", body = ErrorEnvelope),
        (status = 413, description = "`payload_too_large`", body = ErrorEnvelope),
        (status = 415, description = "`unsupported_media_type`", body = ErrorEnvelope),
        (status = 429, description = "`too_many_attempts`", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn grant_org_key() {}

#[utoipa::path(
    post, path = "/api/v1/orgs/{slug}/key/rotate", tag = "organizations",
    operation_id = "rotate_org_key",
    summary = "Rotate the organization's key now (owners and admins, with their master password)",
    params(("slug" = String, Path, description = ORG_SLUG)),
    request_body = OrgKeyRequest,
    responses(
        (status = 200, description = "Organization key rotated successfully", body = OrgKeyRotationReply),
        (status = 400, description = "`invalid_request`", body = ErrorEnvelope),
        (status = 401, description = "`invalid_master_password`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden` or `org_key_not_granted`", body = ErrorEnvelope),
        (status = 404, description = "`org_not_found`", body = ErrorEnvelope),
        (status = 409, description = "`master_password_not_set` or `conflict`", body = ErrorEnvelope),
        (status = 413, description = "`payload_too_large`", body = ErrorEnvelope),
        (status = 415, description = "`unsupported_media_type`", body = ErrorEnvelope),
        (status = 429, description = "`too_many_attempts`", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn rotate_org_key() {}

#[utoipa::path(
    get, path = "/api/v1/invitations", tag = "organizations", operation_id = "my_invitations",
    summary = "Invitations waiting for the caller's email",
    responses((status = 200, description = "Invitations fetched successfully", body = InvitationListReply)),
    security(("bearer" = []), ("jwt" = [])),
)]
fn my_invitations() {}

#[utoipa::path(
    post, path = "/api/v1/invitations/{slug}/accept", tag = "organizations",
    operation_id = "accept_invitation",
    summary = "Accept the caller's invitation and join with its role",
    params(("slug" = String, Path, description = ORG_SLUG)),
    responses(
        (status = 200, description = "Invitation accepted successfully", body = OrgReply),
        (status = 404, description = "`invitation_not_found` (none for the caller's email, or expired) or `org_not_found`", body = ErrorEnvelope),
        (status = 409, description = "`conflict` (already a member) or `org_limit_reached`", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("jwt" = [])),
)]
fn accept_invitation() {}
