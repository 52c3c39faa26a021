//! The recording's plaintext: asciicast v2, the format asciinema players read.
//!
//! A header line (`{"version":2,"width":…,"height":…,"timestamp":…}`) then one JSON array per
//! event, `[seconds, code, data]`: `o` output, `i` input (only when the machine's owner turned
//! `record_input` on), `r` resize (`"COLSxROWS"`), `m` a marker (here: where the recording has
//! a gap, and why).
//!
//! asciicast carries text, the terminal carries bytes. Output is decoded as UTF-8 with the
//! decoder's state kept across frames ([`Utf8Carry`]): a multi-byte character split between
//! two SSH packets is held back and written whole with the next frame, so valid UTF-8 output
//! replays byte for byte. Bytes that are not UTF-8 at all cannot be represented in asciicast;
//! they become U+FFFD, as asciinema's own recorder does (docs/recording.md).

use serde::Serialize;

/// The first line of a recording.
#[derive(Serialize)]
pub struct Header<'a> {
    pub version: u8,
    pub width: u32,
    pub height: u32,
    /// Unix seconds at the start.
    pub timestamp: i64,
    pub title: &'a str,
    pub env: Env,
}

#[derive(Serialize)]
pub struct Env {
    #[serde(rename = "TERM")]
    pub term: &'static str,
}

impl Header<'_> {
    /// The header as one line, newline included.
    pub fn line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

/// What kind of event a line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Output,
    Input,
    Resize,
    Marker,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Output => "o",
            Self::Input => "i",
            Self::Resize => "r",
            Self::Marker => "m",
        }
    }
}

/// One event line, newline included. Time is in seconds with microsecond precision, written
/// in fixed notation (a JSON serializer would write `1.2e-5` for the first events).
pub fn event_line(seconds: f64, code: Code, data: &str) -> Vec<u8> {
    let data = serde_json::to_string(data).unwrap_or_default();
    format!("[{seconds:.6},\"{}\",{data}]\n", code.as_str()).into_bytes()
}

/// A UTF-8 decoder that keeps an incomplete trailing sequence for the next frame.
#[derive(Default)]
pub struct Utf8Carry {
    pending: Vec<u8>,
}

impl Utf8Carry {
    /// The text `bytes` completes; an incomplete sequence at the end is kept for the next
    /// call, invalid bytes become U+FFFD.
    pub fn decode(&mut self, bytes: &[u8]) -> String {
        let mut input = std::mem::take(&mut self.pending);
        input.extend_from_slice(bytes);
        let mut out = String::with_capacity(input.len());
        let mut rest: &[u8] = &input;
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    out.push_str(valid);
                    break;
                }
                Err(err) => {
                    let (valid, after) = rest.split_at(err.valid_up_to());
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match err.error_len() {
                        // Incomplete at the end: keep for the next frame.
                        None => {
                            self.pending = after.to_vec();
                            break;
                        }
                        Some(len) => {
                            out.push('\u{FFFD}');
                            rest = after.get(len..).unwrap_or_default();
                        }
                    }
                }
            }
        }
        out
    }

    /// What is left at the end of the recording (an incomplete sequence), as U+FFFD.
    pub fn finish(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        self.pending.clear();
        Some("\u{FFFD}".to_owned())
    }
}

/// The output a recording replays: the concatenated data of its `o` events, as bytes. What a
/// test compares with what the terminal's client received.
pub fn replay_output(cast: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for (n, line) in cast.split(|b| *b == b'\n').enumerate().skip(1) {
        if line.is_empty() {
            continue;
        }
        let (_, code, data): (f64, String, String) =
            serde_json::from_slice(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        if code == "o" {
            out.extend_from_slice(data.as_bytes());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_between_frames_is_written_whole() {
        let text = "héllo → wörld";
        let bytes = text.as_bytes();
        let mut carry = Utf8Carry::default();
        let mut out = String::new();
        for piece in bytes.chunks(1) {
            out.push_str(&carry.decode(piece));
        }
        assert_eq!(out, text);
        assert!(carry.finish().is_none());
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut carry = Utf8Carry::default();
        assert_eq!(carry.decode(b"a\xffb"), "a\u{FFFD}b");
        assert_eq!(carry.decode(b"\xe2\x82"), "");
        assert_eq!(carry.finish().as_deref(), Some("\u{FFFD}"));
    }

    #[test]
    fn events_replay_to_the_output() {
        let mut cast = Header {
            version: 2,
            width: 80,
            height: 24,
            timestamp: 0,
            title: "t",
            env: Env { term: "xterm" },
        }
        .line();
        cast.extend(event_line(0.1, Code::Output, "a\"b\n"));
        cast.extend(event_line(0.2, Code::Resize, "100x30"));
        cast.extend(event_line(0.3, Code::Input, "secret"));
        cast.extend(event_line(0.4, Code::Output, "\u{1b}[0m"));
        assert_eq!(replay_output(&cast).unwrap(), b"a\"b\n\x1b[0m");
    }
}
