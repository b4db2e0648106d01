//! Envoy stats defined by a plugin. Envoy shows them as
//! `wasmcustom.meshguard.<plugin>.<name>`.
//!
//! Counters are summed in the VM and handed to Envoy by `flush_counters`,
//! which the root context calls on every tick (at most `FLUSH_PERIOD`
//! apart): one host call per counter that moved, instead of one per
//! increment on the request path (the chain counts 14 things per request).
//! Envoy's stats therefore lag by up to one flush period.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;
use std::cell::RefCell;
use std::time::Duration;

/// The longest a counted event waits before Envoy's stats show it.
pub const FLUSH_PERIOD: Duration = Duration::from_millis(100);

thread_local! {
    static PENDING: RefCell<Pending> = RefCell::new(Pending::default());
}

/// A counter; a failed host call leaves it unrecorded rather than failing
/// the request. `Counter::default()` records nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter(Option<usize>);

impl Counter {
    pub fn define(plugin: &str, name: &str) -> Counter {
        Counter::named(&format!("meshguard.{plugin}.{name}"))
    }

    /// A counter under its full stat name (without Envoy's `wasmcustom.`).
    pub fn named(full: &str) -> Counter {
        let id = hostcalls::define_metric(MetricType::Counter, full).ok();
        Counter(id.and_then(|id| PENDING.with(|p| Some(p.try_borrow_mut().ok()?.slot(id)))))
    }

    pub fn add(&self, n: u64) {
        if let Some(slot) = self.0 {
            PENDING.with(|p| {
                if let Ok(mut p) = p.try_borrow_mut() {
                    p.add(slot, n);
                }
            });
        }
    }

    pub fn inc(&self) {
        self.add(1);
    }
}

/// Hands every counter's increments since the last flush to Envoy.
pub fn flush_counters() {
    let due = PENDING.with(|p| p.try_borrow_mut().map(|mut p| p.take()).unwrap_or_default());
    for (id, count) in due {
        let _ = hostcalls::increment_metric(id, i64::try_from(count).unwrap_or(i64::MAX));
    }
}

/// The increments not yet handed to Envoy, one slot per metric id.
#[derive(Debug, Default)]
struct Pending {
    slots: Vec<(u32, u64)>,
}

impl Pending {
    /// The slot of metric `id`, shared by every `Counter` defined with it.
    fn slot(&mut self, id: u32) -> usize {
        if let Some(slot) = self.slots.iter().position(|(known, _)| *known == id) {
            return slot;
        }
        self.slots.push((id, 0));
        self.slots.len() - 1
    }

    fn add(&mut self, slot: usize, n: u64) {
        if let Some((_, count)) = self.slots.get_mut(slot) {
            *count = count.saturating_add(n);
        }
    }

    /// `(metric id, increments)` of every counter that moved, now cleared.
    fn take(&mut self) -> Vec<(u32, u64)> {
        self.slots
            .iter_mut()
            .filter(|(_, count)| *count > 0)
            .map(|(id, count)| (*id, std::mem::take(count)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increments_are_summed_per_metric_until_taken() {
        let mut pending = Pending::default();
        let (a, b) = (pending.slot(7), pending.slot(9));
        assert_eq!(pending.slot(7), a, "one slot per metric id");
        pending.add(a, 1);
        pending.add(a, 2);
        pending.add(b, 5);
        assert_eq!(pending.take(), [(7, 3), (9, 5)]);
        assert!(
            pending.take().is_empty(),
            "taken counts start again at zero"
        );
        pending.add(b, 1);
        assert_eq!(pending.take(), [(9, 1)]);
    }

    #[test]
    fn an_unknown_slot_is_ignored() {
        let mut pending = Pending::default();
        pending.add(3, 1);
        assert!(pending.take().is_empty());
    }
}
