//! The configuration read from JSON: defaults, a full example, named bad
//! fields. Compiled only under #[cfg(test)] (`mod tests` in config.rs).

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
        (
            br#"{"max_token_lifetime_s": 86401}"#,
            "max_token_lifetime_s",
        ),
        (br#"{"groups_claim": ""}"#, "groups_claim"),
        (
            br#"{"reject_budget": {"per_minute": 0}}"#,
            "reject_budget.per_minute",
        ),
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
        (
            br#"{"jwks": {"keys": [{"kty": "RSA", "alg": "HS256", "n": "AQAB", "e": "AQAB"}]}}"#,
            "jwks.keys[0]",
        ),
        (
            br#"{"revocation": {"poll_interval_ms": 1}}"#,
            "revocation.poll_interval_ms",
        ),
        (
            br#"{"revocation": {"state": {"timeout_ms": 0}}}"#,
            "revocation.state.timeout_ms",
        ),
        (br#"{"session_activity": {}}"#, "session_activity.state"),
    ];
    for (raw, field) in cases {
        let err = load::<AuthConfig>(Some(raw)).unwrap_err();
        assert_eq!(err.field, field, "{err}");
    }
}
