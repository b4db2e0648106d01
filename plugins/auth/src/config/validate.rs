//! Validation of the whole configuration, field by field in reading order.

use super::checks::{in_range, is_header_name, is_scope_token};
use super::AuthConfig;
use crate::keys::KeySet;
use meshguard_plugin_kit::config::{ConfigError, Validate};
use meshguard_policy::auth::keys::Alg;

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
