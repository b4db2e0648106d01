//! The per-request context: the policies' filters, called in chain order.
//! A policy that answers the request itself (401, 429) ends the chain, as
//! a local reply ends Envoy's filter chain.

use meshguard_auth::AuthFilter;
use meshguard_flags::FlagsFilter;
use meshguard_plugin_kit::request_headers::RequestHeaders;
use meshguard_ratelimit::RateLimitFilter;
use meshguard_trace::TraceFilter;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

pub struct ChainFilter {
    pub(crate) trace: Option<TraceFilter>,
    pub(crate) auth: Option<AuthFilter>,
    pub(crate) ratelimit: Option<RateLimitFilter>,
    pub(crate) flags: Option<FlagsFilter>,
    /// How many stages (in chain order, configured or not) saw the request.
    pub(crate) ran: usize,
}

impl ChainFilter {
    /// The stages that saw the request, in chain order.
    fn ran(&mut self) -> impl DoubleEndedIterator<Item = &mut dyn HttpContext> + '_ {
        let stages: [Option<&mut dyn HttpContext>; 4] = [
            self.trace.as_mut().map(|f| f as &mut dyn HttpContext),
            self.auth.as_mut().map(|f| f as &mut dyn HttpContext),
            self.ratelimit.as_mut().map(|f| f as &mut dyn HttpContext),
            self.flags.as_mut().map(|f| f as &mut dyn HttpContext),
        ];
        stages.into_iter().take(self.ran).flatten()
    }

    /// Calls `f` on every stage that saw the request, in the order Envoy
    /// runs encoder filters (reverse), stopping at the first that pauses.
    fn on_response(&mut self, f: impl Fn(&mut dyn HttpContext) -> Action) -> Action {
        for stage in self.ran().rev() {
            if f(stage) == Action::Pause {
                return Action::Pause;
            }
        }
        Action::Continue
    }
}

impl Context for ChainFilter {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        // Only a stage waiting on this call acts on it (the rate limiter
        // resumes or refuses the request itself).
        for stage in self.ran() {
            stage.on_http_call_response(token, headers, body, trailers);
        }
    }
}

// No stage reads bodies or trailers: those callbacks are left to the SDK,
// and scripts/build removes their exports (see Cargo.toml).
impl HttpContext for ChainFilter {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        // One read of the header map for every stage; each sees the changes
        // of the stages before it (the rate limiter reads auth's identity).
        let mut headers = RequestHeaders::fetch();
        self.ran = 1;
        if let Some(f) = &mut self.trace {
            if f.on_request_headers(&mut headers) == Action::Pause {
                return Action::Pause;
            }
        }
        self.ran = 2;
        if let Some(f) = &mut self.auth {
            if f.on_request_headers(&mut headers) == Action::Pause {
                return Action::Pause;
            }
        }
        self.ran = 3;
        let mut waiting = false;
        if let Some(f) = &mut self.ratelimit {
            if f.on_request_headers(&headers) == Action::Pause {
                if !f.is_waiting() {
                    return Action::Pause;
                }
                // Waiting on meshguard-state: the later stages run now, and
                // the rate limiter resumes the request when it decides.
                waiting = true;
            }
        }
        self.ran = 4;
        // The last stage: it takes the view (see `into_last_writes`).
        if let Some(f) = &mut self.flags {
            if f.on_request_headers(headers) == Action::Pause {
                return Action::Pause;
            }
        }
        if waiting {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_response_headers(&mut self, headers: usize, end: bool) -> Action {
        self.on_response(|s| s.on_http_response_headers(headers, end))
    }

    fn on_log(&mut self) {
        for stage in self.ran() {
            stage.on_log();
        }
    }
}
