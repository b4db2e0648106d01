//! Validation of the optional sections: `jwks_fetch`, `revocation`,
//! `session_activity`.

use super::checks::{in_range, is_header_name};
use super::{ActivityConfig, JwksFetchConfig, RevocationConfig};
use meshguard_plugin_kit::config::ConfigError;

impl JwksFetchConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
