//! What the requests of one worker share with its root context: the
//! configuration and the caches the root refreshes on its tick. The root
//! builds it and hands it to each HTTP context; a filter reads it and never
//! names the root.

use crate::active::ActiveSet;
use crate::config::FlagsConfig;
use crate::metrics::{Gauge, Registry};
use crate::prefixes::Prefixes;
use meshguard_api::flags::FlagSnapshot;
use meshguard_plugin_kit::stats::Counter;
use std::cell::RefCell;
use std::rc::Rc;

/// What every request of this worker reads.
pub struct Runtime {
    pub config: FlagsConfig,
    pub strip_prefixes: Prefixes,
    pub stats: Stats,
    /// Replaced whole by a snapshot; requests hold the set they started with.
    pub active: RefCell<Rc<ActiveSet>>,
    pub(crate) registry: RefCell<Registry>,
}

impl Runtime {
    pub fn current(&self) -> Option<Rc<ActiveSet>> {
        self.active.try_borrow().ok().map(|a| a.clone())
    }

    /// Replaces the active set with `snapshot`, keeping the old one if the
    /// set cannot be swapped.
    pub(crate) fn apply(&self, snapshot: &FlagSnapshot) {
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
    pub(crate) fn define() -> Stats {
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
