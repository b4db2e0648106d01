//! The per-worker root context: configuration, stats, and span export on a tick.

use crate::config::TraceConfig;
use crate::filter::TraceFilter;
use crate::runtime::Runtime;
use crate::spans::otlp_json;
use meshguard_plugin_kit::config::ConfigError;
use meshguard_plugin_kit::host;
use meshguard_plugin_kit::policy::Policy;
use meshguard_plugin_kit::tick_gate::TickGate;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::Context;
use std::rc::Rc;
use std::time::Duration;

#[derive(Default)]
pub struct TraceRoot {
    runtime: Option<Rc<Runtime>>,
    /// The export call under way: its token and how many spans it carries.
    in_flight: Option<(u32, usize)>,
    export_gate: TickGate,
}

impl Context for TraceRoot {
    fn on_http_call_response(&mut self, token: u32, _: usize, _: usize, _: usize) {
        let Some((expected, count)) = self.in_flight else {
            return;
        };
        if token != expected {
            return;
        }
        self.in_flight = None;
        let Some(runtime) = &self.runtime else {
            return;
        };
        let count = count as u64;
        match host::call_response_status() {
            Some(status) if (200..300).contains(&status) => runtime.stats.spans_exported.add(count),
            status => {
                runtime.stats.spans_dropped.add(count);
                log::warn!("span export failed (status {status:?}); {count} spans dropped");
            }
        }
    }
}

impl Policy for TraceRoot {
    type Config = TraceConfig;
    type Filter = TraceFilter;

    /// Applies an already validated configuration.
    fn configure(&mut self, config: TraceConfig) -> Result<(), ConfigError> {
        self.runtime = Some(Rc::new(Runtime::new(config)));
        Ok(())
    }

    /// How often `tick` has work to do; `None`: never.
    fn tick_period(&self) -> Option<Duration> {
        let export = self.runtime.as_ref()?.config.export.as_ref()?;
        Some(Duration::from_millis(export.interval_ms))
    }

    /// Exports buffered spans when an export is due; may be called more often.
    fn tick(&mut self) {
        if self.in_flight.is_some() {
            return;
        }
        let Some(runtime) = self.runtime.clone() else {
            return;
        };
        let Some(export) = &runtime.config.export else {
            return;
        };
        let period = Duration::from_millis(export.interval_ms);
        if !self
            .export_gate
            .due_after_first_period(period, host::now_unix_nanos())
        {
            return;
        }
        let batch = match runtime.spans.try_borrow_mut() {
            Ok(mut spans) if !spans.is_empty() => spans.take(export.max_batch),
            _ => return,
        };
        let body = otlp_json(&runtime.config.service_name, &batch);
        let mut headers: Vec<(&str, &str)> = vec![
            (":method", "POST"),
            (":path", &export.path),
            (":authority", &export.authority),
            ("content-type", "application/json"),
        ];
        headers.extend(export.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let timeout = Duration::from_millis(export.timeout_ms);
        match hostcalls::dispatch_http_call(&export.cluster, headers, Some(&body), vec![], timeout)
        {
            Ok(token) => self.in_flight = Some((token, batch.len())),
            Err(status) => {
                runtime.stats.spans_dropped.add(batch.len() as u64);
                log::warn!(
                    "cannot call cluster {:?} ({status:?}); {} spans dropped",
                    export.cluster,
                    batch.len()
                );
            }
        }
    }

    /// A per-request context of this worker.
    fn filter(&self) -> TraceFilter {
        TraceFilter::new(self.runtime.clone())
    }
}
