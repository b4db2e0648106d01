//! Session activity reports: the plugin samples authenticated requests with
//! a session, reports the client address and location to meshguard-state on
//! its tick, and an impossible-travel verdict that ends the session reaches
//! the proxy through the revocation feed.

mod auth_support;

use auth_support::*;
use jsonwebtoken::Algorithm;
use meshguard_harness::Request;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn impossible_travel_reported_by_the_proxy_ends_the_session() {
    let stack = Stack::start_args(&["--travel-end-session"]);
    let paris = json!({"lat": 48.8566, "lon": 2.3522});
    for sid in ["s1", "s2"] {
        stack.admin(
            "POST",
            "/v1/sessions",
            Some(json!({"user": "ivan", "session_id": sid, "ip": "192.0.2.1", "geo": paris})),
        );
    }
    let mesh = stack.mesh(config(json!({
        "revocation": stack.revocation_config(json!({})),
        "session_activity": {"sample_ratio": 1.0, "interval_ms": 100,
            "client_ip_header": "x-forwarded-for", "trusted_hops": ["127.0.0.1", "10.0.0.0/8"],
            "geo_lat_header": "x-geo-lat", "geo_lon_header": "x-geo-lon"},
    })));
    let token_for = |sid: &str| {
        let mut c = claims("ivan");
        c["sid"] = json!(sid);
        mint(Algorithm::ES256, Some("ec"), &c)
    };
    let request = |sid: &str, lat: &str, lon: &str| {
        Request::get("/api/x")
            .header("authorization", &format!("Bearer {}", token_for(sid)))
            .header("x-forwarded-for", "203.0.113.9, 10.0.0.1")
            .header("x-geo-lat", lat)
            .header("x-geo-lon", lon)
    };

    // s2 reports from Paris: plausible; the service records the address.
    assert_eq!(mesh.envoy.send(&request("s2", "48.86", "2.35")).status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = stack.admin("GET", "/v1/sessions/ivan", None);
        let s2 = list["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["session_id"] == "s2")
            .cloned()
            .unwrap();
        if s2["ip"] == "203.0.113.9" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no activity reached the service: {list}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // s1 moments later from Sydney: impossible travel, the session is ended and revoked.
    assert_eq!(
        mesh.envoy
            .send(&request("s1", "-33.8688", "151.2093"))
            .status,
        200
    );
    let (response, _) = mesh.until_refused(&token_for("s1"));
    assert_rejected(&response, "revoked_session");
    assert!(mesh.stat("activity_reported") >= 2);
    assert_eq!(mesh.stat("activity_dropped"), 0);
}
