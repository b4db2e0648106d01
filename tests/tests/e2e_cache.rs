//! Envoy's HTTP cache in the shipped stack (`meshguard_harness::mesh`, what
//! `scripts/up` runs): after the Meshguard chain, so a cached answer is still
//! authenticated and charged; shared answers only, per-user ones never; a
//! write seen within the documented max-age; revalidation by ETag with a
//! 304; never an error served from the cache; and the proxy's own answers
//! (404 for an unknown path) intact. docs/upstreams.md,
//! "Caching", says which endpoints are cacheable and why.

use meshguard_harness::mesh::{Mesh, MeshOptions};
use meshguard_harness::{Request, Response};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// GET /api/ml/model and GET /api/ml/predict: `max-age=2` (ml.py's
/// MODEL_MAX_AGE), and ages count in whole seconds from the upstream's
/// `date` header: a write is seen within 3 s.
const WRITE_SEEN_WITHIN: Duration = Duration::from_secs(3);

struct Stack {
    mesh: Mesh,
}

impl Stack {
    fn start() -> Stack {
        Stack {
            mesh: Mesh::start(MeshOptions::for_test()),
        }
    }

    /// A token for `sub` in the admin tier: 5,000 tokens a minute, so only
    /// the test that is about charging ever meets the limiter.
    fn token(&self, sub: &str) -> String {
        self.mesh.mint_token(sub, "admin", json!({}))
    }

    fn get(&self, path: &str, token: &str) -> Response {
        self.send(Request::get(path), token)
    }

    /// A GET whose answer Envoy stores: returns once the file-system cache
    /// has written the entry (its `size_count` grew), which happens in the
    /// background after the answer went out.
    fn get_stored(&self, path: &str, token: &str) -> Response {
        let before = self.cache_gauge("cache.size_count");
        let response = self.get(path, token);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.cache_gauge("cache.size_count") <= before {
            assert!(
                Instant::now() < deadline,
                "{path} was not stored: {:?}",
                response.headers
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        response
    }

    /// A gauge of the file-system cache, e.g. `cache.size_count`.
    fn cache_gauge(&self, name: &str) -> u64 {
        self.mesh
            .envoy
            .stats()
            .iter()
            .filter(|(stat, _)| stat.starts_with(&format!("{name}.")))
            .map(|(_, value)| value)
            .sum()
    }

    fn send(&self, request: Request, token: &str) -> Response {
        self.mesh
            .send(&request.header("authorization", &format!("Bearer {token}")))
    }

    /// Requests Envoy sent to `service`'s hosts (health checks are not counted).
    fn upstream_requests(&self, service: &str) -> u64 {
        self.stat(&format!("cluster.{service}.upstream_rq_total"))
    }

    fn stat(&self, name: &str) -> u64 {
        self.mesh.envoy.stats().get(name).copied().unwrap_or(0)
    }

    /// The file-system cache's `cache.event.cache_path.<dir>.event_type.<event>`.
    fn cache_events(&self, event: &str) -> u64 {
        let suffix = format!(".event_type.{event}");
        self.mesh
            .envoy
            .stats()
            .iter()
            .filter(|(name, _)| name.starts_with("cache.event.") && name.ends_with(&suffix))
            .map(|(_, value)| value)
            .sum()
    }
}

fn ok(response: &Response, what: &str) -> Value {
    assert_eq!(response.status, 200, "{what}: {}", response.text());
    response.json()
}

/// Envoy's cache adds `age` to what it serves from the cache.
fn from_cache(response: &Response) -> bool {
    response.header("age").is_some()
}

#[test]
fn a_hit_follows_a_miss_and_is_still_authenticated_and_charged() {
    let stack = Stack::start();
    let token = stack.token("alice");
    let before = stack.upstream_requests("data");
    let (hits, misses) = (stack.cache_events("hit"), stack.cache_events("miss"));

    let first = stack.get_stored("/api/data/market/HIT", &token);
    let body = ok(&first, "miss");
    assert!(!from_cache(&first), "the first answer is the upstream's");
    assert_eq!(
        first.header("cache-control"),
        Some("public, max-age=2"),
        "data.py's QUOTE_MAX_AGE"
    );
    let second = stack.get("/api/data/market/HIT", &token);
    assert_eq!(ok(&second, "hit"), body);
    assert!(
        from_cache(&second),
        "served from the cache: {:?}",
        second.headers
    );
    assert_eq!(
        stack.upstream_requests("data") - before,
        1,
        "one request reached the upstream"
    );
    assert_eq!(stack.cache_events("miss") - misses, 1);
    assert_eq!(stack.cache_events("hit") - hits, 1);
    // The chain ran on the hit too: the rate limiter's headers are there.
    assert!(second.header("ratelimit").is_some(), "{:?}", second.headers);

    // Auth runs before the cache: no token, no cached answer.
    let anonymous = stack.mesh.send(&Request::get("/api/data/market/HIT"));
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    let forged = stack.send(Request::get("/api/data/market/HIT"), "not-a-token");
    assert_eq!(forged.status, 401, "{}", forged.text());

    // The rate limiter runs before the cache: hits are charged. The free
    // tier allows 10 tokens a minute; a data request costs 1.
    let free = stack.mesh.mint_token("frugal", "free", json!({}));
    let statuses: Vec<u16> = (0..11)
        .map(|_| stack.get("/api/data/market/HIT", &free).status)
        .collect();
    assert_eq!(statuses[..10], [200; 10], "{statuses:?}");
    assert_eq!(statuses[10], 429, "the 11th cached answer is refused");
    assert_eq!(
        stack.upstream_requests("data") - before,
        1,
        "all of them from the cache"
    );
}

#[test]
fn no_answer_reaches_another_user_with_the_cache_warm() {
    let stack = Stack::start();
    let (alice, bob) = (stack.token("alice"), stack.token("bob"));
    let before = stack.upstream_requests("ml");
    // Warm the cache with a shared answer so the same URLs below find entries.
    ok(&stack.get_stored("/api/data/market/ISO", &alice), "warm");
    for round in 0..3 {
        for (name, token) in [("alice", &alice), ("bob", &bob)] {
            // GET /api/ml/ answers with what the chain told the upstream,
            // identity included: a per-user answer, never stored.
            let response = stack.get("/api/ml/", token);
            let body = ok(&response, "per-user");
            assert_eq!(
                body["meshguard_headers"]["x-auth-sub"], name,
                "round {round}: {name} got {body}"
            );
            assert!(
                !from_cache(&response),
                "round {round}: {:?}",
                response.headers
            );
            assert_eq!(response.header("cache-control"), Some("no-store"));
            // A client-sent identity header is no key into anyone's answer.
            let spoofed = stack.send(
                Request::get("/api/ml/").header("x-auth-sub", "mallory"),
                token,
            );
            assert_eq!(
                ok(&spoofed, "spoofed")["meshguard_headers"]["x-auth-sub"],
                name
            );
            // The shared answer is the same for both, from the cache.
            let shared = stack.get("/api/data/market/ISO", token);
            ok(&shared, "shared");
            assert!(
                from_cache(&shared),
                "round {round} {name}: {:?}",
                shared.headers
            );
        }
    }
    // The ml upstream saw every per-user request (none came from the cache).
    assert_eq!(stack.upstream_requests("ml") - before, 12);
}

#[test]
fn a_write_is_seen_within_max_age_and_no_cache_revalidates() {
    let stack = Stack::start();
    let token = stack.token("alice");
    let version = |r: &Response| ok(r, "read")["model_version"].as_u64();
    assert_eq!(
        ok(&stack.get_stored("/api/ml/model", &token), "model")["version"],
        0
    );
    let predict = "/api/ml/predict?features=1.5,2";
    assert_eq!(version(&stack.get_stored(predict, &token)), Some(0));
    let cached = stack.get(predict, &token);
    assert!(from_cache(&cached), "{:?}", cached.headers);

    let train = stack.send(
        Request::post(
            "/api/ml/train",
            r#"{"samples": [{"features": [1, 0], "label": 1}, {"features": [0, 1], "label": 0}]}"#,
        )
        .header("content-type", "application/json"),
        &token,
    );
    assert_eq!(ok(&train, "train")["model_version"], 1);
    let trained = Instant::now();

    // A client's `Cache-Control: no-cache` makes Envoy ask the upstream.
    let fresh = stack.send(
        Request::get("/api/ml/model").header("cache-control", "no-cache"),
        &token,
    );
    assert_eq!(ok(&fresh, "no-cache")["version"], 1);

    // Everyone else sees the new model within max-age.
    loop {
        let seen = version(&stack.get(predict, &token));
        if seen == Some(1) {
            break;
        }
        assert_eq!(seen, Some(0));
        assert!(
            trained.elapsed() < WRITE_SEEN_WITHIN + Duration::from_millis(300),
            "still the old model {:?} after the write",
            trained.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let model = stack.get("/api/ml/model", &token);
    assert_eq!(ok(&model, "model")["version"], 1);
}

#[test]
fn a_stale_entry_is_revalidated_with_a_304() {
    let stack = Stack::start();
    let token = stack.token("alice");
    let first = stack.get_stored("/api/fraud/rules", &token);
    let body = ok(&first, "rules");
    let etag = first.header("etag").expect("an etag").to_string();
    let before = (
        stack.upstream_requests("fraud"),
        stack.stat("cluster.fraud.upstream_rq_304"),
    );

    // The entry is fresh for 60 s; no-cache makes Envoy revalidate it now:
    // If-None-Match upstream, 304 back, the stored body to the client.
    let revalidated = stack.send(
        Request::get("/api/fraud/rules").header("cache-control", "no-cache"),
        &token,
    );
    assert_eq!(ok(&revalidated, "revalidated"), body);
    assert_eq!(
        (
            stack.upstream_requests("fraud") - before.0,
            stack.stat("cluster.fraud.upstream_rq_304") - before.1
        ),
        (1, 1),
        "one conditional request, answered 304"
    );
    let hit = stack.get("/api/fraud/rules", &token);
    assert_eq!(ok(&hit, "hit"), body);
    assert!(from_cache(&hit));
    assert_eq!(stack.upstream_requests("fraud") - before.0, 1);

    // Past max-age, Envoy revalidates on its own (market quotes: 2 s; ages
    // are whole seconds, from the upstream's one-second `date`).
    let quote = ok(&stack.get_stored("/api/data/market/REV", &token), "quote");
    std::thread::sleep(Duration::from_millis(3_300));
    let before_304 = stack.stat("cluster.data.upstream_rq_304");
    let again = stack.get("/api/data/market/REV", &token);
    assert_eq!(ok(&again, "after max-age"), quote);
    assert_eq!(
        stack.stat("cluster.data.upstream_rq_304") - before_304,
        1,
        "{:?} 200s: {}",
        again.headers,
        stack.stat("cluster.data.upstream_rq_200")
    );

    // A client's own conditional request gets the upstream's 304.
    let conditional = stack.send(
        Request::get("/api/fraud/rules").header("if-none-match", &etag),
        &token,
    );
    assert_eq!(conditional.status, 304, "{}", conditional.text());
}

#[test]
fn an_error_is_never_served_from_the_cache() {
    let stack = Stack::start();
    let token = stack.token("alice");
    let before = stack.upstream_requests("data");
    // 400 and 404 from the upstream: each one reaches it.
    for path in ["/api/data/market/lower", "/api/data/no-such-route"] {
        for _ in 0..2 {
            let response = stack.get(path, &token);
            assert!(
                [400, 404].contains(&response.status),
                "{path}: {}",
                response.text()
            );
            assert!(!from_cache(&response), "{path}: {:?}", response.headers);
            assert_eq!(response.header("cache-control"), Some("no-store"));
        }
    }
    assert_eq!(stack.upstream_requests("data") - before, 4);

    // Both hosts failing: a 503 (after retries), then healed: the answer
    // comes from the upstream, not a stored 503.
    for i in 0..2 {
        stack
            .mesh
            .upstreams
            .instance("data", i)
            .fault(json!({"mode": "error", "status": 503}));
    }
    let failed = stack.get("/api/data/market/ERR", &token);
    assert_eq!(failed.status, 503, "{}", failed.text());
    for i in 0..2 {
        stack.mesh.upstreams.instance("data", i).heal();
    }
    // Outlier detection may have ejected a host; the other answers.
    let healed = stack.get_stored("/api/data/market/ERR", &token);
    assert_eq!(healed.status, 200, "{}", healed.text());
    assert!(!from_cache(&healed), "{:?}", healed.headers);
    let cached = stack.get("/api/data/market/ERR", &token);
    assert!(
        from_cache(&cached),
        "the 200 is cached: {:?}",
        cached.headers
    );
}

#[test]
fn the_proxys_own_answers_keep_their_body_with_the_cache_on() {
    let stack = Stack::start();
    let token = stack.token("alice");
    // Envoy's direct responses after the chain: an unknown path, and an
    // upstream's data-subject endpoint (never public).
    for path in ["/no-such-path", "/api/ml/gdpr/users/alice"] {
        let response = stack.get(path, &token);
        assert_eq!(response.status, 404, "{path}: {:?}", response.headers);
        assert_eq!(
            response.header("content-type"),
            Some("application/json"),
            "{path}: {:?}",
            response.headers
        );
        assert_eq!(response.json(), json!({"error": "no route"}), "{path}");
    }
}
