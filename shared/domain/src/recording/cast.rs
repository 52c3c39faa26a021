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

/// Output frames that arrive within this long of an output event's first frame are written
/// into that event: asciicast players cannot show finer steps, and bulk output (a `cat`, a
/// build log) becomes one event per window instead of one per SSH packet, which is most of
/// what the recorder costs per byte.
pub const COALESCE: std::time::Duration = std::time::Duration::from_millis(10);

/// One event line, newline included. Time is in seconds with microsecond precision, written
/// in fixed notation (a JSON serializer would write `1.2e-5` for the first events).
pub fn event_line(seconds: f64, code: Code, data: &str) -> Vec<u8> {
    let mut line = Vec::with_capacity(data.len() + 24);
    open_event(&mut line, seconds, code);
    escape_into(data.as_bytes(), &mut line);
    close_event(&mut line);
    line
}

/// `[seconds,"code","`: an event whose data is written next, then [`close_event`].
pub fn open_event(out: &mut Vec<u8>, seconds: f64, code: Code) {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "[{seconds:.6},\"{}\",\"", code.as_str());
}

/// The end of an event opened with [`open_event`].
pub fn close_event(out: &mut Vec<u8>) {
    out.extend_from_slice(b"\"]\n");
}

/// Whether JSON requires `b` escaped inside a string: `"`, `\\` and the C0 controls.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// A lower-case hex digit of `nibble` (0..=15).
fn hex(nibble: u8) -> u8 {
    if nibble < 10 {
        b'0' + nibble
    } else {
        b'a' + nibble - 10
    }
}

/// `text` (valid UTF-8) as JSON string content appended to `out`, the same bytes
/// `serde_json` writes: runs that need no escape are copied whole, and only `"`, `\\` and
/// control characters are rewritten (`\n`, `\r`, `\t`, `\b`, `\f`, else `\u00xx`).
pub fn escape_into(text: &[u8], out: &mut Vec<u8>) {
    out.reserve(text.len());
    let mut run = 0;
    for (i, &b) in text.iter().enumerate() {
        if !needs_escape(b) {
            continue;
        }
        out.extend_from_slice(text.get(run..i).unwrap_or_default());
        run = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hex(b >> 4), hex(b & 0xf)]),
        }
    }
    out.extend_from_slice(text.get(run..).unwrap_or_default());
}

/// A UTF-8 decoder that keeps an incomplete trailing sequence for the next frame.
#[derive(Default)]
pub struct Utf8Carry {
    pending: Vec<u8>,
    /// Reused to join the carried bytes with the next frame (no allocation per frame).
    joined: Vec<u8>,
}

impl Utf8Carry {
    /// The text `bytes` completes; an incomplete sequence at the end is kept for the next
    /// call, invalid bytes become U+FFFD.
    pub fn decode(&mut self, bytes: &[u8]) -> String {
        let mut out = Vec::with_capacity(bytes.len() + self.pending.len());
        self.decode_with(bytes, &mut out, |text, out| out.extend_from_slice(text));
        // Only whole UTF-8 sequences and U+FFFD were written.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Like [`Utf8Carry::decode`], written straight into `out` as JSON string content
    /// ([`escape_into`]): the recorder's path, with no intermediate string.
    pub fn decode_escaped(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.decode_with(bytes, out, escape_into);
    }

    fn decode_with(&mut self, bytes: &[u8], out: &mut Vec<u8>, emit: fn(&[u8], &mut Vec<u8>)) {
        if self.pending.is_empty() {
            decode_into(bytes, &mut self.pending, out, emit);
            return;
        }
        let mut joined = std::mem::take(&mut self.joined);
        joined.clear();
        joined.extend_from_slice(&self.pending);
        joined.extend_from_slice(bytes);
        self.pending.clear();
        decode_into(&joined, &mut self.pending, out, emit);
        self.joined = joined;
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

/// Decode `input`: valid runs go through `emit`, each invalid sequence becomes U+FFFD, and an
/// incomplete sequence at the very end is put in `carry`.
fn decode_into(
    input: &[u8],
    carry: &mut Vec<u8>,
    out: &mut Vec<u8>,
    emit: fn(&[u8], &mut Vec<u8>),
) {
    const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();
    let mut rest = input;
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                emit(valid.as_bytes(), out);
                return;
            }
            Err(err) => {
                let (valid, after) = rest.split_at(err.valid_up_to());
                emit(valid, out);
                match err.error_len() {
                    // Incomplete at the end: keep for the next frame.
                    None => {
                        carry.extend_from_slice(after);
                        return;
                    }
                    Some(len) => {
                        out.extend_from_slice(REPLACEMENT);
                        rest = after.get(len..).unwrap_or_default();
                    }
                }
            }
        }
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
    fn the_fast_escape_writes_what_serde_json_writes() {
        let mut every: String = (0u8..0x80).map(char::from).collect();
        every.push_str("é → \u{FFFD} \u{7f} \u{2028} 🦀");
        let mut out = Vec::new();
        escape_into(every.as_bytes(), &mut out);
        let expected = serde_json::to_string(&every).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            expected[1..expected.len() - 1]
        );
    }

    #[test]
    fn a_character_split_between_escaped_frames_is_written_whole() {
        // Every split point of a text with 2-, 3- and 4-byte characters and bytes that need
        // escaping, fed frame by frame into the recorder's path.
        let text = "a\"é→🦀\r\n\u{1b}[0m ü";
        let bytes = text.as_bytes();
        for cut in 0..=bytes.len() {
            for second in cut..=bytes.len() {
                let mut carry = Utf8Carry::default();
                let mut out = Vec::new();
                carry.decode_escaped(&bytes[..cut], &mut out);
                carry.decode_escaped(&bytes[cut..second], &mut out);
                carry.decode_escaped(&bytes[second..], &mut out);
                assert!(carry.finish().is_none(), "{cut}/{second}");
                let json = format!("\"{}\"", String::from_utf8(out).unwrap());
                let decoded: String = serde_json::from_str(&json).unwrap();
                assert_eq!(decoded, text, "{cut}/{second}");
            }
        }
    }

    #[test]
    fn invalid_bytes_in_the_escaped_path_become_replacement_characters() {
        let mut carry = Utf8Carry::default();
        let mut out = Vec::new();
        // An invalid byte, a lone continuation byte, a sequence cut by an ASCII byte, and a
        // valid prefix carried into the next frame that the next frame does not complete.
        carry.decode_escaped(b"a\xffb\x80c\xe2\x82d\xf0\x9f", &mut out);
        carry.decode_escaped(b"\x41", &mut out);
        assert!(carry.finish().is_none());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            String::from_utf8_lossy(b"a\xffb\x80c\xe2\x82d\xf0\x9f\x41")
        );
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
