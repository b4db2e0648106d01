//! Who a request is limited as, and under which tier.

use crate::config::RateLimitConfig;
use meshguard_api::keys::{address_key, subject_key};
use meshguard_plugin_kit::request_headers::RequestHeaders;
use meshguard_policy::ratelimit::client::client_address;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `sub:<subject>` or `ip:<address>` (`meshguard_api::keys`: the same
    /// form meshguard-state files the user's other keys under).
    pub key: String,
    pub tier: String,
}

/// The request's identity: the subject and tier set by the auth plugin when
/// trusted and present, else the client address under the anonymous tier.
/// A tier the configuration does not know falls back to `default_tier`.
/// `peer` (the downstream address) is asked for only when needed.
pub fn identify(
    config: &RateLimitConfig,
    headers: &RequestHeaders,
    peer: impl FnOnce() -> Option<String>,
) -> Identity {
    let id = &config.identity;
    let text = |name: &str| {
        headers
            .values(name)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .map(str::trim)
            .find(|v| !v.is_empty())
    };
    if id.trust_auth_headers {
        if let Some(subject) = text(&id.subject_header) {
            let tier = text(&id.tier_header)
                .filter(|t| config.tiers.contains_key(*t))
                .unwrap_or(&config.default_tier);
            return Identity {
                key: subject_key(subject),
                tier: tier.to_string(),
            };
        }
    }
    let forwarded: Vec<&str> = headers
        .values("x-forwarded-for")
        .filter_map(|v| std::str::from_utf8(v).ok())
        .collect();
    let peer = peer();
    let address = client_address(peer.as_deref(), &forwarded, id.trusted_hops)
        .map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
    Identity {
        key: address_key(&address),
        tier: config.anonymous_tier().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshguard_plugin_kit::config::load;

    fn headers(pairs: &[(&str, &[u8])]) -> RequestHeaders {
        RequestHeaders::from_list(pairs)
    }

    fn config(raw: &str) -> RateLimitConfig {
        load(Some(raw.as_bytes())).unwrap()
    }

    #[test]
    fn subject_and_known_tier() {
        let c = config("{}");
        let h: &[(&str, &[u8])] = &[("x-auth-sub", b"alice"), ("x-auth-tier", b"premium")];
        let id = identify(&c, &headers(h), || Some("10.0.0.1:5".into()));
        assert_eq!(id.key, "sub:alice");
        assert_eq!(id.tier, "premium");
        let h: &[(&str, &[u8])] = &[("x-auth-sub", b"bob"), ("x-auth-tier", b"platinum")];
        assert_eq!(identify(&c, &headers(h), || None).tier, "free");
    }

    #[test]
    fn untrusted_headers_key_on_the_address() {
        let c = config(r#"{"identity": {"trust_auth_headers": false}, "anonymous_tier": "free"}"#);
        let h: &[(&str, &[u8])] = &[("x-auth-sub", b"alice"), ("x-auth-tier", b"admin")];
        let id = identify(&c, &headers(h), || Some("10.0.0.1:5".into()));
        assert_eq!(id.key, "ip:10.0.0.1");
        assert_eq!(id.tier, "free");
    }

    #[test]
    fn forwarded_for_only_with_trusted_hops() {
        let h: &[(&str, &[u8])] = &[("x-forwarded-for", b"203.0.113.5, 10.1.1.1")];
        let id = identify(&config("{}"), &headers(h), || Some("127.0.0.1:9".into()));
        assert_eq!(id.key, "ip:127.0.0.1");
        let c = config(r#"{"identity": {"trusted_hops": 2}}"#);
        assert_eq!(
            identify(&c, &headers(h), || Some("127.0.0.1:9".into())).key,
            "ip:203.0.113.5"
        );
        assert_eq!(identify(&c, &headers(&[]), || None).key, "ip:unknown");
    }

    #[test]
    fn empty_or_binary_subject_is_anonymous() {
        let h: &[(&str, &[u8])] = &[("x-auth-sub", b"  "), ("x-auth-sub", &[0xff, 0xfe])];
        assert_eq!(
            identify(&config("{}"), &headers(h), || Some("::1".into())).key,
            "ip:::1"
        );
    }
}
