//! Envoy stats defined by a plugin. Envoy shows them as
//! `wasmcustom.meshguard.<plugin>.<name>`.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

/// A counter; a failed host call leaves it unrecorded rather than failing
/// the request.
#[derive(Clone, Copy, Debug)]
pub struct Counter(Option<u32>);

impl Counter {
    pub fn define(plugin: &str, name: &str) -> Counter {
        let full = format!("meshguard.{plugin}.{name}");
        Counter(hostcalls::define_metric(MetricType::Counter, &full).ok())
    }

    pub fn add(&self, n: u64) {
        if let (Some(id), Ok(n)) = (self.0, i64::try_from(n)) {
            let _ = hostcalls::increment_metric(id, n);
        }
    }

    pub fn inc(&self) {
        self.add(1);
    }
}
