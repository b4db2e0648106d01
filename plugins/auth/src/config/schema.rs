//! The configuration's shape: the serde structs the filter's JSON reads into.

use meshguard_plugin_kit::state_client::StateClientConfig;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Accepted `iss` values; empty accepts any issuer.
    pub issuers: Vec<String>,
    /// Accepted audiences (one must be in `aud`); empty skips the check.
    pub audiences: Vec<String>,
    /// The plugin-wide algorithm allowlist; each key narrows it further.
    pub algorithms: Vec<String>,
    /// Verification keys: a JWKS document (`{"keys": [...]}`); a member
    /// written `{"env": "NAME"}` (an HMAC key's `k`) is read from the VM's
    /// environment, out of `/config_dump`.
    #[serde(deserialize_with = "meshguard_plugin_kit::secret::json_with_secrets")]
    pub jwks: Option<serde_json::Value>,
    /// Per-key algorithm allowlists by `kid`, for JWKs without `alg`.
    pub key_algorithms: BTreeMap<String, Vec<String>>,
    /// Fetch the JWKS from a cluster and refresh it.
    pub jwks_fetch: Option<JwksFetchConfig>,
    pub clock_skew_s: u32,
    /// Refuse tokens without `exp`.
    pub require_exp: bool,
    /// Refuse tokens issued longer ago than this (needs `iat`).
    pub max_token_age_s: Option<u32>,
    /// Refuse tokens that live longer than this (`exp - iat`; without `iat`,
    /// `exp - now`): an ended session stays revoked for the longest lifetime
    /// a plugin may allow (`meshguard_api::revocation::MAX_TOKEN_LIFETIME_S`).
    pub max_token_lifetime_s: u32,
    /// Tokens longer than this are refused before any parsing.
    pub max_token_bytes: usize,
    /// Where the token is read from.
    pub token: TokenSource,
    /// Paths that need no token: exact, or a prefix when ending in `*`.
    pub public_routes: Vec<String>,
    /// Scopes a route needs (by path prefix; the longest match applies).
    pub required_scopes: Vec<ScopeRule>,
    /// The claim whose (string) value becomes `x-auth-tier`.
    pub tier_claim: String,
    /// `x-auth-tier` when the token has no tier claim; none when absent.
    pub default_tier: Option<String>,
    /// The claim (a string or an array of strings) whose groups become
    /// `x-auth-groups`, comma separated.
    pub groups_claim: String,
    /// Groups a token may carry; more is refused as `bad_identity`.
    pub max_groups: usize,
    /// Verified tokens remembered per worker (0 turns the cache off).
    pub cache_max_entries: usize,
    /// `realm` in `WWW-Authenticate`.
    pub realm: String,
    /// Revocation sync from meshguard-state; off when absent.
    pub revocation: Option<RevocationConfig>,
    /// Session activity reports to meshguard-state; off when absent.
    pub session_activity: Option<ActivityConfig>,
    /// A per-client budget of refused requests: past it, 429 (a flood of
    /// bad tokens is limited although auth runs before the rate limiter);
    /// `null` turns it off.
    pub reject_budget: Option<crate::budget::BudgetConfig>,
    /// The user's current consents in `x-auth-consents`, synced from
    /// meshguard-state; off when absent.
    pub consents: Option<crate::consent::ConsentConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSource {
    /// A header holding `Bearer <token>`.
    pub header: String,
    /// A cookie holding the bare token, read when the header is absent.
    pub cookie: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeRule {
    pub prefix: String,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwksFetchConfig {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub refresh_interval_ms: u64,
    pub timeout_ms: u64,
    /// At most one extra fetch per this period when a token names an unknown `kid`.
    pub unknown_kid_min_interval_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StaleAction {
    /// Refuse tokens with 401 (fail closed).
    Reject401,
    /// Refuse tokens with 503 and `Retry-After` (fail closed).
    Reject503,
    /// Keep accepting tokens on the last known revocations (fail open).
    Allow,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RevocationConfig {
    pub state: StateClientConfig,
    /// How often each worker asks the feed for changes.
    pub poll_interval_ms: u64,
    /// Entries asked for per page.
    pub page_limit: u32,
    /// How old the last successful sync may be before `on_stale` applies
    /// (also before the first sync).
    pub max_staleness_ms: u64,
    pub on_stale: StaleAction,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActivityConfig {
    /// The meshguard-state client; defaults to `revocation.state` when that is set.
    pub state: Option<StateClientConfig>,
    /// Share of authenticated requests with a session that are reported.
    pub sample_ratio: f64,
    pub interval_ms: u64,
    /// Reports sent per interval; the rest of the batch waits.
    pub max_per_interval: usize,
    /// Headers carrying the client's latitude and longitude (e.g. set by a
    /// CDN); read only from a peer in `trusted_hops`.
    pub geo_lat_header: Option<String>,
    pub geo_lon_header: Option<String>,
    /// A forwarded-for list (`x-forwarded-for`) the trusted hops append to;
    /// read only from a peer in `trusted_hops`, from the right, past them.
    pub client_ip_header: Option<String>,
    /// Addresses (CIDR ranges) of the proxies in front whose forwarded
    /// address and location headers are believed. Empty: none, the client
    /// is the connection's peer and has no location.
    pub trusted_hops: Vec<String>,
}
