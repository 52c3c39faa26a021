//! The product's HTTP contract as an OpenAPI 3.1 document, built from code.
//!
//! One document describes what one origin serves: the Machines and account API (api-fn), the
//! sign-in routes (`/api/v1/auth`) and the relay's connect, host-key and terminal routes. It is
//! its own crate because both the API function and the local `sushi` binary serve it at
//! `GET /api/v1/openapi.json`, and the API function must not link the relay (nor the domain an
//! HTTP description). It depends on `edge` only for the error-code table, so the document's
//! `ErrorCode` enum cannot drift from the codes the server sends.
//!
//! How it is held to the code: `schemas` is checked against the domain's validators and real
//! answers by this crate's tests; the operations are checked against the real routers by
//! `relay/sushi/tests/openapi_routes.rs`; and schemathesis fuzzes both binaries against it in
//! the test command (`localstack/fuzz.sh`).

pub mod paths;
pub mod schemas;

use std::sync::OnceLock;

use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{HttpMethod, Ref, ResponseBuilder, Responses};

use schemas::ErrorEnvelope;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "suSHi gateway",
        description = "Save SSH machines and open terminals to them in a browser. Every answer \
                       is `{status, message, data}` JSON; errors add `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        paths::create_machine,
        paths::list_machines,
        paths::get_machine,
        paths::update_machine,
        paths::delete_machine,
        paths::set_master_password,
        paths::create_org,
        paths::list_orgs,
        paths::get_org,
        paths::invite,
        paths::withdraw_invitation,
        paths::set_member_role,
        paths::remove_member,
        paths::org_key_status,
        paths::list_org_recordings,
        paths::org_audit_log,
        paths::org_audit_export,
        paths::org_audit_verify,
        paths::grant_org_key,
        paths::rotate_org_key,
        paths::my_invitations,
        paths::accept_invitation,
        paths::audit_log,
        paths::audit_export,
        paths::audit_verify,
        paths::list_recordings,
        paths::get_recording,
        paths::delete_recording,
        paths::connect,
        paths::set_host_key,
        paths::list_shares,
        paths::revoke_share,
        paths::terminal,
        paths::files_list,
        paths::files_download,
        paths::files_upload,
        paths::files_mkdir,
        paths::files_rename,
        paths::files_delete,
        paths::api_health,
        paths::health,
        paths::relay_health,
        paths::openapi_document,
        paths::auth_providers,
        paths::auth_url,
        paths::auth_callback,
        paths::auth_logout,
        paths::auth_dev,
        paths::auth_me,
    ),
    components(schemas(schemas::ErrorCodeSchema, ErrorEnvelope)),
    modifiers(&SecuritySchemes, &EdgeResponses),
    tags(
        (name = "machines", description = "Saved SSH machines (api-fn)"),
        (name = "account", description = "The caller's master password (api-fn)"),
        (name = "recordings", description = "The caller's session recordings (api-fn)"),
        (name = "organizations", description = "Organizations, members and invitations (api-fn)"),
        (name = "terminal", description = "Connect, the terminal WebSocket and its live shares (relay)"),
        (name = "files", description = "A live terminal's files over SFTP (relay)"),
        (name = "sign-in", description = "Browser sign-in and sessions"),
        (name = "health", description = "Health and this document"),
    ),
)]
struct ApiDoc;

/// The two ways to present the session token.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A session or identity-provider JWT"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "jwt",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "jwt",
                "The browser session (HttpOnly). Writes with it must be same-site \
                 (`Origin`/`Sec-Fetch-Site`) and typed `application/json`.",
            ))),
        );
    }
}

/// The answers the edge can give on any route, added to every operation that does not
/// describe them itself, so a new operation cannot leave them out.
struct EdgeResponses;

impl EdgeResponses {
    fn error(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                    .build(),
            )
            .build()
            .into()
    }

    fn add(responses: &mut Responses, status: &str, description: &str) {
        responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| Self::error(description));
    }
}

impl Modify for EdgeResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                (HttpMethod::Get, item.get.as_mut()),
                (HttpMethod::Put, item.put.as_mut()),
                (HttpMethod::Post, item.post.as_mut()),
                (HttpMethod::Patch, item.patch.as_mut()),
                (HttpMethod::Delete, item.delete.as_mut()),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else { continue };
                let write = method != HttpMethod::Get;
                let has_body = operation.request_body.is_some();
                let authenticated = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                let responses = &mut operation.responses;
                if has_body {
                    Self::add(
                        responses,
                        "400",
                        "`invalid_request`: the body or a field is invalid; the message names it",
                    );
                    Self::add(responses, "413", "`payload_too_large`");
                }
                if has_body || (write && authenticated) {
                    Self::add(
                        responses,
                        "415",
                        "`unsupported_media_type`: a body must be `application/json`, and so must a cookie-authenticated write",
                    );
                }
                if authenticated {
                    Self::add(
                        responses,
                        "401",
                        "`unauthorized`: no valid token in `Authorization: Bearer` or the `jwt` cookie",
                    );
                }
                if write && authenticated {
                    Self::add(
                        responses,
                        "403",
                        "`cross_site_request`: a cookie-authenticated write from another site",
                    );
                }
                Self::add(
                    responses,
                    "421",
                    "`host_not_allowed`: a loopback server answers only loopback names and `PUBLIC_URL`'s host",
                );
                Self::add(
                    responses,
                    "500",
                    "`internal`: a bug or a corrupt record; the request id in the log has the details",
                );
                Self::add(
                    responses,
                    "503",
                    "`unavailable`: a backend is down or the request's deadline passed; `Retry-After` says when to retry",
                );
            }
        }
    }
}

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The document as JSON, built once per process (it never changes while it runs).
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        serde_json::to_value(document())
            .map(|mut doc| {
                camel_case_links(&mut doc);
                doc.to_string()
            })
            .unwrap_or_default()
    })
}

/// utoipa 5.5 writes a Link Object's fields in snake case (`operation_id`); OpenAPI names them
/// `operationId`, `operationRef` and `requestBody`, and clients that follow links (schemathesis's
/// stateful phase) read only those.
fn camel_case_links(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let links = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses").and_then(|r| r.as_object_mut()))
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links").and_then(|l| l.as_object_mut()))
        .flat_map(|links| links.values_mut())
        .filter_map(|link| link.as_object_mut());
    for link in links {
        for (snake, camel) in [
            ("operation_id", "operationId"),
            ("operation_ref", "operationRef"),
            ("request_body", "requestBody"),
        ] {
            if let Some(value) = link.remove(snake) {
                link.insert(camel.to_owned(), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

    use std::collections::BTreeSet;

    use domain::machine::{MachineView, limits};
    use domain::requests::{FromJson, NewMachine};
    use domain::requests::{
        MACHINE_PATCH_FIELDS, MASTER_PASSWORD_FIELDS, MAX_MASTER_PASSWORD, MIN_MASTER_PASSWORD,
        NEW_MACHINE_FIELDS,
    };
    use edge::ErrorCode;
    use serde_json::{Value, json};

    fn doc() -> Value {
        serde_json::from_str(super::json()).unwrap()
    }

    fn schema(name: &str) -> Value {
        doc()["components"]["schemas"][name].clone()
    }

    fn properties(name: &str) -> BTreeSet<String> {
        schema(name)["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn request_bodies_have_the_validators_fields_and_bounds() {
        let fields = |list: &[&str]| {
            list.iter()
                .map(|f| (*f).to_owned())
                .collect::<BTreeSet<_>>()
        };
        assert_eq!(properties("NewMachineRequest"), fields(NEW_MACHINE_FIELDS));
        assert_eq!(
            properties("MachinePatchRequest"),
            fields(MACHINE_PATCH_FIELDS)
        );
        assert_eq!(
            properties("MasterPasswordRequest"),
            fields(MASTER_PASSWORD_FIELDS)
        );
        let machine = schema("NewMachineRequest");
        assert_eq!(machine["additionalProperties"], false);
        assert_eq!(
            machine["required"],
            json!(["name", "hostname", "port", "username"])
        );
        for (field, max) in [
            ("name", limits::NAME),
            ("hostname", limits::HOSTNAME),
            ("username", limits::USERNAME),
            ("organization", limits::ORGANIZATION),
            ("password", limits::PASSWORD),
            ("private_key", limits::PRIVATE_KEY),
            ("passphrase", limits::PASSPHRASE),
        ] {
            assert_eq!(machine["properties"][field]["maxLength"], max, "{field}");
        }
        let password = &schema("MasterPasswordRequest")["properties"]["password"];
        assert_eq!(password["minLength"], MIN_MASTER_PASSWORD);
        assert_eq!(password["maxLength"], MAX_MASTER_PASSWORD);
    }

    #[test]
    fn the_reattach_rule_is_the_domains() {
        use domain::requests::SessionName;
        let reattach = &schema("ConnectRequest")["properties"]["reattach"];
        assert_eq!(reattach["pattern"], SessionName::PATTERN);
        assert_eq!(
            reattach["maxLength"],
            SessionName::PREFIX.len() + SessionName::MAX_HEX
        );
        let longest = format!("sushi-{}", "a".repeat(SessionName::MAX_HEX));
        assert!(SessionName::parse(&longest).is_ok());
    }

    #[test]
    fn the_example_body_passes_the_domain_validator() {
        let example = schema("NewMachineRequest")["example"].clone();
        assert!(<NewMachine as FromJson>::from_json(example).is_ok());
    }

    #[test]
    fn a_machine_as_the_domain_serialises_it_fits_the_schema() {
        let view = MachineView {
            id: 7,
            name: "web".into(),
            username: "root".into(),
            hostname: "example.com".into(),
            port: 22,
            owner_id: "a@example.com".into(),
            owner_type: "user",
            organization: None,
            host_key_fingerprint: None,
            persistent_shell: true,
            recording: true,
            record_input: false,
        };
        let wire = serde_json::to_value(&view).unwrap();
        let keys: BTreeSet<String> = wire.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, properties("Machine"));
        // deny_unknown_fields: the description type accepts exactly the real shape.
        serde_json::from_value::<crate::schemas::Machine>(wire).unwrap();
    }

    #[test]
    fn an_audit_entry_and_verification_as_the_domain_serialises_them_fit_the_schema() {
        use domain::audit::{AuditContext, AuditKind, next_entry, verify};
        let context = AuditContext::new(Some("127.0.0.1"), None, Some("req"));
        let details = json!({"machine_id": 7});
        let entry = next_entry(
            None,
            "a@example.com",
            None,
            1,
            AuditKind::MachineCreated,
            &details,
            &context,
        );
        // An organization's entry names its actor; a user's leaves the field out.
        let org_entry = next_entry(
            None,
            "org:platform",
            Some("a@example.com"),
            1,
            AuditKind::MachineCreated,
            &details,
            &context,
        );
        let wire = serde_json::to_value(&org_entry).unwrap();
        let keys: BTreeSet<String> = wire.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, properties("AuditEntry"));
        serde_json::from_value::<crate::schemas::AuditEntry>(wire).unwrap();
        let wire = serde_json::to_value(&entry).unwrap();
        let mut keys: BTreeSet<String> = wire.as_object().unwrap().keys().cloned().collect();
        keys.insert("actor".to_owned());
        assert_eq!(keys, properties("AuditEntry"));
        serde_json::from_value::<crate::schemas::AuditEntry>(wire).unwrap();
        let broken = verify(&[entry.clone(), entry]);
        serde_json::from_value::<crate::schemas::AuditVerification>(
            serde_json::to_value(&broken).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn a_recording_as_the_domain_lists_it_fits_the_schema() {
        let view = domain::recording::RecordingView {
            id: "0b7c8a5e-1f2d-4c3b-9a8e-7d6c5b4a3f21".into(),
            machine_id: 7,
            machine_name: "web".into(),
            started_at: 1,
            ended_at: Some(2),
            duration_secs: Some(0.5),
            bytes: 3,
            exit_status: None,
            gaps: 0,
            record_input: false,
            user: Some("alice@example.com".into()),
            damaged: None,
        };
        let wire = serde_json::to_value(&view).unwrap();
        let keys: BTreeSet<String> = wire.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, properties("Recording"));
        serde_json::from_value::<crate::schemas::Recording>(wire).unwrap();
    }

    #[test]
    fn organizations_as_the_domain_answers_fit_the_schemas() {
        use domain::orgs::{InvitationView, MemberView, OrgDetails, Role, Slug};
        let slug = Slug::parse("platform-team").unwrap();
        let invitation = InvitationView {
            slug: slug.clone(),
            org_name: "Platform".into(),
            email: "dev@example.com".into(),
            role: Role::Auditor,
            invited_by: "owner@example.com".into(),
            expires_at: 9,
        };
        let details = OrgDetails {
            slug,
            name: "Platform".into(),
            role: Role::Owner,
            created_at: 1,
            members: vec![MemberView {
                member: "owner@example.com".into(),
                role: Role::Owner,
                since: 1,
            }],
            invitations: Some(vec![invitation]),
        };
        let wire = serde_json::to_value(&details).unwrap();
        let keys: BTreeSet<String> = wire.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, properties("OrgDetails"));
        serde_json::from_value::<crate::schemas::OrgDetails>(wire).unwrap();
        assert_eq!(
            properties("NewOrgRequest"),
            domain::requests::NEW_ORG_FIELDS
                .iter()
                .map(|f| (*f).to_owned())
                .collect()
        );
        assert_eq!(
            properties("OrgInviteRequest"),
            domain::requests::ORG_INVITE_FIELDS
                .iter()
                .map(|f| (*f).to_owned())
                .collect()
        );
    }

    #[test]
    fn error_codes_are_the_edge_table() {
        let listed: Vec<String> = schema("ErrorCode")["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        let table: Vec<String> = ErrorCode::ALL
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect();
        assert_eq!(listed, table);
        assert_eq!(
            schema("ErrorEnvelope")["required"],
            json!(["status", "message", "data", "code"])
        );
    }

    #[test]
    fn links_name_existing_operations_in_camel_case() {
        let doc = doc();
        let ids: BTreeSet<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .map(|op| op["operationId"].as_str().unwrap())
            .collect();
        let links = doc["paths"]["/api/v1/machine"]["post"]["responses"]["200"]["links"]
            .as_object()
            .unwrap();
        assert_eq!(links.len(), 5);
        for link in links.values() {
            assert!(link.get("operation_id").is_none(), "{link}");
            assert!(
                ids.contains(link["operationId"].as_str().unwrap()),
                "{link}"
            );
        }
    }

    #[test]
    fn every_operation_describes_the_edges_answers_and_security() {
        let doc = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        assert_eq!(schemes["jwt"]["in"], "cookie");
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for status in ["421", "500", "503"] {
                    assert!(
                        op["responses"].get(status).is_some(),
                        "{method} {path} {status}"
                    );
                }
                if op.get("requestBody").is_some() {
                    for status in ["400", "413", "415"] {
                        assert!(
                            op["responses"].get(status).is_some(),
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
    }
}
