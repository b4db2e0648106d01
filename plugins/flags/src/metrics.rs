//! Per-variant stats: an exposure counter and an upstream response-time
//! histogram for every flag and variant, plus the plugin's gauges. Envoy
//! shows them as `wasmcustom.meshguard.flags.variant.<flag>.<variant>.*`.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;
use std::collections::HashMap;

/// The stats of one flag variant (absent when turned off or over the cap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Series {
    pub exposures: Option<u32>,
    pub response_time: Option<u32>,
}

impl Series {
    pub fn expose(&self) {
        if let Some(id) = self.exposures {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    pub fn record_response_ms(&self, ms: u64) {
        if let Some(id) = self.response_time {
            let _ = hostcalls::record_metric(id, ms);
        }
    }
}

/// Defines stats once per name, up to a cap, across snapshot changes.
pub struct Registry {
    defined: HashMap<String, Option<u32>>,
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

    fn define(&mut self, kind: MetricType, name: String) -> Option<u32> {
        if let Some(id) = self.defined.get(&name) {
            return *id;
        }
        if self.defined.len() >= self.max_series {
            return None;
        }
        let id = hostcalls::define_metric(kind, &name).ok();
        self.defined.insert(name, id);
        id
    }

    pub fn series(&mut self, flag: &str, variant: &str) -> Series {
        let base = format!(
            "meshguard.flags.variant.{}.{}",
            segment(flag),
            segment(variant)
        );
        Series {
            exposures: if self.exposures {
                self.define(MetricType::Counter, format!("{base}.exposures"))
            } else {
                None
            },
            response_time: if self.response_time {
                self.define(MetricType::Histogram, format!("{base}.upstream_rq_time"))
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
