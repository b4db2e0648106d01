//! Erasure reaches the proxy: real Redis, meshguard-state, the Python ml
//! upstream, and Envoy running meshguard_auth.wasm synced to the state
//! service's revocation feed. A token minted before the erasure passes;
//! `meshguard-gdpr erase` revokes the user first; from the plugin's next feed
//! poll the same token gets 401 `revoked_user`, while another user's token
//! still passes. The erasure is recorded as an HMAC proof, never the id.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use meshguard_harness::gdpr::Gdpr;
use meshguard_harness::python::{UpstreamOptions, Upstreams};
use meshguard_harness::state::StateService;
use meshguard_harness::{Envoy, EnvoySpec, Plugin, Redis, Request, Response};
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ISSUER: &str = "https://issuer.gdpr.test";
const KEY: &[u8] = b"gdpr-envoy-test-hs256-key-32-bytes!!";

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HS256 token for `sub`, issued 10 s ago, valid for 10 minutes.
fn token(sub: &str) -> String {
    let now = now_s();
    let claims = json!({"iss": ISSUER, "sub": sub, "jti": format!("{sub}-{now}"),
                        "iat": now - 10, "exp": now + 600, "tier": "premium"});
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hs".into());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(KEY)).unwrap()
}

/// The auth plugin verifying `token`s and polling the revocation feed.
fn auth_config(state: &StateService) -> Value {
    json!({
        "issuers": [ISSUER],
        "jwks": {"keys": [{"kty": "oct", "kid": "hs", "alg": "HS256", "k": URL_SAFE_NO_PAD.encode(KEY)}]},
        "public_routes": ["/healthz"],
        "revocation": {
            "state": {"secret": state.plugin_secret, "timeout_ms": 1000},
            "poll_interval_ms": 100,
            "max_staleness_ms": 5000,
        },
    })
}

fn predict(envoy: &Envoy, token: &str) -> Response {
    envoy.send(
        &Request::post("/api/ml/predict", r#"{"features": [0.5, 4.0]}"#)
            .header("content-type", "application/json")
            .header("authorization", &format!("Bearer {token}")),
    )
}

/// The ml records of `user`, straight from an instance (the GDPR endpoint
/// takes the upstreams' own token, which the auth plugin would refuse).
fn ml_records(upstreams: &Upstreams, user: &str) -> usize {
    let r = upstreams
        .instance("ml", 0)
        .send(
            &Request::get(&format!("/gdpr/users/{user}"))
                .header("authorization", &format!("Bearer {}", upstreams.gdpr_token)),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["records"].as_array().map_or(0, Vec::len)
}

#[test]
fn an_erased_users_tokens_are_refused_at_envoy() {
    let redis = Redis::start();
    let state = StateService::start(&redis);
    let upstreams = Upstreams::start(
        &["ml"],
        UpstreamOptions {
            // meshguard-gdpr refuses connector tokens under 16 characters.
            gdpr_token: Some(format!("gdpr-envoy-upstream-token-{}", std::process::id())),
            ..UpstreamOptions::default()
        },
    );
    let spec = upstreams
        .add_to(EnvoySpec::new())
        .plugin(Plugin::new("auth", Some(auth_config(&state))))
        .cluster("meshguard_state", state.port);
    let envoy = Envoy::start(spec);
    let gdpr = Gdpr::new(&redis.url(), &state.url(), &state.admin_token);
    let token_file = gdpr.dir.join("upstream.token");
    std::fs::write(&token_file, &upstreams.gdpr_token).unwrap();
    gdpr.set_connectors(json!([{
        "name": "ml",
        "url": format!("http://127.0.0.1:{}/gdpr/users/{{id}}", upstreams.instance("ml", 0).port),
        "token_file": token_file,
    }]));

    let user = "carol-erased-41d2";
    let before = token(user);
    let bystander = token("dan-stays");
    // The plugin fails closed until its first feed sync: wait for a 200.
    let deadline = Instant::now() + Duration::from_secs(15);
    let first = loop {
        let r = predict(&envoy, &before);
        if r.status == 200 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(first.status, 200, "{}\n{}", first.text(), envoy.log());
    assert_eq!(predict(&envoy, &bystander).status, 200);
    // The upstream keyed its record by the verified subject.
    assert_eq!(ml_records(&upstreams, user), 1);

    let id = gdpr.verified_request("erasure", user);
    let t0 = now_s();
    // Data is erased only once the cutoff is in force at the proxy (the
    // plugin polls every 100 ms): no request admitted meanwhile writes new
    // records behind the erasure.
    let done = gdpr.ok(&["erase", &id, "--revocation-grace-ms", "1000"]);
    assert_eq!(done["request"]["status"], "completed");
    assert_eq!(done["steps"][0]["step"], "revoke");
    assert_eq!(ml_records(&upstreams, user), 0);

    // Refused from the plugin's next feed poll on (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let r = predict(&envoy, &before);
        if r.status != 200 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert_eq!(
        refused.json()["reason"],
        "revoked_user",
        "{}",
        refused.text()
    );
    assert!(refused
        .header("www-authenticate")
        .is_some_and(|c| c.contains("invalid_token")));
    // The counter may be bumped just after the reply left: poll it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while envoy.plugin_stat("auth.rejected.revoked_user") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(envoy.plugin_stat("auth.rejected.revoked_user") >= 1);
    // Not a stale feed or a broken plugin: other users pass, and the erased
    // user's request never reached the upstream again.
    assert_eq!(predict(&envoy, &bystander).status, 200);
    assert_eq!(ml_records(&upstreams, user), 0);

    // The cutoff the plugin applies came from this erasure.
    let feed: Value = ureq::get(&format!("{}/v1/revocations/feed?since=0", state.url()))
        .header("x-meshguard-secret", &state.plugin_secret)
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let cutoff = feed["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["sub"] == user)
        .expect("the user's cutoff in the feed");
    assert!(cutoff["not_before"].as_u64().unwrap() >= t0);

    // Recorded as an HMAC proof: the request row keeps no identifier.
    let status = gdpr.ok(&["request", "status", &id]);
    assert_eq!(status["subject"], Value::Null);
    let proof = &status["proof"];
    assert_eq!(proof["subject_hmac"], status["subject_mac"]);
    assert_eq!(proof["subject_hmac"].as_str().unwrap().len(), 64);
    assert_eq!(proof["proof_hmac"].as_str().unwrap().len(), 64);
    assert!(!proof.to_string().contains(user), "{proof}");
    assert_eq!(gdpr.ok(&["proof", "--user", user])[0]["valid"], true);
    let log = gdpr.ok(&["audit", "show"]).to_string();
    assert!(log.contains("erasure.completed"), "{log}");
    assert!(!log.contains(user));
    assert_eq!(gdpr.ok(&["audit", "verify"])["ok"], true);
}
