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

/// A lower-case hex digit of `nibble` (0..=15).
const fn hex(nibble: u8) -> u8 {
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
    // Valid text leaves nothing to carry.
    let mut carry = Vec::new();
    transcode(text, true, &mut carry, out);
}

/// The UTF-8 encoding of U+FFFD, what an invalid sequence becomes.
const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// Eight bytes at a time: one in each lane.
const LANES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each lane of `word` whose byte is zero. Exact for the lowest flagged lane
/// (a borrow only runs towards higher lanes), which is all the scan needs.
fn zero_lanes(word: u64) -> u64 {
    word.wrapping_sub(LANES) & !word & HIGH
}

/// The lanes of `word` (little-endian: lane 0 is the first byte) that stop the fast path: a
/// byte ≥ 0x80 (the start or middle of a multi-byte character, or an invalid byte) and, when
/// escaping, a byte JSON requires escaped (a C0 control, `"`, `\`). Zero when all eight are
/// plain ASCII to copy as they are.
fn stops(word: u64, escape: bool) -> u64 {
    let high = word & HIGH;
    if !escape {
        return high;
    }
    // Bytes below 0x20, among those below 0x80 (the others are already flagged).
    let control = word.wrapping_sub(LANES * 0x20) & !word & HIGH;
    let quote = zero_lanes(word ^ (LANES * u64::from(b'"')));
    let backslash = zero_lanes(word ^ (LANES * u64::from(b'\\')));
    high | control | quote | backslash
}

/// Output staged before it is appended to the buffer: each step stores a fixed 8 bytes and
/// advances by what it wrote, which keeps the per-byte path free of branches and calls.
const STAGE: usize = 512;

/// How a byte is written when it stops the eight-at-a-time path: up to six bytes, their count
/// in the last lane; a count of 0 marks the first byte of a multi-byte sequence, decoded
/// with [`sequence`].
type Entry = [u8; 8];

/// The table for escaped (JSON) or plain decoding, built at compile time.
#[allow(clippy::indexing_slicing)] // `b` runs over 0..256, the table's length.
const fn entries(escape: bool) -> [Entry; 256] {
    let mut table = [[0u8; 8]; 256];
    let mut b = 0usize;
    while b < 256 {
        let byte = b as u8;
        let mut entry = [0u8; 8];
        if byte < 0x80 {
            if escape && (byte < 0x20 || byte == b'"' || byte == b'\\') {
                let short = match byte {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'\n' => b'n',
                    b'\r' => b'r',
                    b'\t' => b't',
                    0x08 => b'b',
                    0x0c => b'f',
                    _ => 0,
                };
                entry[0] = b'\\';
                if short != 0 {
                    entry[1] = short;
                    entry[7] = 2;
                } else {
                    entry[1] = b'u';
                    entry[2] = b'0';
                    entry[3] = b'0';
                    entry[4] = hex(byte >> 4);
                    entry[5] = hex(byte & 0xf);
                    entry[7] = 6;
                }
            } else {
                entry[0] = byte;
                entry[7] = 1;
            }
        } else if byte >= 0xC2 && byte <= 0xF4 {
            entry[7] = 0;
        } else {
            // Never the start of a character: one U+FFFD.
            entry[0] = 0xEF;
            entry[1] = 0xBF;
            entry[2] = 0xBD;
            entry[7] = 3;
        }
        table[b] = entry;
        b += 1;
    }
    table
}

static ESCAPED: [Entry; 256] = entries(true);
static PLAIN: [Entry; 256] = entries(false);

/// What the bytes at the start of a slice that begins with a byte ≥ 0x80 are.
enum Sequence {
    /// A whole character of this many bytes.
    Valid(usize),
    /// Not UTF-8: this many bytes (the longest prefix that could have begun a character, at
    /// least one) become one U+FFFD, as `String::from_utf8_lossy` replaces them.
    Invalid(usize),
    /// A valid beginning cut by the end of the slice.
    Incomplete,
}

/// The character at the start of `bytes` (whose first byte is ≥ 0x80), by the table of
/// well-formed sequences in the Unicode standard (no overlong forms, no surrogates, nothing
/// past U+10FFFF).
fn sequence(bytes: &[u8]) -> Sequence {
    let Some(&first) = bytes.first() else {
        return Sequence::Incomplete;
    };
    // The length, and the range the second byte must be in (the others are 0x80..=0xBF).
    let (len, second) = match first {
        0xC2..=0xDF => (2, 0x80..=0xBF),
        0xE0 => (3, 0xA0..=0xBF),
        0xE1..=0xEC | 0xEE..=0xEF => (3, 0x80..=0xBF),
        0xED => (3, 0x80..=0x9F),
        0xF0 => (4, 0x90..=0xBF),
        0xF1..=0xF3 => (4, 0x80..=0xBF),
        0xF4 => (4, 0x80..=0x8F),
        _ => return Sequence::Invalid(1),
    };
    for k in 1..len {
        let Some(&b) = bytes.get(k) else {
            return Sequence::Incomplete;
        };
        let fits = if k == 1 {
            second.contains(&b)
        } else {
            (0x80..=0xBF).contains(&b)
        };
        if !fits {
            return Sequence::Invalid(k);
        }
    }
    Sequence::Valid(len)
}

/// Decode `input` in one pass into `out`: whole characters copied, each invalid sequence
/// U+FFFD, and, if `escape`, control characters, `"` and `\\` JSON-escaped; a valid beginning
/// cut by the end of `input` is put in `carry`. Eight plain ASCII bytes are checked and copied
/// at a time (text costs about a copy); the rest goes one byte at a time through a table of
/// what each byte becomes (binary output is mostly this path), except the first byte of a
/// multi-byte sequence, which [`sequence`] decodes.
fn transcode(input: &[u8], escape: bool, carry: &mut Vec<u8>, out: &mut Vec<u8>) {
    let table = if escape { &ESCAPED } else { &PLAIN };
    out.reserve(input.len());
    let mut stage = [0u8; STAGE + 64];
    let mut pos = 0;
    let mut i = 0;
    while i < input.len() {
        if pos >= STAGE {
            out.extend_from_slice(stage.get(..pos).unwrap_or_default());
            pos = 0;
        }
        // Eight bytes at a time while they are plain ASCII.
        let mut end = input.len();
        if let Some(word) = input.get(i..).and_then(|rest| rest.first_chunk::<8>()) {
            let flagged = stops(u64::from_le_bytes(*word), escape);
            if let Some(slot) = stage.get_mut(pos..pos + 8) {
                slot.copy_from_slice(word);
            }
            if flagged == 0 {
                pos += 8;
                i += 8;
                continue;
            }
            let skip = (flagged.trailing_zeros() / 8) as usize;
            end = i + 8;
            pos += skip;
            i += skip;
        }
        // The rest of that word (or the last bytes) one at a time.
        while i < end {
            let rest = input.get(i..).unwrap_or_default();
            let b = rest.first().copied().unwrap_or_default();
            let entry = table.get(usize::from(b)).copied().unwrap_or_default();
            let len = usize::from(entry[7]);
            if len != 0 {
                if let Some(slot) = stage.get_mut(pos..pos + 8) {
                    slot.copy_from_slice(&entry);
                }
                pos += len;
                i += 1;
                continue;
            }
            match sequence(rest) {
                Sequence::Valid(len) => {
                    if let (Some(slot), Some(src)) =
                        (stage.get_mut(pos..pos + len), rest.get(..len))
                    {
                        slot.copy_from_slice(src);
                    }
                    pos += len;
                    i += len;
                }
                Sequence::Invalid(len) => {
                    if let Some(slot) = stage.get_mut(pos..pos + 3) {
                        slot.copy_from_slice(REPLACEMENT);
                    }
                    pos += 3;
                    i += len;
                }
                Sequence::Incomplete => {
                    out.extend_from_slice(stage.get(..pos).unwrap_or_default());
                    carry.extend_from_slice(rest);
                    return;
                }
            }
        }
    }
    out.extend_from_slice(stage.get(..pos).unwrap_or_default());
}

/// A UTF-8 decoder that keeps an incomplete trailing sequence for the next frame.
#[derive(Default)]
pub struct Utf8Carry {
    /// A valid beginning of a character cut by the end of the last frame (at most 3 bytes).
    pending: Vec<u8>,
}

impl Utf8Carry {
    /// The text `bytes` completes; an incomplete sequence at the end is kept for the next
    /// call, invalid bytes become U+FFFD.
    pub fn decode(&mut self, bytes: &[u8]) -> String {
        let mut out = Vec::with_capacity(bytes.len() + self.pending.len());
        self.decode_with(bytes, false, &mut out);
        // Only whole UTF-8 sequences and U+FFFD were written.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Like [`Utf8Carry::decode`], written straight into `out` as JSON string content
    /// ([`escape_into`]): the recorder's path, with no intermediate string.
    pub fn decode_escaped(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.decode_with(bytes, true, out);
    }

    fn decode_with(&mut self, bytes: &[u8], escape: bool, out: &mut Vec<u8>) {
        let mut bytes = bytes;
        if !self.pending.is_empty() {
            // Finish the carried character with the frame's first bytes (four bytes decide
            // any sequence), then decode the rest of the frame where it left off: the frame
            // itself is not copied.
            let held = self.pending.len();
            let mut joined = [0u8; 4];
            let mut len = 0;
            for (slot, &b) in joined.iter_mut().zip(self.pending.iter().chain(bytes)) {
                *slot = b;
                len += 1;
            }
            let window = joined.get(..len).unwrap_or_default();
            let used = match sequence(window) {
                Sequence::Valid(len) => {
                    out.extend_from_slice(window.get(..len).unwrap_or_default());
                    len
                }
                Sequence::Invalid(len) => {
                    out.extend_from_slice(REPLACEMENT);
                    len
                }
                Sequence::Incomplete => {
                    // A frame too short to finish it: all of it is carried.
                    self.pending.clear();
                    self.pending.extend_from_slice(window);
                    return;
                }
            };
            self.pending.clear();
            // The carried bytes are a valid beginning, so the sequence ends past them.
            bytes = bytes.get(used.saturating_sub(held)..).unwrap_or_default();
        }
        transcode(bytes, escape, &mut self.pending, out);
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

    /// Deterministic pseudo-random bytes (xorshift), drawn from `alphabet`.
    fn noise(seed: &mut u64, alphabet: &[u8], len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                alphabet[(*seed % alphabet.len() as u64) as usize]
            })
            .collect()
    }

    #[test]
    fn any_bytes_in_any_frames_decode_as_from_utf8_lossy_does() {
        // Random bytes, bytes around the edges of the well-formed table (overlong forms,
        // surrogates, past U+10FFFF, cut sequences) and text, in frames cut at random places:
        // the recorder's one-pass decoder must write exactly what the standard library's lossy
        // decoder writes for the whole stream, escaped as serde_json escapes it.
        let every: Vec<u8> = (0..=255).collect();
        let edges = b"ab\"\\\n\x1b\xc3\xa9\xe2\x82\xac\xf0\x9f\xa6\x80\xed\xa0\x80\xf4\x90\xe0\x80\xc0\xff\xc2\xdf\xbf";
        let text = "héllo wörld → 🦀 \r\n".as_bytes();
        let mut seed = 0x1234_5678_9abc_def1;
        for round in 0..3000 {
            let alphabet: &[u8] = [&every[..], &edges[..], text][round % 3];
            let long = round % 10 == 0;
            let data = noise(&mut seed, alphabet, if long { 3000 } else { round % 64 });
            let mut escaped = Utf8Carry::default();
            let mut plain = Utf8Carry::default();
            let (mut json, mut decoded) = (Vec::new(), String::new());
            let mut at = 0;
            while at < data.len() {
                let cut = noise(&mut seed, &every, 2);
                let len = if long {
                    usize::from(cut[0]) * 16
                } else {
                    usize::from(cut[0]) % 13
                };
                let len = len.min(data.len() - at);
                escaped.decode_escaped(&data[at..at + len], &mut json);
                decoded.push_str(&plain.decode(&data[at..at + len]));
                at += len;
            }
            if let Some(rest) = escaped.finish() {
                escape_into(rest.as_bytes(), &mut json);
            }
            decoded.push_str(&plain.finish().unwrap_or_default());
            let lossy = String::from_utf8_lossy(&data);
            assert_eq!(decoded, lossy, "{data:x?}");
            let expected = serde_json::to_string(&lossy).unwrap();
            assert_eq!(
                String::from_utf8(json).unwrap(),
                expected[1..expected.len() - 1],
                "{data:x?}"
            );
        }
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
