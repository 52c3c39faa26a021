//! The terminal WebSocket's wire protocol, defined once: client and server events, close codes,
//! size limits and the relay-to-relay header.
//!
//! Everything else on the terminal path imports from here (the pump, forwarding, the upgrade
//! handler), and nothing here imports from them. The web app's TypeScript copy
//! (`relay/web/src/protocol.ts`) and the tables in `docs/websocket-protocol.md` are generated
//! from these definitions and checked by `relay/tests/contract_copies.rs`, so the three cannot
//! drift: change a code here, run that test with `UPDATE_GENERATED=1`, commit the result.
//!
//! Frames: binary both ways is raw terminal bytes (keystrokes in, output out, never re-encoded);
//! text frames are the JSON events below.

use std::borrow::Cow;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use serde::{Deserialize, Serialize};

/// Largest client message (a paste) or frame accepted; larger ones close the socket (1009).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Read buffer of a socket that carries keystrokes (the browser's, and the hop's upstream write
/// side), allocated up front for the socket's life. Input is small frames (a paste grows the
/// buffer as needed, up to [`MAX_MESSAGE_BYTES`]); tungstenite's default (128 KiB) would be most
/// of an idle terminal's memory, and 8 KiB was still 6 KiB more per terminal than this.
pub const INPUT_BUFFER_BYTES: usize = 2 * 1024;
/// Buffer of a socket that carries output (the browser's write side, a hop's read side): output
/// is written once this much is queued and whenever the writer's queue runs dry, so bursts go
/// out in few frames without holding a large buffer per terminal.
pub const OUTPUT_BUFFER_BYTES: usize = 8 * 1024;
/// Frames queued inside tungstenite beyond that are refused rather than buffered.
pub const MAX_WRITE_BUFFER_BYTES: usize = 256 * 1024;
/// Output coalescing stops adding SSH packets to one binary frame past this size.
pub const MAX_OUTPUT_FRAME: usize = 64 * 1024;
/// Largest terminal size a resize may ask for, in columns and rows.
pub const MAX_COLS_ROWS: u32 = 1000;

/// Header a relay sets when it forwards a WebSocket to the relay holding the session: a proof
/// (see `ws::hop`) that carries the identity the forwarding relay already verified. A request
/// carrying it without a valid proof is refused.
pub const HOP_HEADER: &str = "x-sushi-hop";

/// What a share lets its viewers do: watch, or also type once the owner grants it.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ShareMode {
    View,
    Control,
}

impl ShareMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::Control => "control",
        }
    }
}

/// Client → relay text frames (binary frames are keystrokes).
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientEvent {
    /// Keystrokes as text (the seed's shape).
    Data { data: String },
    /// The same, under the name some clients use.
    Input { data: String },
    /// The browser's terminal size.
    Resize { cols: u32, rows: u32 },
    /// Application-level keepalive; the relay only notes that the client is alive.
    Heartbeat,
    /// Output bytes the client has received in this session (counted over binary frames): the
    /// relay may forget everything before `offset`.
    Ack { offset: u64 },
    /// The first frame on `GET /ssh?session=<id>`: the session's secret and the output bytes
    /// the client has received. Nothing else is accepted before the relay answers `resumed`.
    Resume { secret: String, offset: u64 },
    /// Round-trip probe; the relay answers `pong` with the same `id` at once.
    Ping { id: u64 },
    /// Owner: share this terminal. `emails` names who may join (signed in as one of them);
    /// empty means anyone holding the link, which only a `view` share allows. Expires after
    /// `expires_in_secs` (default 3600, at most 86400). `screen` is the owner's serialised
    /// screen after `offset` output bytes, used to seed the viewers' screen when the relay no
    /// longer holds the session's output from its first byte.
    ShareCreate {
        mode: ShareMode,
        #[serde(default)]
        emails: Vec<String>,
        #[serde(default)]
        expires_in_secs: Option<u64>,
        #[serde(default)]
        screen: Option<String>,
        #[serde(default)]
        offset: Option<u64>,
    },
    /// Owner: end a share now; its viewers are disconnected (4016).
    ShareRevoke { id: String },
    /// Owner: let a viewer of a `control` share type.
    ControlGrant { viewer: u64 },
    /// Owner: take typing back from a viewer.
    ControlRevoke { viewer: u64 },
    /// The first frame on `GET /ssh?share=<id>`: the share's secret (from the link's fragment).
    Join { secret: String },
}

/// One viewer of a shared terminal, as its owner sees it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ViewerInfo {
    pub id: u64,
    /// The share the viewer joined through.
    pub share: String,
    /// The viewer's identity (an email), or `anonymous` on a link share without sign-in.
    pub who: String,
    pub mode: ShareMode,
    /// Whether the viewer may type now.
    pub control: bool,
}

/// Relay → client text frames (binary frames are terminal output).
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// The remote shell ended: its exit status, or `null` and the signal that killed it.
    Exit {
        code: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        signal: Option<String>,
    },
    /// Something the user should see in the terminal; the session may go on.
    Error { message: Cow<'static, str> },
    /// The relay is draining: the terminal will close after `grace_secs`.
    Shutdown {
        message: Cow<'static, str>,
        grace_secs: u64,
    },
    /// First event of a fresh terminal: what a client needs to resume it. Output offsets start
    /// at 0. `persistent` names the tmux session the shell runs in, when the machine has one.
    Session {
        id: String,
        secret: String,
        grace_secs: u64,
        persistent: Option<String>,
    },
    /// First event after a resume: output continues at byte `offset`; `dropped` bytes between
    /// the client's offset and `offset` were lost to the ring's bound; the relay has taken
    /// `input_offset` keystroke bytes, so the client resends what it sent after that.
    Resumed {
        offset: u64,
        dropped: u64,
        input_offset: u64,
    },
    /// Answer to a client `ping`.
    Pong { id: u64 },
    /// To the owner, once: a share was created. The link is `/#share=<id>.<secret>`; the secret
    /// is shown only here.
    ShareCreated {
        id: String,
        secret: String,
        mode: ShareMode,
        emails: Vec<String>,
        expires_in_secs: u64,
    },
    /// To the owner: a share ended (`revoked` or `expired`).
    ShareEnded {
        id: String,
        reason: Cow<'static, str>,
    },
    /// To the owner, whenever it changes: who is watching.
    Viewers { viewers: Vec<ViewerInfo> },
    /// To a viewer, first: its id, what the share allows and the terminal's size. The next
    /// binary frame redraws the current screen; live output follows.
    Joined {
        viewer: u64,
        mode: ShareMode,
        cols: u16,
        rows: u16,
    },
    /// To a viewer: the owner granted (or took back) typing.
    Control { granted: bool },
    /// To a viewer: the owner's terminal was resized.
    Size { cols: u16, rows: u16 },
}

impl ServerEvent {
    pub fn error(message: &'static str) -> Self {
        Self::Error {
            message: Cow::Borrowed(message),
        }
    }

    /// The text frame. Serialising these plain types cannot fail; if it ever did, the client
    /// gets a generic error event rather than nothing.
    pub fn to_message(&self) -> Message {
        let text = serde_json::to_string(self)
            .unwrap_or_else(|_| r#"{"type":"error","message":"internal error"}"#.to_owned());
        Message::Text(text.into())
    }
}

/// The shapes of the events, for the generated TypeScript and docs: `(type, [(field, TS type)])`.
/// A unit test below checks them against what the enums above actually serialise.
pub const CLIENT_EVENT_SHAPES: &[(&str, &[(&str, &str)])] = &[
    ("data", &[("data", "string")]),
    ("input", &[("data", "string")]),
    ("resize", &[("cols", "number"), ("rows", "number")]),
    ("heartbeat", &[]),
    ("ack", &[("offset", "number")]),
    ("resume", &[("secret", "string"), ("offset", "number")]),
    ("ping", &[("id", "number")]),
    (
        "share_create",
        &[
            ("mode", "'view' | 'control'"),
            ("emails?", "string[]"),
            ("expires_in_secs?", "number"),
            ("screen?", "string"),
            ("offset?", "number"),
        ],
    ),
    ("share_revoke", &[("id", "string")]),
    ("control_grant", &[("viewer", "number")]),
    ("control_revoke", &[("viewer", "number")]),
    ("join", &[("secret", "string")]),
];
pub const SERVER_EVENT_SHAPES: &[(&str, &[(&str, &str)])] = &[
    ("exit", &[("code", "number | null"), ("signal?", "string")]),
    ("error", &[("message", "string")]),
    (
        "shutdown",
        &[("message", "string"), ("grace_secs", "number")],
    ),
    (
        "session",
        &[
            ("id", "string"),
            ("secret", "string"),
            ("grace_secs", "number"),
            ("persistent", "string | null"),
        ],
    ),
    (
        "resumed",
        &[
            ("offset", "number"),
            ("dropped", "number"),
            ("input_offset", "number"),
        ],
    ),
    ("pong", &[("id", "number")]),
    (
        "share_created",
        &[
            ("id", "string"),
            ("secret", "string"),
            ("mode", "'view' | 'control'"),
            ("emails", "string[]"),
            ("expires_in_secs", "number"),
        ],
    ),
    ("share_ended", &[("id", "string"), ("reason", "string")]),
    (
        "viewers",
        &[(
            "viewers",
            "Array<{ id: number; share: string; who: string; mode: 'view' | 'control'; control: boolean }>",
        )],
    ),
    (
        "joined",
        &[
            ("viewer", "number"),
            ("mode", "'view' | 'control'"),
            ("cols", "number"),
            ("rows", "number"),
        ],
    ),
    ("control", &[("granted", "boolean")]),
    ("size", &[("cols", "number"), ("rows", "number")]),
];

macro_rules! close_codes {
    ($($variant:ident = ($code:literal, $meaning:literal, $detail:literal),)*) => {
        /// Close codes, and why (RFC 6455 leaves 4000–4999 to applications).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Close {
            $(#[doc = $meaning] $variant,)*
        }

        impl Close {
            pub const ALL: &'static [Close] = &[$(Close::$variant,)*];

            pub fn code(self) -> u16 {
                match self { $(Close::$variant => $code,)* }
            }

            /// What it means to the person at the terminal (the web app shows this).
            pub fn meaning(self) -> &'static str {
                match self { $(Close::$variant => $meaning,)* }
            }

            /// When exactly it is sent (the protocol document's table).
            pub fn detail(self) -> &'static str {
                match self { $(Close::$variant => $detail,)* }
            }

            pub fn from_code(code: u16) -> Option<Self> {
                match code { $($code => Some(Close::$variant),)* _ => None }
            }
        }
    };
}

close_codes! {
    Normal = (1000, "session ended",
        "the remote shell ended (an `exit` event precedes it), or the client closed with 1000 (an explicit end; any other way of leaving parks the session for resume)"),
    GoingAway = (1001, "the relay is shutting down",
        "the relay shut down after its drain grace period"),
    MessageTooBig = (1009, "message too large",
        "a client message over 64 KiB"),
    TicketInvalid = (4001, "ticket invalid or expired",
        "unknown, malformed or expired ticket (or its session is gone)"),
    TicketUsed = (4002, "ticket already used",
        "the ticket was already used to open a terminal"),
    TicketNotYours = (4003, "ticket belongs to another user",
        "the `jwt` cookie names another user than the ticket's owner, is invalid, or is missing from a browser (a request with an `Origin`)"),
    SshClosed = (4004, "SSH connection closed",
        "the SSH connection ended without an exit status"),
    IdleTimeout = (4008, "idle timeout",
        "no keystroke and no output for `IDLE_TIMEOUT_SECS` (1800)"),
    ClientUnresponsive = (4009, "connection unresponsive",
        "the client sent nothing (no frames, no pongs) for three keepalive intervals and received no output meanwhile, or accepted nothing for 60 s"),
    RoutingUnavailable = (4011, "routing unavailable",
        "Redis or the relay holding the session could not be reached (within 5 s), or that relay was lost mid-session, or the store could not be read to check an organization member's access before a ticket opens or a resume attaches"),
    SessionGone = (4012, "session no longer exists",
        "a resume named an unknown, ended or expired session, gave the wrong secret, or sent no valid `resume` frame within 10 s"),
    TakenOver = (4013, "terminal opened in another window",
        "another WebSocket resumed this session; this one is no longer attached"),
    ShareInvalid = (4014, "share link invalid or expired",
        "a share join named an unknown, revoked or expired share, gave the wrong secret, or sent no valid `join` frame within 10 s"),
    ShareNotForYou = (4015, "this share is for other users",
        "the share names its viewers and the `jwt` cookie is missing or names someone else (sign in as an invited user)"),
    ShareEnded = (4016, "the owner stopped sharing",
        "the share was revoked by its owner, or expired, while the viewer watched"),
    ViewerTooSlow = (4017, "too far behind the shared terminal",
        "a viewer fell 64 frames behind the terminal's output (the terminal never waits for a viewer)"),
    ShareFull = (4018, "too many viewers",
        "the terminal already has 50 viewers"),
    RecordingFailed = (4020, "recording failed",
        "the deployment requires recording (`RECORDING=required`) and this session's recording could not be written or fell behind; an `error` event precedes it"),
    AccessRevoked = (4021, "organization access removed",
        "the terminal is on an organization machine and its user no longer belongs to the organization with a role that connects (removed, left, or made auditor): checked when its ticket is opened, on a resume, and every `ORG_ACCESS_CHECK_SECS` (5) while it lives; its share viewers get the same close"),
}

/// A close frame with `code` and a short reason for the log and the browser's `reason`. Every
/// close the relay sends is built here, so this is where it is counted
/// (`sushi_relay_websocket_closes_total`); a close relayed from another relay was counted there.
pub fn close_message(code: Close, reason: &'static str) -> Message {
    crate::metrics::get().close_sent(code);
    Message::Close(Some(CloseFrame {
        code: code.code(),
        reason: reason.into(),
    }))
}

/// Refuse a just-upgraded socket: close with `code` and a short reason, bounded in time.
pub async fn refuse(mut socket: WebSocket, code: Close, reason: &'static str) {
    tracing::info!(code = code.code(), reason, "websocket refused");
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        socket.send(close_message(code, reason)),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn keys(value: &Value) -> Vec<String> {
        let mut keys: Vec<String> = value
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "type")
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    fn shape_keys(fields: &[(&str, &str)], with_optional: bool) -> Vec<String> {
        let mut keys: Vec<String> = fields
            .iter()
            .filter(|(name, _)| with_optional || !name.ends_with('?'))
            .map(|(name, _)| name.trim_end_matches('?').to_owned())
            .collect();
        keys.sort();
        keys
    }

    #[test]
    fn server_event_shapes_match_what_the_enum_serialises() {
        let samples = [
            (
                ServerEvent::Exit {
                    code: Some(0),
                    signal: None,
                },
                false,
            ),
            (
                ServerEvent::Exit {
                    code: None,
                    signal: Some("KILL".into()),
                },
                true,
            ),
            (ServerEvent::error("x"), true),
            (
                ServerEvent::Shutdown {
                    message: "x".into(),
                    grace_secs: 1,
                },
                true,
            ),
            (
                ServerEvent::Session {
                    id: "x".into(),
                    secret: "x".into(),
                    grace_secs: 300,
                    persistent: None,
                },
                true,
            ),
            (
                ServerEvent::Resumed {
                    offset: 1,
                    dropped: 0,
                    input_offset: 2,
                },
                true,
            ),
            (ServerEvent::Pong { id: 7 }, true),
            (
                ServerEvent::ShareCreated {
                    id: "x".into(),
                    secret: "x".into(),
                    mode: ShareMode::View,
                    emails: vec![],
                    expires_in_secs: 60,
                },
                true,
            ),
            (
                ServerEvent::ShareEnded {
                    id: "x".into(),
                    reason: "revoked".into(),
                },
                true,
            ),
            (ServerEvent::Viewers { viewers: vec![] }, true),
            (
                ServerEvent::Joined {
                    viewer: 1,
                    mode: ShareMode::Control,
                    cols: 80,
                    rows: 24,
                },
                true,
            ),
            (ServerEvent::Control { granted: true }, true),
            (ServerEvent::Size { cols: 80, rows: 24 }, true),
        ];
        for (event, with_optional) in samples {
            let value: Value = serde_json::to_value(&event).unwrap();
            let kind = value["type"].as_str().unwrap();
            let (_, fields) = SERVER_EVENT_SHAPES
                .iter()
                .find(|(name, _)| *name == kind)
                .unwrap_or_else(|| panic!("{kind} has no shape"));
            assert_eq!(keys(&value), shape_keys(fields, with_optional), "{kind}");
        }
        assert_eq!(
            serde_json::to_string(&ServerEvent::Exit {
                code: Some(3),
                signal: None
            })
            .unwrap(),
            r#"{"type":"exit","code":3}"#
        );
    }

    #[test]
    fn client_event_shapes_parse() {
        for (kind, fields) in CLIENT_EVENT_SHAPES {
            let mut object = serde_json::Map::new();
            object.insert("type".into(), Value::from(*kind));
            for (name, ts) in *fields {
                let value = match *ts {
                    "number" => Value::from(80),
                    "string[]" => Value::from(vec!["x@sushi.test"]),
                    "'view' | 'control'" => Value::from("view"),
                    _ => Value::from("x"),
                };
                object.insert(name.trim_end_matches('?').to_owned(), value);
            }
            let parsed: Result<ClientEvent, _> = serde_json::from_value(Value::Object(object));
            assert!(parsed.is_ok(), "{kind}");
        }
    }

    #[test]
    fn close_codes_round_trip_and_are_unique() {
        for close in Close::ALL {
            assert_eq!(Close::from_code(close.code()), Some(*close));
        }
    }
}
