//! Per-variant stats: an exposure counter and an upstream response-time
//! histogram for every flag and variant, plus the plugin's gauges. Envoy
//! shows them as `wasmcustom.meshguard.flags.variant.<flag>.<variant>.*`.

use meshguard_plugin_kit::stats::Counter;
use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;
use std::collections::HashMap;

/// The stats of one flag variant (absent when turned off or over the cap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Series {
    pub exposures: Counter,
    pub response_time: Option<u32>,
}

impl Series {
    pub fn expose(&self) {
        self.exposures.inc();
    }

    pub fn record_response_ms(&self, ms: u64) {
        if let Some(id) = self.response_time {
            let _ = hostcalls::record_metric(id, ms);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Defined {
    Counter(Counter),
    Histogram(Option<u32>),
}

/// Defines stats once per name, up to a cap, across snapshot changes.
pub struct Registry {
    defined: HashMap<String, Defined>,
    max_series: usize,
    exposures: bool,
    response_time: bool,
}

/// Stat name segments may not contain dots (Envoy splits on them).
fn segment(name: &str) -> String {
    name.replace('.', "_")
}

impl Registry {
    pub fn new(exposures: bool, response_time: bool, max_series: usize) -> Registry {
        Registry {
            defined: HashMap::new(),
            max_series,
            exposures,
            response_time,
        }
    }

    fn counter(&mut self, name: String) -> Counter {
        match self.define(name, |name| Defined::Counter(Counter::named(name))) {
            Some(Defined::Counter(counter)) => counter,
            _ => Counter::default(),
        }
    }

    fn histogram(&mut self, name: String) -> Option<u32> {
        let define = |name: &str| {
            Defined::Histogram(hostcalls::define_metric(MetricType::Histogram, name).ok())
        };
        match self.define(name, define) {
            Some(Defined::Histogram(id)) => id,
            _ => None,
        }
    }

    /// The stat of this name, defined on first use; `None` over the cap.
    fn define(&mut self, name: String, new: impl FnOnce(&str) -> Defined) -> Option<Defined> {
        if let Some(known) = self.defined.get(&name) {
            return Some(*known);
        }
        if self.defined.len() >= self.max_series {
            return None;
        }
        let defined = new(&name);
        self.defined.insert(name, defined);
        Some(defined)
    }

    pub fn series(&mut self, flag: &str, variant: &str) -> Series {
        let base = format!(
            "meshguard.flags.variant.{}.{}",
            segment(flag),
            segment(variant)
        );
        Series {
            exposures: if self.exposures {
                self.counter(format!("{base}.exposures"))
            } else {
                Counter::default()
            },
            response_time: if self.response_time {
                self.histogram(format!("{base}.upstream_rq_time"))
            } else {
                None
            },
        }
    }
}

/// A gauge; a failed host call leaves it unrecorded.
#[derive(Clone, Copy, Debug)]
pub struct Gauge(Option<u32>);

impl Gauge {
    pub fn define(name: &str) -> Gauge {
        let full = format!("meshguard.flags.{name}");
        Gauge(hostcalls::define_metric(MetricType::Gauge, &full).ok())
    }

    pub fn set(&self, value: u64) {
        if let Some(id) = self.0 {
            let _ = hostcalls::record_metric(id, value);
        }
    }
}
