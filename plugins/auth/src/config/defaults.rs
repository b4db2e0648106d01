//! What each configuration field is when the JSON leaves it out.

use super::{
    ActivityConfig, AuthConfig, JwksFetchConfig, RevocationConfig, StaleAction, TokenSource,
};
use meshguard_plugin_kit::state_client::StateClientConfig;
use meshguard_policy::auth::keys::Alg;
use std::collections::BTreeMap;

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            issuers: Vec::new(),
            audiences: Vec::new(),
            algorithms: Alg::ALL.iter().map(|a| a.name().to_string()).collect(),
            jwks: None,
            key_algorithms: BTreeMap::new(),
            jwks_fetch: None,
            clock_skew_s: 60,
            require_exp: true,
            max_token_age_s: None,
            max_token_lifetime_s: 86_400,
            max_token_bytes: 8192,
            token: TokenSource::default(),
            public_routes: vec!["/healthz".into()],
            required_scopes: Vec::new(),
            tier_claim: "tier".into(),
            default_tier: None,
            groups_claim: "groups".into(),
            max_groups: 32,
            cache_max_entries: 1024,
            realm: "meshguard".into(),
            revocation: None,
            session_activity: None,
            reject_budget: Some(crate::budget::BudgetConfig::default()),
            consents: None,
        }
    }
}

impl Default for TokenSource {
    fn default() -> Self {
        TokenSource {
            header: "authorization".into(),
            cookie: None,
        }
    }
}

impl Default for JwksFetchConfig {
    fn default() -> Self {
        JwksFetchConfig {
            cluster: String::new(),
            authority: "jwks".into(),
            path: "/.well-known/jwks.json".into(),
            refresh_interval_ms: 300_000,
            timeout_ms: 2_000,
            unknown_kid_min_interval_ms: 30_000,
        }
    }
}

impl Default for RevocationConfig {
    fn default() -> Self {
        RevocationConfig {
            state: StateClientConfig::default(),
            poll_interval_ms: 250,
            page_limit: 1000,
            max_staleness_ms: 30_000,
            // The client did nothing wrong: "try again shortly", not "bad token".
            on_stale: StaleAction::Reject503,
        }
    }
}

impl Default for ActivityConfig {
    fn default() -> Self {
        ActivityConfig {
            state: None,
            sample_ratio: 0.01,
            interval_ms: 1_000,
            max_per_interval: 50,
            geo_lat_header: None,
            geo_lon_header: None,
            client_ip_header: None,
            trusted_hops: Vec::new(),
        }
    }
}
