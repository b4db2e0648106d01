//! The per-request context: rewrites trace headers on the way in, adds
//! `traceresponse` on the way out, and records the span when it ends.

use crate::ids::{hex, traceparent_header, RandomPool};
use crate::runtime::Runtime;
use crate::spans::SpanRecord;
use meshguard_plugin_kit::host;
use meshguard_plugin_kit::request_headers::RequestHeaders;
use meshguard_policy::propagation::{propagate, Origin, PropagationPolicy};
use meshguard_policy::trace_context::{SpanId, TraceParent};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;

/// Stands in for a header value that is not UTF-8: no parser accepts it.
const NOT_TEXT: &str = "\u{0}";

pub struct TraceFilter {
    runtime: Option<Rc<Runtime>>,
    traceparent: Option<TraceParent>,
    open_span: Option<OpenSpan>,
}

struct OpenSpan {
    parent: Option<SpanId>,
    start_unix_nanos: u64,
    method: String,
    path: String,
}

impl TraceFilter {
    pub fn new(runtime: Option<Rc<Runtime>>) -> TraceFilter {
        TraceFilter {
            runtime,
            traceparent: None,
            open_span: None,
        }
    }
}

impl Context for TraceFilter {}

impl TraceFilter {
    /// Rewrites the trace headers in `headers` (shared with the other
    /// policies in the single-module build).
    pub fn on_request_headers(&mut self, headers: &mut RequestHeaders) -> Action {
        let Some(runtime) = self.runtime.clone() else {
            return Action::Continue;
        };
        let config = &runtime.config;
        let mut traceparents = Vec::new();
        let mut tracestates = Vec::new();
        let (mut method, mut path, mut has_request_id) = ("", "", false);
        let text = |value| std::str::from_utf8(value).unwrap_or(NOT_TEXT);
        for (name, value) in headers.iter() {
            match name {
                "traceparent" => traceparents.push(text(value)),
                "tracestate" => tracestates.push(text(value)),
                ":method" => method = text(value),
                ":path" => path = text(value),
                other => {
                    has_request_id |= config.request_id_header.as_deref() == Some(other);
                }
            }
        }

        let fresh = match runtime.random.try_borrow_mut() {
            Ok(mut pool) => pool.fresh_ids(),
            Err(_) => RandomPool::default().fresh_ids(),
        };
        let policy = PropagationPolicy {
            sampler: runtime.sampler,
            mode: runtime.mode,
            own_key: config.tracestate_key.as_deref(),
        };
        let out = propagate(&traceparents, &tracestates, &policy, fresh);

        let stats = &runtime.stats;
        match out.origin {
            Origin::Continued => stats.traces_continued.inc(),
            Origin::Started => stats.traces_started.inc(),
            Origin::Rejected(_) => {
                stats.contexts_rejected.inc();
                stats.traces_started.inc();
            }
        }
        if out.tracestate_dropped {
            stats.tracestate_dropped.inc();
        }

        if out.traceparent.is_sampled() && config.export.is_some() {
            let path = path.split('?').next().unwrap_or_default();
            self.open_span = Some(OpenSpan {
                parent: out.caller_span,
                start_unix_nanos: headers.arrival_nanos(),
                method: method.to_string(),
                path: path.to_string(),
            });
        }
        let had_tracestate = !tracestates.is_empty();

        headers.set("traceparent", Some(&traceparent_header(&out.traceparent)));
        match &out.tracestate {
            Some(state) => headers.set("tracestate", Some(&state.to_header())),
            None if had_tracestate => headers.set("tracestate", None),
            None => {}
        }
        if let (Some(name), false) = (&config.request_id_header, has_request_id) {
            headers.set(name, Some(&hex(&out.traceparent.trace_id.0)));
        }
        self.traceparent = Some(out.traceparent);
        Action::Continue
    }
}

impl HttpContext for TraceFilter {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        self.on_request_headers(&mut RequestHeaders::fetch())
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        let wants_response = self
            .runtime
            .as_ref()
            .is_some_and(|r| r.config.trace_response);
        if let (true, Some(tp)) = (wants_response, &self.traceparent) {
            host::add_response_header("traceresponse", &tp.to_header());
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let (Some(runtime), Some(open), Some(tp)) =
            (&self.runtime, self.open_span.take(), self.traceparent)
        else {
            return;
        };
        let span = SpanRecord {
            trace_id: tp.trace_id,
            span_id: tp.parent_id,
            parent_span_id: open.parent,
            start_unix_nanos: open.start_unix_nanos,
            end_unix_nanos: host::now_unix_nanos(),
            method: open.method,
            path: open.path,
            status: host::int_property(b"response\0code"),
            upstream_cluster: host::property(b"xds\0cluster_name")
                .and_then(|c| String::from_utf8(c).ok()),
        };
        let kept = runtime
            .spans
            .try_borrow_mut()
            .is_ok_and(|mut spans| spans.push(span));
        if !kept {
            runtime.stats.spans_dropped.inc();
        }
    }
}
