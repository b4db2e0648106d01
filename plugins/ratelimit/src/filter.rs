//! The per-request context: identifies the request, has its mode decide it
//! ([`crate::local`], [`crate::exact`] or [`crate::hybrid`]), refuses it with
//! 429 or lets it through, then adds the rate-limit headers and settles the
//! real cost on the way back. Exempt paths (health probes) pass untouched.

use crate::config::{Mode, MAX_COST};
use crate::exact;
use crate::hybrid;
use crate::identity::{identify, Identity};
use crate::leases::Spend;
use crate::reply::{self, LocalReply};
use crate::runtime::{Charge, Runtime, Tier};
use meshguard_plugin_kit::host;
use meshguard_plugin_kit::request_headers::RequestHeaders;
use meshguard_plugin_kit::state_client::CallError;
use meshguard_policy::ratelimit::BucketState;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};
use std::rc::Rc;

/// Who decided a request that passed: where its real cost is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Local,
    Service,
    Lease,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Check,
    Lease,
}

struct Passed {
    source: Source,
    buckets: Vec<BucketState>,
    /// Tokens this request was charged (0 when it passed only in shadow mode).
    charged: u64,
}

pub struct RateLimitFilter {
    runtime: Option<Rc<Runtime>>,
    identity: Option<Rc<Identity>>,
    cost: u64,
    call: Option<(u32, Call)>,
    passed: Option<Passed>,
}

fn now_us() -> u64 {
    host::now_unix_nanos() / 1_000
}

fn send(reply: LocalReply) {
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(n, v)| (*n, v.as_str()))
        .collect();
    let _ = hostcalls::send_http_response(reply.status, headers, Some(&reply.body));
}

impl RateLimitFilter {
    pub fn new(runtime: Option<Rc<Runtime>>) -> RateLimitFilter {
        RateLimitFilter {
            runtime,
            identity: None,
            cost: 1,
            call: None,
            passed: None,
        }
    }

    /// Paused on a call to meshguard-state: the request resumes (or is
    /// refused) when the answer comes.
    pub fn is_waiting(&self) -> bool {
        self.call.is_some()
    }

    /// Lets the request through or refuses it; `limited` is what the buckets said.
    fn conclude(
        &mut self,
        rt: &Runtime,
        tier: &Tier,
        source: Source,
        buckets: Vec<BucketState>,
        limited: bool,
    ) -> Action {
        if limited && !rt.config.shadow {
            tier.stats.denied.inc();
            let name = self.identity.as_ref().map_or("", |i| i.tier.as_str());
            send(reply::too_many_requests(
                &buckets,
                name,
                self.cost,
                rt.config.ratelimit_headers.then_some(&tier.policy),
            ));
            return Action::Pause;
        }
        if limited {
            tier.stats.shadow_denied.inc();
        } else {
            tier.stats.allowed.inc();
        }
        self.passed = Some(Passed {
            source,
            buckets,
            charged: if limited { 0 } else { self.cost },
        });
        Action::Continue
    }

    /// Decides on the local buckets at `now` (µs).
    fn decide_locally(&mut self, rt: &Runtime, tier: &Tier, key: &str, now: u64) -> Action {
        let verdict = rt
            .local
            .check(key, &tier.buckets, rt.global.as_ref(), now, self.cost);
        rt.stats.keys_evicted.add(verdict.evicted as u64);
        self.conclude(rt, tier, Source::Local, verdict.buckets, !verdict.allowed)
    }

    /// meshguard-state could not decide: the local buckets do, or with
    /// `fail_closed` the request is refused with 503.
    fn fall_back(&mut self, rt: &Runtime, tier: &Tier, key: &str, now: u64) -> Action {
        if rt.config.fail_closed {
            tier.stats.unavailable.inc();
            send(reply::unavailable(
                rt.config.state.backoff_ms.div_ceil(1_000),
            ));
            return Action::Pause;
        }
        tier.stats.fallbacks.inc();
        self.decide_locally(rt, tier, key, now)
    }

    /// Asks meshguard-state about a request that arrived at `now` (µs).
    fn ask(
        &mut self,
        rt: &Runtime,
        tier: &Tier,
        identity: &Identity,
        call: Call,
        now: u64,
    ) -> Action {
        let (path, body) = match call {
            Call::Check => exact::check_call(identity, self.cost, rt.config.shadow),
            Call::Lease => hybrid::lease_call(rt, tier, identity, self.cost),
        };
        let Ok(body) = body else {
            return self.fall_back(rt, tier, &identity.key, now);
        };
        let dispatched = rt
            .client
            .borrow_mut()
            .dispatch("POST", path, Some(&body), &[]);
        match dispatched {
            Ok(token) => {
                self.call = Some((token, call));
                Action::Pause
            }
            Err(CallError::BackingOff) => self.fall_back(rt, tier, &identity.key, now),
            Err(CallError::Dispatch) => {
                tier.stats.backend_failures.inc();
                self.fall_back(rt, tier, &identity.key, now)
            }
        }
    }

    /// The service's answer to this request's call, decided.
    fn answered(
        &mut self,
        rt: &Runtime,
        tier: &Tier,
        identity: &Identity,
        call: Call,
        body_size: usize,
    ) -> Action {
        let was_backing_off = rt.client.borrow().is_backing_off();
        let outcome = rt.client.borrow_mut().outcome(body_size);
        if !was_backing_off && rt.client.borrow().is_backing_off() {
            log::warn!(
                "meshguard-state failing (last status {:?}): deciding locally for {} ms",
                outcome.status,
                rt.config.state.backoff_ms
            );
        }
        let failed = |this: &mut Self| {
            tier.stats.backend_failures.inc();
            this.fall_back(rt, tier, &identity.key, now_us())
        };
        if !outcome.is_success() {
            return failed(self);
        }
        match call {
            Call::Check => match exact::decided(&outcome.body) {
                Some((buckets, limited)) => {
                    self.conclude(rt, tier, Source::Service, buckets, limited)
                }
                None => failed(self),
            },
            Call::Lease => {
                let now_ns = host::now_unix_nanos();
                match hybrid::leased(rt, &identity.key, &outcome.body, self.cost, now_ns) {
                    Some((buckets, passed)) => {
                        self.conclude(rt, tier, Source::Lease, buckets, !passed)
                    }
                    None => failed(self),
                }
            }
        }
    }

    /// Settles the difference between the response's real cost and what was charged.
    fn settle_cost(&self, rt: &Runtime, header: &str, passed: &Passed) {
        let Some(raw) = host::response_header(header) else {
            return;
        };
        host::remove_response_header(header);
        let real = std::str::from_utf8(&raw)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|c| *c <= MAX_COST);
        let (Some(real), Some(identity)) = (real, &self.identity) else {
            rt.stats.cost_header_invalid.inc();
            return;
        };
        if passed.charged == 0 || real == passed.charged {
            return;
        }
        let Ok(delta) = i64::try_from(real).map(|r| r - passed.charged as i64) else {
            return;
        };
        let Some(tier) = rt.tier(&identity.tier) else {
            return;
        };
        let charge = |delta: i64| {
            rt.charges.borrow_mut().push(Charge {
                key: identity.key.clone(),
                tier: identity.tier.clone(),
                delta,
            })
        };
        match passed.source {
            Source::Local => {
                let (key, global, now) = (&identity.key, rt.global.as_ref(), now_us());
                rt.local.charge(key, &tier.buckets, global, now, delta);
            }
            Source::Service => charge(delta),
            Source::Lease => {
                if !rt.leases.borrow_mut().adjust(&identity.key, delta) {
                    // The lease is gone: settle with the service's buckets.
                    charge(delta);
                }
            }
        }
        if delta > 0 {
            rt.stats.cost_charged.add(delta.unsigned_abs());
        } else {
            rt.stats.cost_refunded.add(delta.unsigned_abs());
        }
    }
}

impl Context for RateLimitFilter {
    fn on_http_call_response(&mut self, token: u32, _: usize, body_size: usize, _: usize) {
        let Some((expected, call)) = self.call else {
            return;
        };
        if token != expected {
            return;
        }
        self.call = None;
        let (Some(rt), Some(identity)) = (self.runtime.clone(), self.identity.clone()) else {
            let _ = hostcalls::resume_http_request();
            return;
        };
        let Some(tier) = rt.tier(&identity.tier) else {
            let _ = hostcalls::resume_http_request();
            return;
        };
        if self.answered(&rt, tier, &identity, call, body_size) == Action::Continue {
            let _ = hostcalls::resume_http_request();
        }
    }
}

impl RateLimitFilter {
    /// Decides the request from `headers` (shared with the other policies
    /// in the single-module build, where auth has set the identity).
    pub fn on_request_headers(&mut self, headers: &RequestHeaders) -> Action {
        let Some(rt) = self.runtime.clone() else {
            return Action::Continue;
        };
        let path = headers.text(":path").unwrap_or("/");
        if rt.config.is_exempt(path) {
            // Never limited, never charged, no rate-limit headers.
            return Action::Continue;
        }
        self.cost = rt.costs.of(path);
        let peer = || host::property(b"source\0address").and_then(|p| String::from_utf8(p).ok());
        let identity = Rc::new(identify(&rt.config, headers, peer));
        self.identity = Some(Rc::clone(&identity));
        let arrived_us = headers.arrival_nanos() / 1_000;
        let Some(tier) = rt.tier(&identity.tier) else {
            return Action::Continue;
        };
        match rt.config.mode {
            Mode::Local => self.decide_locally(&rt, tier, &identity.key, arrived_us),
            Mode::Exact => self.ask(&rt, tier, &identity, Call::Check, arrived_us),
            Mode::Hybrid => {
                match hybrid::spend(&rt, &identity, self.cost, headers.arrival_nanos()) {
                    Spend::Spent(buckets) => {
                        self.conclude(&rt, tier, Source::Lease, buckets, false)
                    }
                    Spend::Refused(buckets) => {
                        self.conclude(&rt, tier, Source::Lease, buckets, true)
                    }
                    Spend::NeedLease => self.ask(&rt, tier, &identity, Call::Lease, arrived_us),
                }
            }
        }
    }
}

impl HttpContext for RateLimitFilter {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let headers = match &self.runtime {
            Some(rt) if !rt.config.reads_request_headers() => {
                // The peer-keyed limiter reads no header but the path, and
                // that only to find exempt requests.
                if !rt.config.exempt_paths.is_empty() {
                    let path = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, ":path")
                        .ok()
                        .flatten();
                    if path.is_some_and(|p| rt.config.is_exempt(&p)) {
                        return Action::Continue;
                    }
                }
                RequestHeaders::default()
            }
            _ => RequestHeaders::fetch(),
        };
        self.on_request_headers(&headers)
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        let (Some(rt), Some(passed)) = (self.runtime.clone(), self.passed.take()) else {
            return Action::Continue;
        };
        if let Some(header) = &rt.config.response_cost_header {
            self.settle_cost(&rt, header, &passed);
        }
        if rt.config.ratelimit_headers && !passed.buckets.is_empty() {
            let tier = self.identity.as_ref().and_then(|i| rt.tier(&i.tier));
            if let Some(tier) = tier {
                for (name, value) in reply::ratelimit_headers(&tier.policy, &passed.buckets) {
                    host::add_response_header(name, &value);
                }
            }
        }
        Action::Continue
    }
}
