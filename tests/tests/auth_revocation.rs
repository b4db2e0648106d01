//! Revocation at the proxy through real Envoy + meshguard-state + Redis:
//! revoking a token, a user or a session through the admin API reaches the
//! plugin's feed within a tick while requests keep flowing; a malleated
//! ECDSA form of a revoked token stays revoked; a stale feed fails closed.

mod auth_support;

use auth_support::*;
use jsonwebtoken::Algorithm;
use serde_json::json;
use std::time::Duration;

fn es256(claims: &serde_json::Value) -> String {
    mint(Algorithm::ES256, Some("ec"), claims)
}

#[test]
fn a_revoked_token_is_refused_within_a_tick_in_every_byte_form() {
    let stack = Stack::start();
    let mesh = stack.mesh(config(
        json!({"revocation": stack.revocation_config(json!({}))}),
    ));
    let claims = claims("alice");
    let token = es256(&claims);
    let other = es256(&auth_support::claims("alice"));
    let first = mesh.get_with("/api/x", &token);
    assert_eq!(first.status, 200, "{}", first.text());

    stack.admin(
        "POST",
        "/v1/revocations/token",
        Some(json!({"iss": ISSUER, "jti": claims["jti"], "exp": claims["exp"], "reason": "test"})),
    );
    let (response, took) = mesh.until_refused(&token);
    assert_rejected(&response, "revoked_token");
    eprintln!(
        "revocation reached the plugin in {took:?} (propagation_ms gauge: {})",
        mesh.stat("propagation_ms")
    );
    assert!(mesh.stat("propagation_ms") < 5000);
    assert!(took < Duration::from_secs(5), "took {took:?}");

    // The other valid ECDSA signature of the same token: same iss + jti, still revoked.
    let malleated = malleate_es256(&token);
    assert_ne!(malleated, token);
    assert_rejected(&mesh.get_with("/api/x", &malleated), "revoked_token");
    // Other tokens of the user are untouched.
    assert_eq!(mesh.get_with("/api/x", &other).status, 200);
    assert!(mesh.stat("revoked_hits") >= 2);
    assert!(mesh.stat("rejected.revoked_token") >= 2);
}

/// Each worker keeps its own set: with four workers, a revocation holds on
/// every connection (the kernel spreads them over the workers).
#[test]
fn every_worker_applies_the_revocation() {
    let stack = Stack::start();
    let probe = es256(&claims("probe"));
    let mesh = stack.mesh_workers(
        config(json!({"revocation": stack.revocation_config(json!({}))})),
        &probe,
        4,
    );
    let claims = claims("judy");
    let token = es256(&claims);
    // Every worker has synced once all of many connections pass.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while (0..40).any(|_| mesh.get_with("/api/x", &token).status != 200) {
        assert!(
            std::time::Instant::now() < deadline,
            "some worker never synced"
        );
    }
    stack.admin(
        "POST",
        "/v1/revocations/token",
        Some(json!({"iss": ISSUER, "jti": claims["jti"], "exp": claims["exp"]})),
    );
    // Within a few ticks every worker refuses it, and only ever as revoked.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answers: Vec<_> = (0..40).map(|_| mesh.get_with("/api/x", &token)).collect();
        for a in answers.iter().filter(|a| a.status != 200) {
            assert_rejected(a, "revoked_token");
        }
        if answers.iter().all(|a| a.status == 401) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a worker kept the token"
        );
    }
}

#[test]
fn revocations_made_before_the_plugin_starts_arrive_in_the_snapshot() {
    let stack = Stack::start();
    let claims = claims("dave");
    stack.admin(
        "POST",
        "/v1/revocations/token",
        Some(json!({"iss": ISSUER, "jti": claims["jti"], "exp": claims["exp"]})),
    );
    let mesh = stack.mesh(config(
        json!({"revocation": stack.revocation_config(json!({}))}),
    ));
    assert!(mesh.stat("feed_snapshots") >= 1);
    assert_rejected(&mesh.get_with("/api/x", &es256(&claims)), "revoked_token");
}

#[test]
fn revoking_a_user_cuts_off_every_older_token() {
    let stack = Stack::start();
    let mesh = stack.mesh(config(
        json!({"revocation": stack.revocation_config(json!({}))}),
    ));
    let old = [
        es256(&claims("erin")),
        mint(Algorithm::RS256, Some("rsa"), &claims("erin")),
        mint(Algorithm::EdDSA, Some("ed"), &claims("erin")),
    ];
    let bystander = es256(&claims("frank"));
    for t in &old {
        let response = mesh.get_with("/api/x", t);
        assert_eq!(response.status, 200, "{}", response.text());
    }
    let answer = stack.admin(
        "POST",
        "/v1/revocations/user",
        Some(json!({"sub": "erin", "reason": "stolen laptop"})),
    );
    let not_before = answer["revocation"]["not_before"].as_u64().unwrap();
    let (response, _) = mesh.until_refused(&old[0]);
    assert_rejected(&response, "revoked_user");
    for t in &old[1..] {
        assert_rejected(&mesh.get_with("/api/x", t), "revoked_user");
    }
    assert_eq!(mesh.get_with("/api/x", &bystander).status, 200);
    // A token issued after the cutoff's second works (one issued in it may predate it).
    let mut fresh = claims("erin");
    fresh["iat"] = json!(not_before + 1);
    assert_eq!(mesh.get_with("/api/x", &es256(&fresh)).status, 200);
}

#[test]
fn the_sixth_login_ends_the_oldest_session_and_its_token_stops_working() {
    let stack = Stack::start();
    let mesh = stack.mesh(config(
        json!({"revocation": stack.revocation_config(json!({}))}),
    ));
    let token_for = |sid: &str| {
        let mut c = claims("grace");
        c["sid"] = json!(sid);
        es256(&c)
    };
    for i in 1..=5 {
        let sid = format!("s{i}");
        stack.admin(
            "POST",
            "/v1/sessions",
            Some(json!({"user": "grace", "session_id": sid})),
        );
        let seen = mesh.upstream_saw(
            meshguard_harness::Request::get("/api/x")
                .header("authorization", &format!("Bearer {}", token_for(&sid))),
        );
        assert_eq!(seen.headers_named("x-auth-session"), vec![sid.as_str()]);
    }
    let sixth = stack.admin(
        "POST",
        "/v1/sessions",
        Some(json!({"user": "grace", "session_id": "s6"})),
    );
    assert_eq!(sixth["evicted"], json!(["s1"]));
    let (response, _) = mesh.until_refused(&token_for("s1"));
    assert_rejected(&response, "revoked_session");
    for sid in ["s2", "s6"] {
        assert_eq!(
            mesh.get_with("/api/x", &token_for(sid)).status,
            200,
            "{sid}"
        );
    }
    // Ending a session by hand works the same way.
    stack.admin("DELETE", "/v1/sessions/grace/s2", None);
    let (response, _) = mesh.until_refused(&token_for("s2"));
    assert_rejected(&response, "revoked_session");
}

#[test]
fn a_stale_feed_fails_closed() {
    let mut stack = Stack::start();
    let revocation =
        stack.revocation_config(json!({"max_staleness_ms": 1000, "on_stale": "reject503"}));
    let mesh = stack.mesh(config(json!({"revocation": revocation})));
    let token = es256(&claims("heidi"));
    assert_eq!(mesh.get_with("/api/x", &token).status, 200);
    stack.service.stop();
    let (response, took) = mesh.until_refused(&token);
    assert_eq!(response.status, 503, "{}", response.text());
    assert_eq!(response.header("retry-after"), Some("1"));
    assert_eq!(response.json()["reason"], "stale_revocations");
    assert!(
        took >= Duration::from_millis(500),
        "failed closed after only {took:?}"
    );
    assert!(mesh.stat("feed_errors") >= 1);
    // The lag gauge is refreshed on the tick.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while mesh.stat("feed_lag_ms") < 1000 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(mesh.stat("feed_lag_ms") >= 1000);
    // Public routes are unaffected.
    let health = mesh.envoy.get("/healthz");
    assert_eq!(
        health.status,
        200,
        "{}\n{}",
        health.text(),
        mesh.envoy.log()
    );
}
