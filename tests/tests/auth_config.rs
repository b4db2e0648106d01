//! Configuration through a real Envoy: a bad configuration is refused with a
//! line naming the field; no configuration at all starts with the defaults;
//! the built artifact imports only what Envoy provides.

mod auth_support;

use auth_support::*;
use meshguard_harness::envoy::assert_configs_refused;
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
            json!({"revocation": {"max_staleness_ms": 10}}).to_string(),
            "field `revocation.max_staleness_ms`: must be from 250",
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
    let cases: Vec<(&str, &str)> = cases.iter().map(|(c, e)| (c.as_str(), *e)).collect();
    assert_configs_refused("auth", &cases);
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

/// `envoy/local/auth.json` as `scripts/up` loads it: against a real
/// meshguard-state, a token from `meshguard-state token mint` with the dev
/// key passes, and revoking its user through the CLI's API takes effect.
#[test]
fn the_local_configuration_accepts_dev_tokens_and_revocations() {
    use base64::Engine;
    let stack = Stack::start();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("dev-jwt-key");
    let dev_key = "local-dev-key-0123456789abcdef-0123456789";
    std::fs::write(&key_file, dev_key).unwrap();
    let local = std::fs::read_to_string(
        meshguard_harness::paths::workspace_root().join("envoy/local/auth.json"),
    )
    .unwrap()
    .replace("${PLUGIN_SECRET}", &stack.service.plugin_secret)
    // The shipped file reads its secrets from Envoy's environment; this
    // Envoy gets them inline.
    .replace(
        r#"{"env": "MESHGUARD_PLUGIN_SECRET"}"#,
        &format!("{:?}", stack.service.plugin_secret),
    )
    .replace(
        r#"{"env": "MESHGUARD_JWT_KEY_B64URL"}"#,
        &format!(
            "{:?}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(dev_key)
        ),
    )
    .replace(
        "${DEV_JWT_KEY_B64URL}",
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(dev_key),
    );
    let config: serde_json::Value = serde_json::from_str(&local).unwrap();
    let mint = |sub: &str| {
        let out =
            std::process::Command::new(meshguard_harness::paths::service_binary("meshguard-state"))
                .args([
                    "token", "mint", "--sub", sub, "--tier", "premium", "--sid", "s-1",
                ])
                .arg("--key-file")
                .arg(&key_file)
                .output()
                .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let token = mint("alice");
    let mesh = stack.mesh_probing(config, &mint("probe"));
    let seen = mesh.upstream_saw(
        meshguard_harness::Request::get("/api/ml/x")
            .header("authorization", &format!("Bearer {token}")),
    );
    assert_eq!(seen.headers_named("x-auth-sub"), vec!["alice"]);
    assert_eq!(seen.headers_named("x-auth-tier"), vec!["premium"]);
    assert_eq!(seen.headers_named("x-auth-session"), vec!["s-1"]);
    // A token of an unknown issuer or signed with another key is refused.
    assert_rejected(
        &mesh.get_with(
            "/api/x",
            &mint_hs("alice", b"another-key-0123456789abcdef-0123"),
        ),
        "bad_signature",
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    stack.admin(
        "POST",
        "/v1/revocations/user",
        Some(json!({"sub": "alice"})),
    );
    let (response, _) = mesh.until_refused(&token);
    assert_rejected(&response, "revoked_user");
}

fn mint_hs(sub: &str, key: &[u8]) -> String {
    let mut c = claims(sub);
    c["iss"] = json!("meshguard-dev");
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &c,
        &jsonwebtoken::EncodingKey::from_secret(key),
    )
    .unwrap()
}
