//! Configuration through a real Envoy: a bad configuration is refused with a
//! line naming the field; no configuration at all starts with the defaults;
//! the built artifact imports only what Envoy provides.

mod auth_support;

use auth_support::*;
use meshguard_harness::paths::plugin_wasm;
use meshguard_harness::wasm_imports::{envoy_provides, imports};
use meshguard_harness::{Envoy, EnvoySpec, Plugin};
use serde_json::json;

#[test]
fn malformed_configuration_is_refused_naming_the_field() {
    let weak_rsa = json!({"keys": [{"kty": "RSA", "kid": "k", "n": "AQAB", "e": "AQAB"}]});
    let hs_on_rsa = json!({"keys": [keys().rsa_jwk("k").as_object().map(|o| {
        let mut o = o.clone();
        o.insert("alg".into(), json!("HS256"));
        o
    })]});
    let cases = [
        (
            json!({"algorithms": ["none"]}).to_string(),
            "field `algorithms[0]`: unsupported algorithm",
        ),
        (
            json!({"jwks": weak_rsa}).to_string(),
            "field `jwks.keys[0]`: an RSA key needs a modulus of at least 2048 bits",
        ),
        (
            json!({"jwks": hs_on_rsa}).to_string(),
            "field `jwks.keys[0]`: algorithm HS256 cannot be used with a Rsa key",
        ),
        (
            json!({"clock_skew_s": -1}).to_string(),
            "field `clock_skew_s`: invalid value",
        ),
        (
            json!({"revocation": {"max_staleness_ms": 10}}).to_string(),
            "field `revocation.max_staleness_ms`: must be from 250",
        ),
        (
            json!({"revocation": {"state": {"timeout_ms": 0}}}).to_string(),
            "field `revocation.state.timeout_ms`",
        ),
        (
            json!({"revocation": {"on_stale": "shrug"}}).to_string(),
            "field `revocation.on_stale`: unknown variant",
        ),
        (
            json!({"public_route": ["/x"]}).to_string(),
            "unknown field `public_route`",
        ),
        (r#"{"issuers": ["#.to_string(), "invalid configuration"),
    ];
    for (config, expected) in cases {
        let refused = Envoy::try_start(EnvoySpec::new().plugin(Plugin::raw("auth", &config)))
            .err()
            .unwrap_or_else(|| panic!("envoy accepted {config}"));
        assert!(
            refused.log.contains(expected),
            "log for {config} lacks {expected:?}:\n{}",
            refused.log
        );
    }
}

#[test]
fn starts_with_defaults_without_configuration() {
    let envoy = Envoy::start(EnvoySpec::new().plugin(Plugin::new("auth", None)));
    assert_eq!(envoy.get("/healthz").status, 200);
    // No keys: any token is refused, as is no token.
    assert_rejected(&envoy.get("/api/x"), "missing_token");
    let token = mint(jsonwebtoken::Algorithm::HS256, Some("hs"), &claims("alice"));
    let response = envoy.send(
        &meshguard_harness::Request::get("/api/x")
            .header("authorization", &format!("Bearer {token}")),
    );
    assert_rejected(&response, "unknown_kid");
}

#[test]
fn the_artifact_imports_only_what_envoy_provides() {
    let wasm = plugin_wasm("auth");
    let size = std::fs::metadata(&wasm).unwrap().len();
    assert!(size < 1_500_000, "{} is {size} bytes", wasm.display());
    let foreign: Vec<_> = imports(&wasm)
        .unwrap()
        .into_iter()
        .filter(|(module, name)| !envoy_provides(module, name))
        .collect();
    assert!(foreign.is_empty(), "imports {foreign:?}");
}
