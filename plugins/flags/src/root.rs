//! The per-worker root context: configuration, stats, and the snapshot
//! sync with meshguard-state on a tick (version/ETag, 304 when current).

use crate::active::ActiveSet;
use crate::config::FlagsConfig;
use crate::filter::FlagsFilter;
use crate::metrics::Registry;
use crate::prefixes::Prefixes;
use crate::runtime::{Runtime, Stats};
use meshguard_api::flags::FlagSnapshot;
use meshguard_plugin_kit::config::ConfigError;
use meshguard_plugin_kit::host;
use meshguard_plugin_kit::policy::Policy;
use meshguard_plugin_kit::state_client::{CallError, StateClient};
use meshguard_plugin_kit::tick_gate::TickGate;
use proxy_wasm::traits::Context;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

#[derive(Default)]
pub struct FlagsRoot {
    runtime: Option<Rc<Runtime>>,
    client: Option<StateClient>,
    in_flight: Option<u32>,
    /// The version of the last snapshot seen (applied or not).
    seen_version: Option<u64>,
    sync_gate: TickGate,
}

impl FlagsRoot {
    fn on_snapshot(&mut self, body_size: usize) {
        let (Some(runtime), Some(client)) = (&self.runtime, &mut self.client) else {
            return;
        };
        let outcome = client.outcome(body_size);
        match outcome.status {
            Some(304) => runtime.stats.snapshots_unchanged.inc(),
            Some(200) => match serde_json::from_slice::<FlagSnapshot>(&outcome.body) {
                // Version 0: the store has no flag history (new, or it lost
                // its data); what this worker holds is better than nothing.
                Ok(snapshot) if snapshot.version == 0 => {
                    self.seen_version = Some(0);
                    runtime.stats.snapshots_unchanged.inc();
                }
                Ok(snapshot) => {
                    self.seen_version = Some(snapshot.version);
                    runtime.apply(&snapshot);
                }
                Err(e) => {
                    runtime.stats.sync_failures.inc();
                    log::warn!("flag snapshot unreadable ({e}); keeping the current flags");
                }
            },
            status => {
                runtime.stats.sync_failures.inc();
                log::warn!("flag snapshot failed (status {status:?}); keeping the current flags");
            }
        }
    }
}

impl Context for FlagsRoot {
    fn on_http_call_response(&mut self, token: u32, _: usize, body_size: usize, _: usize) {
        if self.in_flight != Some(token) {
            return;
        }
        self.in_flight = None;
        self.on_snapshot(body_size);
    }
}

impl Policy for FlagsRoot {
    type Config = FlagsConfig;
    type Filter = FlagsFilter;

    /// Applies an already validated configuration.
    fn configure(&mut self, config: FlagsConfig) -> Result<(), ConfigError> {
        let metrics = &config.metrics;
        let mut registry =
            Registry::new(metrics.exposures, metrics.response_time, metrics.max_series);
        let (set, _) = ActiveSet::build(&config.flags, &config, &mut registry);
        let stats = Stats::define();
        stats.active_flags.set(set.flags.len() as u64);
        if let Some(sync) = &config.sync {
            self.client = Some(StateClient::new(sync.state.clone()));
        }
        self.runtime = Some(Rc::new(Runtime {
            strip_prefixes: Prefixes::new(&config.strip_prefixes()),
            config,
            stats,
            active: RefCell::new(Rc::new(set)),
            registry: RefCell::new(registry),
        }));
        Ok(())
    }

    /// How often `tick` has work to do; `None`: never.
    fn tick_period(&self) -> Option<Duration> {
        let sync = self.runtime.as_ref()?.config.sync.as_ref()?;
        Some(Duration::from_millis(sync.interval_ms))
    }

    /// Polls for a snapshot when due; may be called more often.
    fn tick(&mut self) {
        if self.in_flight.is_some() {
            return;
        }
        let (Some(runtime), Some(client)) = (&self.runtime, &mut self.client) else {
            return;
        };
        let Some(sync) = &runtime.config.sync else {
            return;
        };
        let period = Duration::from_millis(sync.interval_ms);
        if !self.sync_gate.due(period, host::now_unix_nanos()) {
            return;
        }
        let etag = self.seen_version.map(|v| format!("\"{v}\""));
        let headers: Vec<(&str, &str)> = etag
            .as_deref()
            .map(|e| ("if-none-match", e))
            .into_iter()
            .collect();
        match client.dispatch("GET", &sync.path, None, &headers) {
            Ok(token) => self.in_flight = Some(token),
            Err(CallError::BackingOff) => runtime.stats.sync_skipped.inc(),
            Err(CallError::Dispatch) => {
                runtime.stats.sync_failures.inc();
                log::warn!(
                    "cannot call cluster {:?} for flag snapshots",
                    client.config().cluster
                );
            }
        }
    }

    /// A per-request context of this worker.
    fn filter(&self) -> FlagsFilter {
        FlagsFilter::new(self.runtime.clone())
    }
}
