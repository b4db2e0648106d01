//! The services' clock for every timestamp that crosses the wire or lands
//! in Redis (revocation cutoffs, session times, audit entries): Unix time
//! in milliseconds, one definition. The plugins read Envoy's clock instead
//! (`proxy_get_current_time_nanoseconds`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 before it, saturating far after).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
