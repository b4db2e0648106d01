//! One hop of W3C Trace Context: continue a valid incoming context (or start
//! a trace), decide sampling, and put this hop's member at the front of
//! `tracestate`. Parsing and formatting live in [`crate::trace_context`],
//! the sampling decision in [`crate::sampling`].

use crate::sampling::{decide, Sampler, SamplingMode};
use crate::trace_context::{
    SpanId, TraceId, TraceParent, TraceParentError, TraceState, FLAG_RANDOM, FLAG_SAMPLED,
    MIN_PROPAGATED_TRACESTATE,
};

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
    pub sampler: Sampler,
    pub mode: SamplingMode,
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
    let sampled = decide(&policy.sampler, policy.mode, &trace_id, parent.as_ref());
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
