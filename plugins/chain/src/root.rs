//! The per-worker root context: the four policies' roots, configured from
//! their sections, sharing this context's tick and call responses.

use crate::config::{prefixed, ChainConfig};
use crate::filter::ChainFilter;
use meshguard_auth::AuthRoot;
use meshguard_flags::FlagsRoot;
use meshguard_plugin_kit::config::ConfigError;
use meshguard_plugin_kit::host;
use meshguard_plugin_kit::policy::{root_tick_period, Policy, FIRST_TICK};
use meshguard_plugin_kit::stats;
use meshguard_ratelimit::RateLimitRoot;
use meshguard_trace::TraceRoot;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;
use std::time::Duration;

#[derive(Default)]
pub struct ChainRoot {
    trace: Option<TraceRoot>,
    auth: Option<AuthRoot>,
    ratelimit: Option<RateLimitRoot>,
    flags: Option<FlagsRoot>,
    /// The root's tick period (see `root_tick_period`), set after the first (short) tick.
    tick_period: Duration,
    first_tick_pending: bool,
}

impl ChainRoot {
    fn configure(&mut self, config: ChainConfig) -> Result<(), ConfigError> {
        *self = ChainRoot::default();
        if let Some(c) = config.trace {
            let mut root = TraceRoot::default();
            root.configure(c).map_err(|e| prefixed("trace", e))?;
            self.trace = Some(root);
        }
        if let Some(c) = config.auth {
            let mut root = AuthRoot::default();
            root.configure(c).map_err(|e| prefixed("auth", e))?;
            self.auth = Some(root);
        }
        if let Some(c) = config.ratelimit {
            let mut root = RateLimitRoot::default();
            root.configure(c).map_err(|e| prefixed("ratelimit", e))?;
            self.ratelimit = Some(root);
        }
        if let Some(c) = config.flags {
            let mut root = FlagsRoot::default();
            root.configure(c).map_err(|e| prefixed("flags", e))?;
            self.flags = Some(root);
        }
        self.tick_period = root_tick_period(
            [
                self.trace.as_ref().and_then(TraceRoot::tick_period),
                self.auth.as_ref().and_then(AuthRoot::tick_period),
                self.ratelimit.as_ref().and_then(RateLimitRoot::tick_period),
                self.flags.as_ref().and_then(FlagsRoot::tick_period),
            ]
            .into_iter()
            .flatten(),
        );
        Ok(())
    }
}

impl Context for ChainRoot {
    // Each policy root ignores the tokens it did not issue.
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        if let Some(root) = &mut self.trace {
            root.on_http_call_response(token, headers, body, trailers);
        }
        if let Some(root) = &mut self.auth {
            root.on_http_call_response(token, headers, body, trailers);
        }
        if let Some(root) = &mut self.ratelimit {
            root.on_http_call_response(token, headers, body, trailers);
        }
        if let Some(root) = &mut self.flags {
            root.on_http_call_response(token, headers, body, trailers);
        }
    }
}

impl RootContext for ChainRoot {
    fn on_configure(&mut self, _: usize) -> bool {
        let Some(config) = host::plugin_configuration::<ChainConfig>() else {
            return false;
        };
        if let Err(err) = self.configure(config) {
            log::error!("{err}");
            return false;
        }
        // Soon, as the auth plugin's own first tick: it refuses tokens
        // until its first revocation sync.
        let _ = hostcalls::set_tick_period(FIRST_TICK);
        self.first_tick_pending = true;
        true
    }

    fn on_tick(&mut self) {
        if std::mem::take(&mut self.first_tick_pending) {
            let _ = hostcalls::set_tick_period(self.tick_period);
        }
        stats::flush_counters();
        if let Some(root) = &mut self.trace {
            root.tick();
        }
        if let Some(root) = &mut self.auth {
            root.tick();
        }
        if let Some(root) = &mut self.ratelimit {
            root.tick();
        }
        if let Some(root) = &mut self.flags {
            root.tick();
        }
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(ChainFilter {
            trace: self.trace.as_ref().map(TraceRoot::filter),
            auth: self.auth.as_ref().map(AuthRoot::filter),
            ratelimit: self.ratelimit.as_ref().map(RateLimitRoot::filter),
            flags: self.flags.as_ref().map(FlagsRoot::filter),
            ran: 0,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
