//! Keys fetched from a JWKS endpoint behind an Envoy cluster: used once
//! fetched, refetched early when a token names an unknown `kid` (key
//! rotation), refreshed on the interval (a removed key stops verifying),
//! and kept when the endpoint fails.

mod auth_support;

use auth_support::*;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A JWKS endpoint whose answer the test changes: `(status, body)`.
struct JwksServer {
    port: u16,
    answer: Arc<Mutex<(u16, Value)>>,
    hits: Arc<Mutex<usize>>,
    server: Arc<tiny_http::Server>,
}

impl JwksServer {
    fn start(keys: Value) -> JwksServer {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let answer = Arc::new(Mutex::new((200, keys)));
        let hits = Arc::new(Mutex::new(0));
        let (s, a, h) = (server.clone(), answer.clone(), hits.clone());
        std::thread::spawn(move || {
            for request in s.incoming_requests() {
                let (status, body) = a.lock().unwrap().clone();
                *h.lock().unwrap() += 1;
                let _ = request.respond(
                    tiny_http::Response::from_string(body.to_string()).with_status_code(status),
                );
            }
        });
        JwksServer {
            port,
            answer,
            hits,
            server,
        }
    }

    fn serve(&self, status: u16, body: Value) {
        *self.answer.lock().unwrap() = (status, body);
    }

    fn hits(&self) -> usize {
        *self.hits.lock().unwrap()
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn jwk(kid: &str) -> Value {
    let all = keys().jwks();
    let mut key = all["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap()
        .clone();
    key["kid"] = json!(format!("{kid}-fetched"));
    key
}

/// Sends `token` until the status is `want`, for up to 10 s.
fn until_status(mesh: &Mesh, token: &str, want: u16) -> meshguard_harness::Response {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = mesh.get_with("/api/x", token);
        if response.status == want || Instant::now() > deadline {
            return response;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn fetched_keys_rotate_refresh_and_survive_a_failing_endpoint() {
    let jwks = JwksServer::start(
        json!({"keys": [jwk("ec"), {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}]}),
    );
    let mesh = Mesh::start_with(
        json!({
            "issuers": [ISSUER],
            "jwks_fetch": {"cluster": "jwks", "path": "/keys", "refresh_interval_ms": 1000,
                           "unknown_kid_min_interval_ms": 200},
        }),
        |spec| spec.cluster("jwks", jwks.port),
    );
    let ec = mint(Algorithm::ES256, Some("ec-fetched"), &claims("alice"));
    let response = until_status(&mesh, &ec, 200);
    assert_eq!(response.status, 200, "{}", response.text());

    // Rotation: a token with a new kid makes the plugin refetch early.
    jwks.serve(200, json!({"keys": [jwk("ec"), jwk("ed")]}));
    let ed = mint(Algorithm::EdDSA, Some("ed-fetched"), &claims("alice"));
    let response = until_status(&mesh, &ed, 200);
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(mesh.stat("rejected.unknown_kid") >= 1);

    // The endpoint fails: the keys are kept.
    jwks.serve(500, json!({}));
    let hits = jwks.hits();
    let deadline = Instant::now() + Duration::from_secs(10);
    while jwks.hits() == hits && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(mesh.stat("jwks_errors") >= 1);
    assert_eq!(mesh.get_with("/api/x", &ed).status, 200);

    // A key dropped from the document stops verifying, cached or not.
    jwks.serve(200, json!({"keys": [jwk("ed")]}));
    assert_rejected(&until_status(&mesh, &ec, 401), "unknown_kid");
    assert_eq!(mesh.get_with("/api/x", &ed).status, 200);
    assert!(mesh.stat("jwks_fetches") >= 3);
}
