//! W3C Trace Context Level 2: parsing, validation and propagation of
//! `traceparent` (with the `random` flag) and `tracestate` (the Level 2 key
//! grammar, duplicated keys tolerated).

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

/// Where this hop's trace context came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A valid incoming traceparent was continued.
    Continued,
    /// No traceparent came in; a new trace was started.
    Started,
    /// An invalid traceparent came in and was replaced by a new trace.
    Rejected(TraceParentError),
}

/// What this hop sends on: its own traceparent (the parent-id is this hop's
/// span id) and the tracestate to propagate, if any.
#[derive(Clone, Debug, PartialEq)]
pub struct Propagation {
    pub traceparent: TraceParent,
    /// The caller's span id when the trace was continued.
    pub caller_span: Option<SpanId>,
    pub tracestate: Option<TraceState>,
    pub origin: Origin,
    /// The incoming tracestate was present but invalid and was dropped.
    pub tracestate_dropped: bool,
}

/// Fresh random ids for this hop (from WASI `random_get` in the plugin).
#[derive(Clone, Copy, Debug)]
pub struct FreshIds {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

impl FreshIds {
    /// Splits 24 random bytes into a trace-id and a span-id, never all zero.
    pub fn from_random(random: [u8; 24]) -> FreshIds {
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        trace_id.copy_from_slice(&random[..16]);
        span_id.copy_from_slice(&random[16..]);
        if trace_id == [0; 16] {
            trace_id[15] = 1;
        }
        if span_id == [0; 8] {
            span_id[7] = 1;
        }
        FreshIds { trace_id, span_id }
    }
}

/// How this hop treats the context: sampling and its own tracestate member.
pub struct PropagationPolicy<'a> {
    pub sampler: crate::sampling::Sampler,
    pub mode: crate::sampling::SamplingMode,
    /// A validated tracestate key this hop writes (value: its span id).
    pub own_key: Option<&'a str>,
}

/// Continues a valid incoming context or starts a new trace.
pub fn propagate(
    traceparents: &[&str],
    tracestates: &[&str],
    policy: &PropagationPolicy,
    fresh: FreshIds,
) -> Propagation {
    let span_id = SpanId(fresh.span_id);
    let incoming = TraceParent::parse_all(traceparents.iter().copied());
    let (parent, origin) = match incoming {
        Some(Ok(parent)) => (Some(parent), Origin::Continued),
        Some(Err(error)) => (None, Origin::Rejected(error)),
        None => (None, Origin::Started),
    };
    let trace_id = parent.map_or(TraceId(fresh.trace_id), |p| p.trace_id);
    let sampled = crate::sampling::decide(&policy.sampler, policy.mode, &trace_id, parent.as_ref());
    let random = parent.map_or(FLAG_RANDOM, |p| p.flags & FLAG_RANDOM);
    let traceparent = TraceParent {
        trace_id,
        parent_id: span_id,
        flags: random | if sampled { FLAG_SAMPLED } else { 0 },
    };

    let mut tracestate_dropped = false;
    let mut state = match parent {
        Some(_) if !tracestates.is_empty() => {
            match TraceState::parse(tracestates.iter().copied()) {
                Ok(state) => Some(state),
                Err(_) => {
                    tracestate_dropped = true;
                    None
                }
            }
        }
        _ => None,
    };
    if let Some(key) = policy.own_key {
        let incoming_len = state.as_ref().map_or(0, TraceState::header_len);
        let state = state.get_or_insert_with(TraceState::default);
        state.upsert_front(key, &span_id.to_hex());
        state.truncate(incoming_len.max(MIN_PROPAGATED_TRACESTATE));
    }
    Propagation {
        traceparent,
        caller_span: parent.map(|p| p.parent_id),
        tracestate: state.filter(|s| !s.is_empty()),
        origin,
        tracestate_dropped,
    }
}

#[cfg(test)]
mod tests;
