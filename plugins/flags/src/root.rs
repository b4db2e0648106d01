//! The per-worker root context: configuration, stats, and the snapshot
//! sync with meshguard-state on a tick (version/ETag, 304 when current).

use crate::active::ActiveSet;
use crate::config::FlagsConfig;
use crate::filter::FlagsFilter;
use crate::metrics::{Gauge, Registry};
use crate::prefixes::Prefixes;
use meshguard_api::flags::FlagSnapshot;
use meshguard_plugin_kit::config::ConfigError;
use meshguard_plugin_kit::host;
use meshguard_plugin_kit::policy::Policy;
use meshguard_plugin_kit::state_client::{CallError, StateClient};
use meshguard_plugin_kit::stats::Counter;
use meshguard_plugin_kit::tick_gate::TickGate;
use proxy_wasm::traits::Context;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

pub struct Stats {
    pub requests: Counter,
    pub anonymous: Counter,
    pub spoofed_headers_removed: Counter,
    pub snapshots_applied: Counter,
    pub snapshots_unchanged: Counter,
    pub sync_failures: Counter,
    pub sync_skipped: Counter,
    pub flags_rejected: Counter,
    pub snapshot_version: Gauge,
    pub active_flags: Gauge,
}

impl Stats {
    fn define() -> Stats {
        let counter = |name| Counter::define("flags", name);
        Stats {
            requests: counter("requests"),
            anonymous: counter("anonymous"),
            spoofed_headers_removed: counter("spoofed_headers_removed"),
            snapshots_applied: counter("snapshots_applied"),
            snapshots_unchanged: counter("snapshots_unchanged"),
            sync_failures: counter("sync_failures"),
            sync_skipped: counter("sync_skipped"),
            flags_rejected: counter("flags_rejected"),
            snapshot_version: Gauge::define("snapshot_version"),
            active_flags: Gauge::define("active_flags"),
        }
    }
}

/// What every request of this worker reads.
pub struct Runtime {
    pub config: FlagsConfig,
    pub strip_prefixes: Prefixes,
    pub stats: Stats,
    /// Replaced whole by a snapshot; requests hold the set they started with.
    pub active: RefCell<Rc<ActiveSet>>,
    registry: RefCell<Registry>,
}

impl Runtime {
    pub fn current(&self) -> Option<Rc<ActiveSet>> {
        self.active.try_borrow().ok().map(|a| a.clone())
    }

    /// Replaces the active set with `snapshot`, keeping the old one if the
    /// set cannot be swapped.
    fn apply(&self, snapshot: &FlagSnapshot) {
        let Ok(mut registry) = self.registry.try_borrow_mut() else {
            return;
        };
        let (set, rejected) = ActiveSet::build(&snapshot.flags, &self.config, &mut registry);
        for bad in &rejected {
            log::warn!("snapshot {}: {bad}; flag left out", snapshot.version);
        }
        self.stats.flags_rejected.add(rejected.len() as u64);
        let count = set.flags.len() as u64;
        if let Ok(mut active) = self.active.try_borrow_mut() {
            *active = Rc::new(set);
            self.stats.snapshots_applied.inc();
            self.stats.snapshot_version.set(snapshot.version);
            self.stats.active_flags.set(count);
            log::info!("flag snapshot {} applied: {count} flags", snapshot.version);
        }
    }
}

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
