//! W3C Trace Context Level 2: parsing, validation and formatting of
//! `traceparent` (with the `random` flag) and `tracestate` (the Level 2 key
//! grammar, duplicated keys tolerated). Continuing a context hop by hop is
//! the `propagation` module's job.

use std::fmt::Write as _;

pub const FLAG_SAMPLED: u8 = 0x01;
/// Level 2: the right-most 7 bytes of the trace-id are random.
pub const FLAG_RANDOM: u8 = 0x02;
const KNOWN_FLAGS: u8 = FLAG_SAMPLED | FLAG_RANDOM;

/// Most members a tracestate may carry.
pub const MAX_TRACESTATE_MEMBERS: usize = 32;
/// Members longer than this are the first to go when tracestate is truncated.
pub const LONG_MEMBER: usize = 128;
/// The combined length every vendor must propagate at least.
pub const MIN_PROPAGATED_TRACESTATE: usize = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceId(pub [u8; 16]);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanId(pub [u8; 8]);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: TraceId,
    pub parent_id: SpanId,
    pub flags: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceParentError {
    Length,
    Version,
    Delimiter,
    NotLowerHex,
    ZeroTraceId,
    ZeroParentId,
    TrailingData,
    Duplicated,
}

impl TraceId {
    pub fn is_valid(&self) -> bool {
        self.0 != [0; 16]
    }

    /// The right-most 56 bits, the part Level 2 promises to be random.
    pub fn randomness(&self) -> u64 {
        let mut low = [0u8; 8];
        low[1..].copy_from_slice(&self.0[9..]);
        u64::from_be_bytes(low)
    }

    pub fn to_hex(self) -> String {
        hex(&self.0)
    }
}

impl SpanId {
    pub fn is_valid(&self) -> bool {
        self.0 != [0; 8]
    }

    pub fn to_hex(self) -> String {
        hex(&self.0)
    }
}

impl TraceParent {
    /// Parses one `traceparent` value. Optional whitespace around the value
    /// is allowed; everything else follows the Recommendation to the letter.
    pub fn parse(value: &str) -> Result<TraceParent, TraceParentError> {
        let value = value.trim_matches(|c| c == ' ' || c == '\t');
        let bytes = value.as_bytes();
        // The four fields of version 00 as a fixed array: every index below
        // is checked at compile time.
        let head: &[u8; 55] = bytes
            .get(..55)
            .and_then(|h| h.try_into().ok())
            .ok_or(TraceParentError::Length)?;
        let version = parse_hex_byte(&head[0..2]).ok_or(TraceParentError::NotLowerHex)?;
        if version == 0xff {
            return Err(TraceParentError::Version);
        }
        if head[2] != b'-' || head[35] != b'-' || head[52] != b'-' {
            return Err(TraceParentError::Delimiter);
        }
        if let Some(&after) = bytes.get(55) {
            // Version 00 has exactly four fields; a later version may append
            // fields, each introduced by a dash.
            if version == 0 {
                return Err(TraceParentError::TrailingData);
            }
            if after != b'-' {
                return Err(TraceParentError::Delimiter);
            }
        }
        let mut trace_id = [0u8; 16];
        decode_hex(&head[3..35], &mut trace_id).ok_or(TraceParentError::NotLowerHex)?;
        let mut parent_id = [0u8; 8];
        decode_hex(&head[36..52], &mut parent_id).ok_or(TraceParentError::NotLowerHex)?;
        let flags = parse_hex_byte(&head[53..55]).ok_or(TraceParentError::NotLowerHex)?;
        let parsed = TraceParent {
            trace_id: TraceId(trace_id),
            parent_id: SpanId(parent_id),
            flags,
        };
        if !parsed.trace_id.is_valid() {
            return Err(TraceParentError::ZeroTraceId);
        }
        if !parsed.parent_id.is_valid() {
            return Err(TraceParentError::ZeroParentId);
        }
        Ok(parsed)
    }

    /// Parses every `traceparent` header of a request: exactly one is valid.
    pub fn parse_all<'a>(
        mut values: impl Iterator<Item = &'a str>,
    ) -> Option<Result<TraceParent, TraceParentError>> {
        let first = values.next()?;
        if values.next().is_some() {
            return Some(Err(TraceParentError::Duplicated));
        }
        Some(TraceParent::parse(first))
    }

    pub fn is_sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }

    /// The header value, always version 00 with only the flags it defines.
    pub fn to_header(&self) -> String {
        let mut out = String::with_capacity(55);
        out.push_str("00-");
        push_hex(&mut out, &self.trace_id.0);
        out.push('-');
        push_hex(&mut out, &self.parent_id.0);
        out.push('-');
        push_hex(&mut out, &[self.flags & KNOWN_FLAGS]);
        out
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceStateError {
    Key,
    Value,
    Member,
    TooManyMembers,
}

/// An ordered `tracestate` list; the left-most member is the most recent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceState {
    members: Vec<(String, String)>,
}

impl TraceState {
    /// Parses the combined `tracestate` headers (several headers are joined
    /// by commas first). Empty members and optional whitespace are allowed.
    /// A key seen again is dropped: Level 2 lets a vendor keep duplicates
    /// or discard them, and the list itself is inherited either way (the
    /// left-most, most recent, member wins).
    pub fn parse<'a>(
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<TraceState, TraceStateError> {
        let mut members: Vec<(String, String)> = Vec::new();
        let mut count = 0usize;
        for value in values {
            for member in value.split(',') {
                let member = member.trim_matches(|c| c == ' ' || c == '\t');
                if member.is_empty() {
                    continue;
                }
                let (key, val) = member.split_once('=').ok_or(TraceStateError::Member)?;
                if !is_valid_key(key) {
                    return Err(TraceStateError::Key);
                }
                if !is_valid_value(val) {
                    return Err(TraceStateError::Value);
                }
                // The 32-member limit counts what was sent, duplicates too.
                count += 1;
                if count > MAX_TRACESTATE_MEMBERS {
                    return Err(TraceStateError::TooManyMembers);
                }
                if !members.iter().any(|(k, _)| k == key) {
                    members.push((key.to_string(), val.to_string()));
                }
            }
        }
        Ok(TraceState { members })
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key` and moves it to the front, as an updated member must be.
    /// The caller validates key and value (see [`is_valid_key`]).
    pub fn upsert_front(&mut self, key: &str, value: &str) {
        self.members.retain(|(k, _)| k != key);
        self.members.insert(0, (key.to_string(), value.to_string()));
    }

    /// Keeps at most 32 members and `max_len` combined characters, dropping
    /// members over 128 characters first, then from the right. The front
    /// member (this hop's own) is never dropped.
    pub fn truncate(&mut self, max_len: usize) {
        while self.members.len() > MAX_TRACESTATE_MEMBERS {
            self.members.pop();
        }
        while self.header_len() > max_len && self.members.len() > 1 {
            let long = self
                .members
                .iter()
                .enumerate()
                .skip(1)
                .rev()
                .find(|(_, (k, v))| k.len() + 1 + v.len() > LONG_MEMBER)
                .map(|(i, _)| i);
            match long {
                Some(i) => {
                    self.members.remove(i);
                }
                None => {
                    self.members.pop();
                }
            }
        }
    }

    pub fn header_len(&self) -> usize {
        let members: usize = self
            .members
            .iter()
            .map(|(k, v)| k.len() + 1 + v.len())
            .sum();
        members + self.members.len().saturating_sub(1)
    }

    pub fn to_header(&self) -> String {
        let mut out = String::with_capacity(self.header_len());
        for (i, (k, v)) in self.members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        out
    }
}

fn is_key_char(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'*' | b'/' | b'@')
}

/// A Level 2 key: `( lcalpha / DIGIT ) 0*255 ( keychar )`, where `keychar`
/// adds `_ - * / @` to lowercase letters and digits. Multi-tenant keys
/// (`tenant@system`) are the common use of `@`; Level 2 no longer limits the
/// tenant and system parts separately, only the whole key to 256 characters.
pub fn is_valid_key(key: &str) -> bool {
    match key.as_bytes() {
        [first, rest @ ..] => {
            rest.len() < 256
                && (first.is_ascii_lowercase() || first.is_ascii_digit())
                && rest.iter().all(|&c| is_key_char(c))
        }
        [] => false,
    }
}

/// 1 to 256 printable characters without `,` or `=`, not ending in a space.
pub fn is_valid_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    let printable = |c: &u8| (0x20..=0x7e).contains(c) && *c != b',' && *c != b'=';
    (1..=256).contains(&bytes.len())
        && bytes.iter().all(printable)
        && bytes.last().is_some_and(|&c| c != b' ')
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn parse_hex_byte(pair: &[u8]) -> Option<u8> {
    match pair {
        [hi, lo] => Some(hex_value(*hi)? << 4 | hex_value(*lo)?),
        _ => None,
    }
}

fn decode_hex(src: &[u8], dst: &mut [u8]) -> Option<()> {
    if src.len() != dst.len() * 2 {
        return None;
    }
    for (out, pair) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *out = parse_hex_byte(pair)?;
    }
    Some(())
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

#[cfg(test)]
mod tests;
