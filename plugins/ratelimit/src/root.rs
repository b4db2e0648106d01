//! The per-worker root context: builds the [`Runtime`] from the
//! configuration, and on its tick gives unspent shared-bucket batches back,
//! tops up busy hybrid leases, reports retired ones and sends the
//! after-response charges.

use crate::config::{Mode, RateLimitConfig};
use crate::exact::{self, CHARGE_INTERVAL_MS};
use crate::filter::RateLimitFilter;
use crate::hybrid;
use crate::leases::Retired;
use crate::runtime::Runtime;
use meshguard_api::ratelimit::{LEASE_PATH, USAGE_PATH};
use meshguard_plugin_kit::config::ConfigError;
use meshguard_plugin_kit::host;
use meshguard_plugin_kit::policy::Policy;
use meshguard_plugin_kit::tick_gate::TickGate;
use proxy_wasm::traits::Context;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

/// How often batches taken from the shared buckets are checked for expiry
/// (the root ticks at least every 100 ms).
const RESERVE_CHECK: Duration = Duration::from_millis(250);

/// A call the root made, waiting for its answer.
enum RootCall {
    Report(Box<Retired>),
    TopUp(String),
    Charge,
}

#[derive(Default)]
pub struct RateLimitRoot {
    runtime: Option<Rc<Runtime>>,
    calls: HashMap<u32, RootCall>,
    topping_up: HashSet<String>,
    tick_gate: TickGate,
    reserve_gate: TickGate,
}

impl RateLimitRoot {
    fn dispatch(
        &mut self,
        runtime: &Runtime,
        path: &str,
        body: Vec<u8>,
        call: RootCall,
    ) -> Result<(), RootCall> {
        let token = runtime
            .client
            .borrow_mut()
            .dispatch("POST", path, Some(&body), &[]);
        match token {
            Ok(token) => {
                self.calls.insert(token, call);
                Ok(())
            }
            Err(_) => Err(call),
        }
    }

    fn report_retired(&mut self, runtime: &Runtime, now_ns: u64) {
        for (retired, body) in hybrid::usage_reports(runtime) {
            let call = RootCall::Report(Box::new(retired));
            if let Err(RootCall::Report(r)) = self.dispatch(runtime, USAGE_PATH, body, call) {
                hybrid::unsent(runtime, *r, now_ns);
            }
        }
    }

    fn top_up(&mut self, runtime: &Runtime, now_ns: u64) {
        for (key, body) in hybrid::top_ups(runtime, now_ns, &self.topping_up) {
            let call = RootCall::TopUp(key.clone());
            if self.dispatch(runtime, LEASE_PATH, body, call).is_ok() {
                self.topping_up.insert(key);
            }
        }
    }

    /// Settles the after-response cost differences with the service.
    fn send_charges(&mut self, runtime: &Runtime) {
        let charges: Vec<_> = runtime.charges.borrow_mut().drain(..).collect();
        for call in exact::charge_calls(charges) {
            let sent = call.is_ok_and(|(path, body)| {
                self.dispatch(runtime, path, body, RootCall::Charge).is_ok()
            });
            if !sent {
                runtime.stats.charges_failed.inc();
            }
        }
    }
}

impl Context for RateLimitRoot {
    fn on_http_call_response(&mut self, token: u32, _: usize, body_size: usize, _: usize) {
        let Some(call) = self.calls.remove(&token) else {
            return;
        };
        let Some(runtime) = self.runtime.clone() else {
            return;
        };
        let outcome = runtime.client.borrow_mut().outcome(body_size);
        let ok = outcome.is_success();
        let now_ns = host::now_unix_nanos();
        match call {
            RootCall::Report(r) => hybrid::reported(&runtime, *r, ok, &outcome.body, now_ns),
            RootCall::TopUp(key) => {
                self.topping_up.remove(&key);
                hybrid::topped_up(&runtime, &key, ok, &outcome.body, now_ns);
            }
            RootCall::Charge => {
                if !ok {
                    runtime.stats.charges_failed.inc();
                }
            }
        }
    }
}

impl Policy for RateLimitRoot {
    type Config = RateLimitConfig;
    type Filter = RateLimitFilter;

    /// Applies an already validated configuration; refuses one whose limits do not compile.
    fn configure(&mut self, config: RateLimitConfig) -> Result<(), ConfigError> {
        let runtime = Runtime::new(config)
            .ok_or_else(|| ConfigError::new("tiers", "a limit does not compile"))?;
        self.runtime = Some(Rc::new(runtime));
        Ok(())
    }

    /// How often `tick` has work to do; `None`: never.
    fn tick_period(&self) -> Option<Duration> {
        let config = &self.runtime.as_ref()?.config;
        let ms = match config.mode {
            Mode::Hybrid => config.hybrid.refresh_ms,
            Mode::Exact if config.response_cost_header.is_some() => CHARGE_INTERVAL_MS,
            _ => return None,
        };
        Some(Duration::from_millis(ms))
    }

    /// Tops up and settles leases and sends charges when due; may be called more often.
    fn tick(&mut self) {
        let Some(runtime) = self.runtime.clone() else {
            return;
        };
        let now_ns = host::now_unix_nanos();
        if runtime.local.takes_ahead() && self.reserve_gate.due(RESERVE_CHECK, now_ns) {
            let returned = runtime.local.return_expired(now_ns / 1_000);
            runtime.stats.reserve_tokens_returned.add(returned);
        }
        let Some(period) = self.tick_period() else {
            return;
        };
        if !self.tick_gate.due(period, now_ns) {
            return;
        }
        if runtime.config.mode == Mode::Hybrid {
            self.top_up(&runtime, now_ns);
            self.report_retired(&runtime, now_ns);
        }
        self.send_charges(&runtime);
    }

    /// A per-request context of this worker.
    fn filter(&self) -> RateLimitFilter {
        RateLimitFilter::new(self.runtime.clone())
    }
}
