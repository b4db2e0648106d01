//! What the requests of one worker share with its root context: the
//! configuration and the caches the root refreshes on its tick. The root
//! builds it and hands it to each HTTP context; a filter reads it and never
//! names the root.

use crate::activity::ActivityBuffer;
use crate::budget::RejectBudget;
use crate::cache::TokenCache;
use crate::config::AuthConfig;
use crate::consent::ConsentCache;
use crate::keys::KeySet;
use crate::stats::Stats;
use crate::sync::FeedState;
use crate::verify::VerifyPolicy;

use meshguard_plugin_kit::host;
use meshguard_policy::auth::hops::TrustedHops;

use std::cell::{Cell, RefCell};

/// What the requests of this worker read; the root updates the `RefCell`s on its tick.
pub struct Runtime {
    pub config: AuthConfig,
    pub policy: VerifyPolicy,
    pub(crate) configured_keys: KeySet,
    pub keys: RefCell<KeySet>,
    pub cache: RefCell<TokenCache>,
    pub feed: Option<RefCell<FeedState>>,
    pub activity: RefCell<ActivityBuffer>,
    /// The proxies in front whose forwarded address and location are believed.
    pub trusted_hops: TrustedHops,
    pub budget: Option<RefCell<RejectBudget>>,
    pub consents: Option<RefCell<ConsentCache>>,
    pub stats: Stats,
    /// A token named a `kid` no key has: refetch the JWKS soon.
    pub jwks_wanted: Cell<bool>,
}

pub fn now_ms() -> u64 {
    host::now_unix_nanos() / 1_000_000
}
