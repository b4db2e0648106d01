//! The per-request context: removes client-sent flag headers, evaluates
//! every active flag, sets the result headers, and records per-variant
//! stats (exposures now, upstream response time when the response comes).

use crate::metrics::Series;
use crate::runtime::Runtime;
use meshguard_plugin_kit::host;
use meshguard_plugin_kit::name_filter::fingerprint;
use meshguard_plugin_kit::request_headers::RequestHeaders;
use meshguard_policy::flags::Subject;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;

pub struct FlagsFilter {
    runtime: Option<Rc<Runtime>>,
    /// The variants this request was exposed to, for the response-time histogram.
    exposed: Vec<Series>,
    started_nanos: u64,
}

impl FlagsFilter {
    pub fn new(runtime: Option<Rc<Runtime>>) -> FlagsFilter {
        FlagsFilter {
            runtime,
            exposed: Vec::new(),
            started_nanos: 0,
        }
    }
}

impl Context for FlagsFilter {}

/// A comma-separated header value's entries (`x-auth-groups`, `x-auth-consents`).
fn split_list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect()
}

impl FlagsFilter {
    /// Evaluates every flag for the request in `headers` (shared with the
    /// other policies in the single-module build) and sets the result headers.
    pub fn on_request_headers(&mut self, headers: RequestHeaders) -> Action {
        let Some(runtime) = self.runtime.clone() else {
            return Action::Continue;
        };
        let Some(active) = runtime.current() else {
            return Action::Continue;
        };
        let config = &runtime.config;
        fn text(value: &[u8]) -> Option<&str> {
            std::str::from_utf8(value).ok()
        }

        let (mut key, mut tier, mut groups, mut consents, mut path) = (None, None, None, None, "");
        let mut read: Vec<(&str, &str)> = Vec::new();
        let mut spoofed: Vec<String> = Vec::new();
        for (name, value) in headers.iter() {
            let prefixed = runtime.strip_prefixes.any_starts(name);
            if !prefixed
                && !active
                    .names_of_interest
                    .may_contain(fingerprint(name.as_bytes()))
            {
                continue;
            }
            if name == config.targeting_key_header {
                key = text(value).filter(|v| !v.is_empty());
            } else if name == config.tier_header {
                tier = text(value);
            } else if config.groups_header.as_deref() == Some(name) {
                groups = text(value);
            } else if config.consents_header.as_deref() == Some(name) {
                consents = text(value);
            } else if name == ":path" {
                path = text(value).unwrap_or_default();
            }
            if active.headers_read.iter().any(|h| h == name) {
                if let Some(value) = text(value) {
                    read.push((name, value));
                }
            }
            let ours = prefixed
                || config.summary_header.as_deref() == Some(name)
                || active.unprefixed_headers.iter().any(|h| h == name);
            if ours && !spoofed.iter().any(|s| s == name) {
                spoofed.push(name.to_owned());
            }
        }
        let groups = groups.map(split_list).unwrap_or_default();
        let consents = consents.map(split_list).unwrap_or_default();
        let subject = Subject {
            key,
            tier,
            groups: &groups,
            consents: &consents,
            path: path.split('?').next().unwrap_or_default(),
            headers: &read,
        };

        let stats = &runtime.stats;
        stats.requests.inc();
        if key.is_none() {
            stats.anonymous.inc();
        }
        if !spoofed.is_empty() {
            stats.spoofed_headers_removed.add(spoofed.len() as u64);
        }

        let variants: Vec<&str> = active
            .flags
            .iter()
            .map(|entry| entry.flag.evaluate(&subject).variant)
            .collect();

        let mut headers = headers.into_last_writes();
        for name in &spoofed {
            headers.set(name, None);
        }
        let mut summary = String::with_capacity(if config.summary_header.is_some() {
            32 * active.flags.len()
        } else {
            0
        });
        self.exposed.clear();
        self.exposed.reserve(active.flags.len());
        for (entry, variant) in active.flags.iter().zip(variants) {
            headers.set(&entry.header, Some(variant));
            let output = entry.output(variant);
            let series = output.map_or_else(Series::default, |o| o.series);
            series.expose();
            self.exposed.push(series);
            if config.summary_header.is_some() {
                if !summary.is_empty() {
                    summary.push(',');
                }
                match output {
                    Some(o) => summary.push_str(&o.summary_entry),
                    None => {
                        summary.push_str(entry.flag.key());
                        summary.push('=');
                        summary.push_str(variant);
                    }
                }
            }
        }
        if let Some(name) = &config.summary_header {
            if !active.flags.is_empty() {
                headers.set(name, Some(&summary));
            }
        }
        if config.metrics.response_time && !self.exposed.is_empty() {
            self.started_nanos = headers.arrival_nanos();
        }
        Action::Continue
    }
}

impl HttpContext for FlagsFilter {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        self.on_request_headers(RequestHeaders::fetch())
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        if self.exposed.is_empty() || self.started_nanos == 0 {
            return Action::Continue;
        }
        // Only responses from an upstream: a local reply says nothing about a variant.
        if host::property(b"upstream\0address").is_none() {
            return Action::Continue;
        }
        let elapsed_ms = host::now_unix_nanos().saturating_sub(self.started_nanos) / 1_000_000;
        for series in self.exposed.drain(..) {
            series.record_response_ms(elapsed_ms);
        }
        Action::Continue
    }
}
