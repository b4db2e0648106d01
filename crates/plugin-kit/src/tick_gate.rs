//! Time gate for work a root context does every `period` on a tick that may
//! come more often (several policies sharing one root have one tick period).

use std::time::Duration;

/// Ticks up to 1/EARLY_SHARE of the period early still count as due: timers
/// are not exact. Small, so that faster ticks do not run the work early.
const EARLY_SHARE: u64 = 20;

#[derive(Debug, Default, Clone, Copy)]
pub struct TickGate {
    next_ns: u64,
}

impl TickGate {
    /// True (and the next run is scheduled one `period` from `now_ns`) when
    /// the work is due.
    pub fn due(&mut self, period: Duration, now_ns: u64) -> bool {
        let period_ns = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
        if now_ns.saturating_add(period_ns / EARLY_SHARE) < self.next_ns {
            return false;
        }
        self.next_ns = now_ns.saturating_add(period_ns);
        true
    }

    /// Like `due`, but the first call only starts the clock: the work first
    /// runs one `period` after it (a periodic export, not a start-up sync).
    pub fn due_after_first_period(&mut self, period: Duration, now_ns: u64) -> bool {
        if self.next_ns == 0 {
            let period_ns = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
            self.next_ns = now_ns.saturating_add(period_ns).max(1);
            return false;
        }
        self.due(period, now_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn runs_once_per_period_on_faster_ticks() {
        let mut gate = TickGate::default();
        let period = Duration::from_millis(100);
        let runs = (0..=100u64)
            .filter(|t| gate.due(period, 1_000 * MS + t * 10 * MS))
            .count();
        assert_eq!(runs, 11);
    }

    #[test]
    fn a_slightly_early_tick_is_due() {
        let mut gate = TickGate::default();
        let period = Duration::from_millis(100);
        assert!(gate.due(period, 1_000 * MS));
        assert!(gate.due(period, 1_099 * MS));
        assert!(!gate.due(period, 1_150 * MS));
    }

    #[test]
    fn after_first_period_waits_one_period_first() {
        let mut gate = TickGate::default();
        let period = Duration::from_millis(100);
        assert!(!gate.due_after_first_period(period, 1_000 * MS));
        assert!(!gate.due_after_first_period(period, 1_050 * MS));
        assert!(gate.due_after_first_period(period, 1_100 * MS));
        assert!(!gate.due_after_first_period(period, 1_150 * MS));
        assert!(gate.due_after_first_period(period, 1_200 * MS));
    }
}
