//! The auth plugin's configuration (the filter's `configuration` JSON).

use crate::keys::KeySet;
use meshguard_plugin_kit::config::{ConfigError, Validate};
use meshguard_plugin_kit::state_client::StateClientConfig;
use meshguard_policy::auth::keys::Alg;
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSource {
    /// A header holding `Bearer <token>`.
    pub header: String,
    /// A cookie holding the bare token, read when the header is absent.
    pub cookie: Option<String>,
}

impl Default for TokenSource {
    fn default() -> Self {
        TokenSource {
            header: "authorization".into(),
            cookie: None,
        }
    }
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

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
}

/// RFC 6750 scope tokens: printable ASCII without space, `"` or `\`.
fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|c| (0x21..=0x7e).contains(&c) && c != b'"' && c != b'\\')
}

fn in_range(field: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            format!("must be from {min} to {max}"),
        ))
    }
}

impl AuthConfig {
    /// The plugin-wide allowlist, parsed (validated before use).
    pub fn global_algorithms(&self) -> Vec<Alg> {
        self.algorithms
            .iter()
            .filter_map(|a| Alg::parse(a))
            .collect()
    }

    /// The client the session activity reports go through.
    pub fn activity_state(&self) -> Option<StateClientConfig> {
        let activity = self.session_activity.as_ref()?;
        activity
            .state
            .clone()
            .or_else(|| self.revocation.as_ref().map(|r| r.state.clone()))
    }
}

impl Validate for AuthConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.algorithms.is_empty() {
            return Err(ConfigError::new(
                "algorithms",
                "must name at least one algorithm",
            ));
        }
        for (i, name) in self.algorithms.iter().enumerate() {
            if Alg::parse(name).is_none() {
                return Err(ConfigError::new(
                    format!("algorithms[{i}]"),
                    format!("unsupported algorithm {name:?} (HS256/384/512, RS256/384/512, PS256/384/512, ES256, EdDSA)"),
                ));
            }
        }
        if let Some(jwks) = &self.jwks {
            KeySet::parse(jwks, &self.key_algorithms, &self.global_algorithms())
                .map_err(|e| ConfigError::new(format!("jwks.{}", e.field), e.message))?;
        }
        for (kid, algs) in &self.key_algorithms {
            for name in algs {
                if Alg::parse(name).is_none() {
                    return Err(ConfigError::new(
                        format!("key_algorithms.{kid}"),
                        format!("unsupported algorithm {name:?}"),
                    ));
                }
            }
        }
        if self.jwks.is_none() && self.jwks_fetch.is_none() && self.revocation.is_some() {
            log::warn!("auth: no keys configured (`jwks` or `jwks_fetch`): every token is refused");
        }
        if let Some(fetch) = &self.jwks_fetch {
            fetch.validate()?;
        }
        in_range("clock_skew_s", self.clock_skew_s.into(), 0, 3_600)?;
        if let Some(age) = self.max_token_age_s {
            in_range("max_token_age_s", age.into(), 1, 31_536_000)?;
        }
        in_range(
            "max_token_lifetime_s",
            self.max_token_lifetime_s.into(),
            1,
            meshguard_api::revocation::MAX_TOKEN_LIFETIME_S,
        )?;
        in_range("max_token_bytes", self.max_token_bytes as u64, 64, 65_536)?;
        if !is_header_name(&self.token.header) {
            return Err(ConfigError::new(
                "token.header",
                "must be a lowercase header name",
            ));
        }
        if let Some(cookie) = &self.token.cookie {
            let ok = !cookie.is_empty()
                && cookie
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c));
            if !ok {
                return Err(ConfigError::new("token.cookie", "must be a cookie name"));
            }
        }
        for (i, route) in self.public_routes.iter().enumerate() {
            if !route.starts_with('/') {
                return Err(ConfigError::new(
                    format!("public_routes[{i}]"),
                    "must start with /",
                ));
            }
        }
        for (i, rule) in self.required_scopes.iter().enumerate() {
            if !rule.prefix.starts_with('/') {
                return Err(ConfigError::new(
                    format!("required_scopes[{i}].prefix"),
                    "must start with /",
                ));
            }
            if rule.scopes.is_empty() || !rule.scopes.iter().all(|s| is_scope_token(s)) {
                return Err(ConfigError::new(
                    format!("required_scopes[{i}].scopes"),
                    "must list scope tokens (printable ASCII without spaces, quotes or backslashes)",
                ));
            }
        }
        if self.tier_claim.is_empty() {
            return Err(ConfigError::new("tier_claim", "must name a claim"));
        }
        if self.groups_claim.is_empty() {
            return Err(ConfigError::new("groups_claim", "must name a claim"));
        }
        in_range("max_groups", self.max_groups as u64, 1, 256)?;
        if let Some(budget) = &self.reject_budget {
            budget.validate()?;
        }
        if let Some(consents) = &self.consents {
            consents.validate(self.revocation.as_ref().map(|r| &r.state))?;
        }
        if let Some(tier) = &self.default_tier {
            if meshguard_policy::auth::claims::check_identity("tier", tier).is_err() {
                return Err(ConfigError::new(
                    "default_tier",
                    "must be a short header-safe value",
                ));
            }
        }
        in_range(
            "cache_max_entries",
            self.cache_max_entries as u64,
            0,
            1_000_000,
        )?;
        if !is_scope_token(&self.realm) {
            return Err(ConfigError::new(
                "realm",
                "must be printable ASCII without spaces, quotes or backslashes",
            ));
        }
        if let Some(revocation) = &self.revocation {
            revocation.validate()?;
        }
        if let Some(activity) = &self.session_activity {
            activity.validate()?;
            match &activity.state {
                Some(state) => state.validate("session_activity.state")?,
                None if self.revocation.is_none() => {
                    return Err(ConfigError::new(
                        "session_activity.state",
                        "required when `revocation` is not configured",
                    ))
                }
                None => {}
            }
        }
        Ok(())
    }
}

impl JwksFetchConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.cluster.trim().is_empty() {
            return Err(ConfigError::new(
                "jwks_fetch.cluster",
                "must name an Envoy cluster",
            ));
        }
        if self.authority.trim().is_empty() {
            return Err(ConfigError::new(
                "jwks_fetch.authority",
                "must not be empty",
            ));
        }
        if !self.path.starts_with('/') {
            return Err(ConfigError::new("jwks_fetch.path", "must start with /"));
        }
        in_range(
            "jwks_fetch.refresh_interval_ms",
            self.refresh_interval_ms,
            1_000,
            86_400_000,
        )?;
        in_range("jwks_fetch.timeout_ms", self.timeout_ms, 1, 60_000)?;
        in_range(
            "jwks_fetch.unknown_kid_min_interval_ms",
            self.unknown_kid_min_interval_ms,
            100,
            86_400_000,
        )
    }
}

impl RevocationConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.state.validate("revocation.state")?;
        in_range(
            "revocation.poll_interval_ms",
            self.poll_interval_ms,
            50,
            600_000,
        )?;
        in_range("revocation.page_limit", self.page_limit.into(), 1, 1_000)?;
        in_range(
            "revocation.max_staleness_ms",
            self.max_staleness_ms,
            self.poll_interval_ms,
            86_400_000,
        )
    }
}

impl ActivityConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(self.sample_ratio.is_finite() && (0.0..=1.0).contains(&self.sample_ratio)) {
            return Err(ConfigError::new(
                "session_activity.sample_ratio",
                "must be a number from 0 to 1",
            ));
        }
        in_range(
            "session_activity.interval_ms",
            self.interval_ms,
            50,
            3_600_000,
        )?;
        in_range(
            "session_activity.max_per_interval",
            self.max_per_interval as u64,
            1,
            10_000,
        )?;
        for (field, header) in [
            ("session_activity.geo_lat_header", &self.geo_lat_header),
            ("session_activity.geo_lon_header", &self.geo_lon_header),
            ("session_activity.client_ip_header", &self.client_ip_header),
        ] {
            if header.as_deref().is_some_and(|h| !is_header_name(h)) {
                return Err(ConfigError::new(field, "must be a lowercase header name"));
            }
        }
        if let Err(i) = meshguard_policy::auth::hops::TrustedHops::parse(&self.trusted_hops) {
            return Err(ConfigError::new(
                format!("session_activity.trusted_hops[{i}]"),
                "must be an address or a CIDR range (10.0.0.0/8, 2001:db8::/32)",
            ));
        }
        let reads_hop_headers = self.client_ip_header.is_some() || self.geo_lat_header.is_some();
        if reads_hop_headers && self.trusted_hops.is_empty() {
            return Err(ConfigError::new(
                "session_activity.trusted_hops",
                "client_ip_header and the geo headers are only read from a trusted hop: list the proxies in front that set them (and drop client-sent copies)",
            ));
        }
        if self.geo_lat_header.is_some() != self.geo_lon_header.is_some() {
            return Err(ConfigError::new(
                "session_activity.geo_lon_header",
                "geo_lat_header and geo_lon_header go together",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshguard_plugin_kit::config::load;

    #[test]
    fn defaults_without_configuration() {
        let config: AuthConfig = load(None).unwrap();
        assert_eq!(config.clock_skew_s, 60);
        assert_eq!(config.public_routes, vec!["/healthz".to_string()]);
        assert_eq!(config.global_algorithms().len(), 11);
        assert!(config.revocation.is_none());
    }

    #[test]
    fn full_configuration() {
        let raw = br#"{"issuers": ["https://id"], "audiences": ["api"],
            "algorithms": ["HS256", "ES256"],
            "jwks": {"keys": [{"kty": "oct", "kid": "dev", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}]},
            "token": {"cookie": "session"}, "public_routes": ["/healthz", "/public/*"],
            "required_scopes": [{"prefix": "/api/admin/", "scopes": ["admin"]}],
            "revocation": {"state": {"secret": "s", "timeout_ms": 500}, "on_stale": "reject503"},
            "session_activity": {"sample_ratio": 1, "geo_lat_header": "x-lat", "geo_lon_header": "x-lon",
                                 "trusted_hops": ["10.0.0.0/8"]},
            "groups_claim": "roles", "max_token_lifetime_s": 3600}"#;
        let config: AuthConfig = load(Some(raw)).unwrap();
        assert_eq!(
            config.revocation.as_ref().unwrap().on_stale,
            StaleAction::Reject503
        );
        assert_eq!(config.activity_state().unwrap().secret, "s");
    }

    #[test]
    fn bad_fields_are_named() {
        let cases: [(&[u8], &str); 17] = [
            (br#"{"max_token_lifetime_s": 86401}"#, "max_token_lifetime_s"),
            (br#"{"groups_claim": ""}"#, "groups_claim"),
            (br#"{"reject_budget": {"per_minute": 0}}"#, "reject_budget.per_minute"),
            (
                br#"{"session_activity": {"state": {}, "geo_lat_header": "a", "geo_lon_header": "b"}}"#,
                "session_activity.trusted_hops",
            ),
            (
                br#"{"session_activity": {"state": {}, "trusted_hops": ["10.0.0.0/99"]}}"#,
                "session_activity.trusted_hops[0]",
            ),
            (br#"{"algorithms": ["none"]}"#, "algorithms[0]"),
            (br#"{"algorithms": []}"#, "algorithms"),
            (br#"{"clock_skew_s": 99999}"#, "clock_skew_s"),
            (br#"{"max_token_bytes": 1}"#, "max_token_bytes"),
            (br#"{"token": {"header": "Authorization"}}"#, "token.header"),
            (br#"{"token": {"cookie": "a b"}}"#, "token.cookie"),
            (br#"{"public_routes": ["healthz"]}"#, "public_routes[0]"),
            (
                br#"{"required_scopes": [{"prefix": "/a", "scopes": ["a b"]}]}"#,
                "required_scopes[0].scopes",
            ),
            (br#"{"jwks": {"keys": [{"kty": "RSA", "alg": "HS256", "n": "AQAB", "e": "AQAB"}]}}"#, "jwks.keys[0]"),
            (br#"{"revocation": {"poll_interval_ms": 1}}"#, "revocation.poll_interval_ms"),
            (br#"{"revocation": {"state": {"timeout_ms": 0}}}"#, "revocation.state.timeout_ms"),
            (br#"{"session_activity": {}}"#, "session_activity.state"),
        ];
        for (raw, field) in cases {
            let err = load::<AuthConfig>(Some(raw)).unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
    }
}
