//! What each Meshguard policy provides to run as a filter, and the one root
//! context that runs any of them as a plugin of its own. The single-module
//! build (`plugins/chain`) drives the same four methods of all four policies.

use crate::config::{ConfigError, Validate};
use crate::host;
use crate::stats;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// The first tick comes this soon after configuration, whatever the period:
/// the auth policy refuses tokens until its first revocation sync, and the
/// flags policy serves its configured defaults until its first snapshot.
pub const FIRST_TICK: Duration = Duration::from_millis(10);

/// A policy's per-worker state. Its `Context` receives the responses to the
/// calls it dispatches.
pub trait Policy: Context + Default + 'static {
    type Config: DeserializeOwned + Default + Validate;
    type Filter: HttpContext + 'static;

    /// Applies a validated configuration; an error names the field at fault.
    fn configure(&mut self, config: Self::Config) -> Result<(), ConfigError>;
    /// How often `tick` has work to do; `None`: never.
    fn tick_period(&self) -> Option<Duration>;
    /// Background work (syncs, exports, settlements) when due; called on
    /// every tick of the root, which may come far more often than `tick_period`.
    fn tick(&mut self);
    /// A per-request context of this worker.
    fn filter(&self) -> Self::Filter;
}

/// The shortest tick a root context asks for.
const MIN_TICK: Duration = Duration::from_millis(10);

/// A root context's tick period: one that divides its policies' periods
/// and the counters' flush period (every root ticks, to flush them), so
/// each policy's work runs on time rather than at the next multiple of the
/// tick: the greatest common divisor in whole milliseconds, at least
/// `MIN_TICK`. 250 ms and the 100 ms flush tick every 50 ms.
pub fn root_tick_period(policies: impl IntoIterator<Item = Duration>) -> Duration {
    fn gcd(a: u128, b: u128) -> u128 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let ms = policies
        .into_iter()
        .map(|p| p.as_millis().max(1))
        .fold(stats::FLUSH_PERIOD.as_millis(), gcd);
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX)).max(MIN_TICK)
}

/// Runs one policy as a whole plugin.
#[derive(Default)]
pub struct PolicyRoot<P> {
    policy: P,
    first_tick_pending: bool,
}

impl<P: Policy> Context for PolicyRoot<P> {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        self.policy
            .on_http_call_response(token, headers, body, trailers);
    }
}

impl<P: Policy> RootContext for PolicyRoot<P> {
    fn on_configure(&mut self, _: usize) -> bool {
        let Some(config) = host::plugin_configuration::<P::Config>() else {
            return false;
        };
        if let Err(err) = self.policy.configure(config) {
            log::error!("{err}");
            return false;
        }
        let _ = hostcalls::set_tick_period(FIRST_TICK);
        self.first_tick_pending = true;
        true
    }

    fn on_tick(&mut self) {
        if std::mem::take(&mut self.first_tick_pending) {
            let period = root_tick_period(self.policy.tick_period());
            let _ = hostcalls::set_tick_period(period);
        }
        stats::flush_counters();
        self.policy.tick();
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(self.policy.filter()))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_tick_divides_every_period_and_the_flush() {
        assert_eq!(root_tick_period(None), ms(100));
        assert_eq!(root_tick_period([ms(1000)]), ms(100));
        assert_eq!(root_tick_period([ms(200)]), ms(100));
        assert_eq!(root_tick_period([ms(250)]), ms(50));
        assert_eq!(root_tick_period([ms(250), ms(200), ms(1000)]), ms(50));
        assert_eq!(root_tick_period([ms(30)]), ms(10));
    }

    #[test]
    fn awkward_periods_tick_no_faster_than_the_floor() {
        assert_eq!(root_tick_period([ms(333)]), MIN_TICK);
        assert_eq!(root_tick_period([ms(0)]), MIN_TICK);
    }
}
