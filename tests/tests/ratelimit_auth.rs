//! The rate limiter behind the auth plugin, as `scripts/up` chains them:
//! identity comes from verified tokens only; identity headers a client
//! sends itself are stripped by auth and never pick a key or a tier.

mod auth_support;
mod ratelimit_support;

use auth_support::{claims, kid_for, mint};
use jsonwebtoken::Algorithm;
use meshguard_harness::{Envoy, EnvoySpec, Plugin, Request};
use ratelimit_support::{assert_limited, count, statuses, CostUpstream};
use serde_json::json;

#[test]
fn spoofed_identity_headers_are_not_trusted_and_token_tiers_apply() {
    let upstream = CostUpstream::start();
    let envoy = Envoy::start(
        EnvoySpec::new()
            .plugin(Plugin::new("auth", Some(auth_support::config(json!({})))))
            .plugin(Plugin::new("ratelimit", Some(json!({}))))
            .cluster("upstream", upstream.port)
            .route("/api/", "upstream")
            .route("/public/", "upstream"),
    );

    // An anonymous client claiming to be an admin is limited by address, as free.
    let spoofed = Request::get("/public/docs")
        .header("x-auth-sub", "admin")
        .header("x-auth-tier", "admin");
    let got = statuses(&envoy, &spoofed, 11);
    assert_eq!(count(&got[..10], 200), 10, "{got:?}");
    let refused = envoy.send(&spoofed);
    assert_limited(&refused, "minute");
    assert_eq!(refused.json()["tier"], "free");
    assert_eq!(envoy.plugin_stat("ratelimit.admin.allowed"), 0);

    // A verified premium token: its own key, premium limits (50 a minute).
    let token = mint(
        Algorithm::HS256,
        Some(kid_for(Algorithm::HS256)),
        &claims("pat"),
    );
    let premium = Request::get("/api/data/rows")
        .header("authorization", &format!("Bearer {token}"))
        .header("x-auth-tier", "admin");
    let got = statuses(&envoy, &premium, 51);
    assert_eq!(count(&got[..50], 200), 50, "{got:?}");
    let refused = envoy.send(&premium);
    assert_limited(&refused, "minute");
    assert_eq!(refused.json()["tier"], "premium");
    assert_eq!(envoy.plugin_stat("ratelimit.premium.allowed"), 50);
}
