//! The background pass `serve` runs every tick: package pruning, the
//! cutoff sweep, the state audit ingest and a checkpoint.

use crate::config::Settings;
use crate::core::Core;
use crate::{audit, erase, export, ingest};

/// One background pass; failures are reported and retried next tick.
pub(super) fn tick(settings: &Settings) {
    let mut core = match Core::open(settings) {
        Ok(c) => c,
        Err(e) => return tracing::error!("tick: {e}"),
    };
    if let Err(e) = export::prune_packages(&core) {
        tracing::warn!("tick: package pruning: {e}");
    }
    if let Err(e) = erase::sweep(&mut core) {
        tracing::warn!("tick: sweep: {e}");
    }
    if settings.state_token().is_ok() {
        if let Err(e) = ingest::run(&mut core) {
            tracing::warn!("tick: state audit ingest: {e}");
        }
    }
    if let Err(e) = audit::checkpoint(&core.conn, &core.keys) {
        tracing::warn!("tick: checkpoint: {e}");
    }
}
