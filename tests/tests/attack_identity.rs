//! Attacks on identity through the shipped stack: a client posing as the
//! CDN that locates it, a malformed location sent to the state service, a
//! stale revocation feed, and a flood of bad tokens.

use meshguard_harness::mesh::{Mesh, MeshOptions};
use meshguard_harness::{Request, Response};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn get(mesh: &Mesh, token: &str, extra: &[(&str, &str)]) -> Response {
    let mut request = Request::get("/api/nlp/").header("authorization", &format!("Bearer {token}"));
    for (name, value) in extra {
        request = request.header(name, value);
    }
    mesh.send(&request)
}

fn sessions(mesh: &Mesh, user: &str) -> Value {
    let out = mesh.state_cli(&["sessions", "list", user]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_client_sent_location_or_forwarded_address_is_not_believed() {
    let mut options = MeshOptions::for_test();
    options.state_args = vec!["--travel-end-session".into()];
    let mesh = Mesh::start(options);
    let paris = mesh.mint_token("mallory", "admin", json!({"sid": "m-paris"}));
    let sydney = mesh.mint_token("mallory", "admin", json!({"sid": "m-sydney"}));
    let forged = |lat: &'static str, lon: &'static str| {
        [
            ("x-forwarded-for", "198.51.100.66"),
            ("x-geo-lat", lat),
            ("x-geo-lon", lon),
        ]
    };
    assert_eq!(get(&mesh, &paris, &forged("48.8566", "2.3522")).status, 200);
    // Moments later "from Sydney": were the headers believed, this would
    // be impossible travel and end the session.
    assert_eq!(
        get(&mesh, &sydney, &forged("-33.8688", "151.2093")).status,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let list = loop {
        let list = sessions(&mesh, "mallory");
        if list["sessions"].as_array().is_some_and(|s| s.len() == 2) {
            break list;
        }
        assert!(Instant::now() < deadline, "sessions not learned: {list}");
        std::thread::sleep(Duration::from_millis(100));
    };
    for session in list["sessions"].as_array().unwrap() {
        assert_eq!(session["ip"], "127.0.0.1", "{list}");
        assert!(session.get("geo").is_none(), "{list}");
    }
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(get(&mesh, &sydney, &[]).status, 200);
}

#[test]
fn a_malformed_location_costs_the_location_not_the_report() {
    let mesh = Mesh::start(MeshOptions::for_test());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let body = json!({"reports": [
        {"user": "nina", "session_id": "n-1", "ip": "203.0.113.5", "user_agent": "ok",
         "geo": {"lat": "91; DROP", "lon": 1e308}, "first_seen_ms": now, "last_seen_ms": now},
        {"user": "nina", "session_id": "n-2", "ip": "::1\r\nx: y", "first_seen_ms": now, "last_seen_ms": now},
    ]});
    let response = Request::post("/v1/sessions/reports", body.to_string())
        .header("content-type", "application/json")
        .header("x-meshguard-secret", &mesh.state.plugin_secret)
        .send(mesh.state.port)
        .expect("meshguard-state answers");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["applied"], 2, "{}", response.text());
    let list = sessions(&mesh, "nina");
    let ids: Vec<&str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["n-1", "n-2"], "{list}");
    assert_eq!(list["sessions"][0]["ip"], "203.0.113.5");
    assert!(list["sessions"][0].get("geo").is_none());
}

#[test]
fn a_stale_revocation_feed_answers_503_with_retry_after() {
    let mut options = MeshOptions::for_test();
    options.config_patch = json!({"auth": {"revocation": {"max_staleness_ms": 1000}}});
    let mut mesh = Mesh::start(options);
    let token = mesh.mint_token("stan", "admin", json!({}));
    assert_eq!(get(&mesh, &token, &[]).status, 200);
    mesh.state.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    let response = loop {
        let response = get(&mesh, &token, &[]);
        if response.status != 200 {
            break response;
        }
        assert!(Instant::now() < deadline, "never stale");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(response.status, 503, "{}", response.text());
    assert_eq!(response.header("retry-after"), Some("1"));
    assert_eq!(response.json()["reason"], "stale_revocations");
}

#[test]
fn a_flood_of_bad_tokens_is_refused_429_once_the_client_budget_is_spent() {
    let mesh = Mesh::start(MeshOptions::for_test());
    let good = mesh.mint_token("gus", "admin", json!({}));
    // Verified and cached before the flood (each connection may land on
    // another worker, and each worker has its own cache).
    for _ in 0..12 {
        assert_eq!(get(&mesh, &good, &[]).status, 200);
    }
    let started = Instant::now();
    let mut statuses = Vec::new();
    for i in 0..200 {
        let response = get(&mesh, &format!("aaaa.bbbb.{i}"), &[]);
        statuses.push(response.status);
        if response.status == 429 {
            assert!(response.header("retry-after").is_some());
            assert_eq!(response.json()["reason"], "over_reject_budget");
        }
        // Both workers out of budget: the last ten all 429.
        if statuses.len() >= 10 && statuses[statuses.len() - 10..].iter().all(|s| *s == 429) {
            break;
        }
    }
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    // Each worker keeps its own budget: 30 at once in envoy/local/auth.json,
    // one more a second.
    let refused = statuses.iter().filter(|s| **s == 401).count() as u64;
    let allowed = 2 * (30 + started.elapsed().as_secs() + 1);
    assert!(
        refused <= allowed,
        "{refused} answered 401 (at most {allowed}): {statuses:?}"
    );
    assert!(statuses.ends_with(&[429; 10]), "{statuses:?}");
    // A token the proxy verified before still works for the same client.
    assert_eq!(get(&mesh, &good, &[]).status, 200);
}
