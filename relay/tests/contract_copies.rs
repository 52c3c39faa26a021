//! The wire contract is defined once, in Rust (`relay::ws::protocol` for the terminal,
//! `edge::ErrorCode` for HTTP errors). Its other copies are generated from it and must match:
//!
//! * `relay/web/src/protocol.ts`: the web app's close codes, events and error codes;
//! * the close-code and event tables in `docs/websocket-protocol.md`;
//! * the error-code table in `docs/api.md`.
//!
//! When a definition changes, run `UPDATE_GENERATED=1 cargo test -p relay --test
//! contract_copies` and commit the regenerated files; without it, a stale copy fails here.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fmt::Write as _;
use std::path::PathBuf;

use edge::ErrorCode;
use relay::ws::protocol::{CLIENT_EVENT_SHAPES, Close, SERVER_EVENT_SHAPES};

fn repo(path: &str) -> PathBuf {
    testkit::repo_root().join(path)
}

fn updating() -> bool {
    std::env::var_os("UPDATE_GENERATED").is_some()
}

/// Compare (or, when updating, rewrite) a whole generated file.
fn check_file(path: &str, expected: &str) {
    let path = repo(path);
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    if updating() {
        std::fs::write(&path, expected).unwrap();
    } else {
        assert!(
            actual == expected,
            "{} is stale; regenerate it with UPDATE_GENERATED=1 cargo test -p relay --test contract_copies",
            path.display()
        );
    }
}

/// Compare (or rewrite) the part of `path` between `<!-- generated: NAME -->` and
/// `<!-- end generated: NAME -->`.
fn check_section(path: &str, name: &str, expected: &str) {
    let path = repo(path);
    let text = std::fs::read_to_string(&path).unwrap();
    let start = format!("<!-- generated: {name} -->\n");
    let end = format!("<!-- end generated: {name} -->");
    let from = text
        .find(&start)
        .unwrap_or_else(|| panic!("{} has no `{start}` marker", path.display()))
        + start.len();
    let to = from
        + text[from..]
            .find(&end)
            .unwrap_or_else(|| panic!("{} has no `{end}` marker", path.display()));
    if updating() {
        let updated = format!("{}{expected}{}", &text[..from], &text[to..]);
        std::fs::write(&path, updated).unwrap();
    } else {
        assert!(
            text[from..to] == *expected,
            "the `{name}` table in {} is stale; regenerate it with UPDATE_GENERATED=1 cargo test -p relay --test contract_copies",
            path.display()
        );
    }
}

fn ts_event_union(name: &str, shapes: &[(&str, &[(&str, &str)])]) -> String {
    let mut out = format!("export type {name} =\n");
    for (kind, fields) in shapes {
        let mut members = vec![format!("type: '{kind}'")];
        members.extend(fields.iter().map(|(field, ty)| format!("{field}: {ty}")));
        writeln!(out, "  | {{ {} }}", members.join("; ")).unwrap();
    }
    out.pop();
    out.push_str(";\n");
    out
}

fn typescript() -> String {
    let mut out = String::from(
        "// Generated from relay/src/ws/protocol.rs and shared/edge/src/error.rs by\n\
         // relay/tests/contract_copies.rs. Do not edit: change the Rust definitions and run\n\
         // UPDATE_GENERATED=1 cargo test -p relay --test contract_copies.\n\n",
    );
    out.push_str("/** Terminal WebSocket close codes and what they mean to the user. */\n");
    out.push_str("export const CLOSE_REASONS: Record<number, string> = {\n");
    for close in Close::ALL {
        writeln!(out, "  {}: '{}',", close.code(), close.meaning()).unwrap();
    }
    out.push_str("};\n\n/** Close codes by name. */\nexport const Close = {\n");
    for close in Close::ALL {
        writeln!(out, "  {:?}: {},", close, close.code()).unwrap();
    }
    out.push_str("} as const;\n\n");
    out.push_str("/** Text frames the relay sends. */\n");
    out.push_str(&ts_event_union("ServerEvent", SERVER_EVENT_SHAPES));
    out.push_str("\n/** Text frames the relay accepts. */\n");
    out.push_str(&ts_event_union("ClientEvent", CLIENT_EVENT_SHAPES));
    out.push_str("\n/** The `code` of an error envelope. */\nexport type ErrorCode =\n");
    for code in ErrorCode::ALL {
        writeln!(out, "  | '{}'", code.as_str()).unwrap();
    }
    out.pop();
    out.push_str(";\n");
    out
}

fn close_table() -> String {
    let mut out = String::from("| Code | Why |\n|---|---|\n");
    for close in Close::ALL {
        writeln!(out, "| {} | {} |", close.code(), close.detail()).unwrap();
    }
    out
}

fn event_table(shapes: &[(&str, &[(&str, &str)])]) -> String {
    let mut out = String::from("| `type` | fields |\n|---|---|\n");
    for (kind, fields) in shapes {
        let fields: Vec<String> = fields
            .iter()
            // A `|` inside a table cell must be escaped.
            .map(|(name, ty)| format!("`{name}`: {}", ty.replace('|', "\\|")))
            .collect();
        let fields = if fields.is_empty() {
            "—".to_owned()
        } else {
            fields.join(", ")
        };
        writeln!(out, "| `{kind}` | {fields} |").unwrap();
    }
    out
}

fn error_table() -> String {
    let mut out = String::from("| `code` | status | meaning |\n|---|---|---|\n");
    for code in ErrorCode::ALL {
        writeln!(
            out,
            "| `{}` | {} | {} |",
            code.as_str(),
            code.status().as_u16(),
            code.meaning()
        )
        .unwrap();
    }
    out
}

#[test]
fn the_web_apps_protocol_module_is_generated_from_the_rust_definitions() {
    check_file("relay/web/src/protocol.ts", &typescript());
}

#[test]
fn the_protocol_document_tables_match_the_rust_definitions() {
    check_section("docs/websocket-protocol.md", "close codes", &close_table());
    check_section(
        "docs/websocket-protocol.md",
        "client events",
        &event_table(CLIENT_EVENT_SHAPES),
    );
    check_section(
        "docs/websocket-protocol.md",
        "server events",
        &event_table(SERVER_EVENT_SHAPES),
    );
}

#[test]
fn the_api_documents_error_codes_match_the_rust_definitions() {
    check_section("docs/api.md", "error codes", &error_table());
}

#[test]
fn the_web_app_switches_on_codes_not_on_message_text() {
    // The one place the app once compared English text; it must use the code now.
    let main = std::fs::read_to_string(repo("relay/web/src/main.ts")).unwrap();
    assert!(
        !main.contains("err.message ==="),
        "main.ts compares error message text"
    );
    let terminal = std::fs::read_to_string(repo("relay/web/src/terminal.ts")).unwrap();
    assert!(
        terminal.contains("from './protocol'"),
        "terminal.ts must take close codes from the generated protocol module"
    );
}
