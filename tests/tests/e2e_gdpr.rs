//! A data subject's rights through the shipped stack
//! (`meshguard_harness::mesh`, what `scripts/up` runs), started the way
//! docs/gdpr.md tells an operator: the subject files access, portability
//! and erasure requests at `/privacy/` through Envoy with their own token,
//! downloads the packages through Envoy, and the operator carries out the
//! erasure with meshguard-gdpr's API. Afterwards nothing in Redis (keys,
//! values, stream entries) and no upstream names the user, in clear or in
//! the rate limiter's form; the user's token is refused at the proxy; the
//! audit log verifies.

use meshguard_harness::mesh::{Mesh, MeshOptions};
use meshguard_harness::python::SERVICES;
use meshguard_harness::{Request, Response};
use meshguard_policy::ratelimit::client::bucket_key;
use serde_json::{json, Value};

fn with_bearer(request: Request, token: &str) -> Request {
    request.header("authorization", &format!("Bearer {token}"))
}

fn post_json(path: &str, body: Value) -> Request {
    Request::post(path, body.to_string()).header("content-type", "application/json")
}

/// meshguard-gdpr's operator API with its admin token.
fn admin(mesh: &Mesh, method: &str, path: &str, body: Option<Value>) -> Response {
    let mut request = Request {
        method: method.into(),
        path: path.into(),
        ..Request::default()
    };
    if let Some(body) = body {
        request.body = body.to_string().into_bytes();
        request = request.header("content-type", "application/json");
    }
    with_bearer(request, &mesh.gdpr_admin_token())
        .send(mesh.gdpr_port())
        .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", mesh.logs()))
}

/// Calls that leave records about the token's subject in every upstream.
fn leave_records(mesh: &Mesh, token: &str) {
    for call in [
        post_json("/api/ml/predict", json!({"features": [1.5, 2.0]})),
        Request::get("/api/data/market/ETH"),
        post_json("/api/nlp/detect", json!({"text": "bonjour tout le monde"})),
        post_json(
            "/api/fraud/assess",
            json!({"amount": 12.5, "currency": "EUR", "country": "FR"}),
        ),
        post_json(
            "/api/blockchain/contracts/analyze",
            json!({"bytecode": "0x6080604052"}),
        ),
    ] {
        let response = mesh.send(&with_bearer(call.clone(), token));
        assert!(
            response.status < 400,
            "{} {}: {} {}",
            call.method,
            call.path,
            response.status,
            response.text()
        );
    }
}

/// What the upstream `service` holds about `user` (Envoy's GDPR data path).
fn upstream_records(mesh: &Mesh, service: &str, user: &str) -> Vec<Value> {
    let token = std::fs::read_to_string(mesh.run_dir().join("gdpr-token")).expect("gdpr-token");
    let response = with_bearer(
        Request::get(&format!("/api/{service}/gdpr/users/{user}")),
        token.trim(),
    )
    .send(mesh.gdpr_path_port())
    .expect("GDPR path");
    assert_eq!(response.status, 200, "{service}: {}", response.text());
    assert_eq!(response.json()["user_id"], user);
    response.json()["records"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Files a request as the subject, through the public listener.
fn file(mesh: &Mesh, token: &str, kind: &str) -> String {
    let filed = mesh.send(&with_bearer(
        post_json("/privacy/requests", json!({ "kind": kind })),
        token,
    ));
    assert_eq!(filed.status, 201, "{}\n{}", filed.text(), mesh.logs());
    let request = filed.json();
    assert_eq!(request["status"], "verified", "{request}");
    request["id"].as_str().expect("id").to_string()
}

/// Exports a request as the subject and downloads the package through Envoy.
fn download(mesh: &Mesh, token: &str, id: &str, format: &str) -> String {
    let exported = mesh.send(&with_bearer(
        post_json(
            &format!("/privacy/requests/{id}/export"),
            json!({ "format": format }),
        ),
        token,
    ));
    assert_eq!(exported.status, 200, "{}\n{}", exported.text(), mesh.logs());
    let link = exported.json()["link"].as_str().expect("link").to_string();
    assert!(link.starts_with("/privacy/packages/"), "{link}");
    let package = mesh.send(&with_bearer(Request::get(&link), token));
    assert_eq!(package.status, 200, "{}", package.text());
    // Personal data: a download, never stored by a cache on the way.
    let content_type = match format {
        "csv" => "text/csv; charset=utf-8",
        "xml" => "application/xml",
        _ => "application/json",
    };
    assert_eq!(package.header("content-type"), Some(content_type));
    assert_eq!(package.header("cache-control"), Some("no-store"));
    assert_eq!(package.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        package.header("content-disposition"),
        Some(format!("attachment; filename=\"personal-data.{format}\"").as_str())
    );
    package.text()
}

/// Every key, value and stream entry in Redis, as text.
fn redis_dump(mesh: &Mesh) -> Vec<(String, String)> {
    let mut con = redis::Client::open(mesh.redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    keys.sort();
    keys.into_iter()
        .map(|key| {
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut con).unwrap();
            let command: &[&str] = match kind.as_str() {
                "string" => &["GET"],
                "hash" => &["HGETALL"],
                "set" => &["SMEMBERS"],
                "zset" => &["ZRANGE", "0", "-1"],
                "list" => &["LRANGE", "0", "-1"],
                "stream" => &["XRANGE", "-", "+"],
                other => panic!("{key}: type {other}"),
            };
            let mut cmd = redis::cmd(command[0]);
            cmd.arg(&key);
            for a in &command[1..] {
                cmd.arg(*a);
            }
            let value: redis::Value = cmd.query(&mut con).unwrap();
            (key, format!("{value:?}"))
        })
        .collect()
}

#[test]
fn a_subject_exports_and_is_erased_across_redis_and_every_upstream() {
    let mesh = Mesh::start(MeshOptions::for_test());
    let user = "e2e-gdpr-subject";
    let limited = bucket_key("sub", user);
    let token = mesh.mint_token(user, "premium", json!({"sid": "e2e-gdpr-session"}));
    leave_records(&mesh, &token);
    // Another user, whose data must survive.
    let other = "e2e-gdpr-bystander";
    let other_token = mesh.mint_token(other, "premium", json!({"sid": "bystander-session"}));
    leave_records(&mesh, &other_token);
    let held: Vec<(&str, usize)> = SERVICES
        .iter()
        .map(|(s, _)| (*s, upstream_records(&mesh, s, user).len()))
        .collect();
    assert!(
        held.iter().filter(|(_, n)| *n > 0).count() >= 3,
        "the calls left records in too few upstreams: {held:?}"
    );
    assert!(
        redis_dump(&mesh).iter().any(|(k, _)| k.contains(&limited)),
        "the rate limiter keeps the user under {limited}"
    );

    // Access (Art. 15) and portability (Art. 20), by the subject, through Envoy.
    let access = file(&mesh, &token, "access");
    let package = download(&mesh, &token, &access, "json");
    let package: Value = serde_json::from_str(&package).expect("JSON package");
    assert_eq!(package["subject"], user);
    let categories: Vec<&str> = package["categories"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["category"].as_str())
        .collect();
    for (service, n) in &held {
        if *n > 0 {
            assert!(
                categories.contains(&format!("upstream.{service}").as_str()),
                "no upstream.{service} in {categories:?}"
            );
        }
    }
    assert!(categories.contains(&"rate_limits"), "{categories:?}");
    let portability = file(&mesh, &token, "portability");
    let csv = download(&mesh, &token, &portability, "csv");
    assert!(csv.starts_with("section,source,category,location,field,value"));
    assert!(csv.contains(user));
    // Someone else's token does not open the subject's request.
    let peek = mesh.send(&with_bearer(
        Request::get(&format!("/privacy/requests/{access}")),
        &other_token,
    ));
    assert_eq!(peek.status, 404, "{}", peek.text());

    // Erasure (Art. 17): filed by the subject, carried out by the operator.
    let erasure = file(&mesh, &token, "erasure");
    let erased = admin(
        &mesh,
        "POST",
        &format!("/v1/requests/{erasure}/erase"),
        None,
    );
    assert_eq!(erased.status, 200, "{}\n{}", erased.text(), mesh.logs());
    let erased = erased.json();
    assert_eq!(erased["request"]["status"], "completed", "{erased}");
    for step in erased["steps"].as_array().unwrap() {
        assert!(
            matches!(step["status"].as_str(), Some("done" | "retained")),
            "{step}"
        );
    }

    // No upstream names the user any more; the bystander's records stay.
    for (service, _) in SERVICES {
        assert_eq!(
            upstream_records(&mesh, service, user),
            Vec::<Value>::new(),
            "{service} still holds the erased user's records"
        );
    }
    assert!(SERVICES
        .iter()
        .any(|(s, _)| !upstream_records(&mesh, s, other).is_empty()));

    // The user's token is refused at the proxy.
    let refused = mesh.send(&with_bearer(Request::get("/api/ml/"), &token));
    assert_eq!(refused.status, 401, "{}", refused.text());

    // Nothing in Redis names the user, in clear or in the rate limiter's
    // form, but the not-before cutoff that keeps the token refused (a field
    // of mg:{rev}:users, removed by `sweep` once no token can be valid).
    // The refused request above may have been counted per client address
    // (`ip:`), which names no user.
    for (key, value) in redis_dump(&mesh) {
        assert!(!key.contains(user), "key {key} names the erased user");
        let mut value = value;
        if key == "mg:{rev}:users" {
            value = value.replacen(user, "", 1);
        }
        assert!(
            !value.contains(user) && !value.contains(&limited),
            "{key} still names the erased user: {value}"
        );
    }

    // The audit log verifies.
    let verified = admin(&mesh, "GET", "/v1/audit/verify", None);
    assert_eq!(verified.status, 200, "{}", verified.text());
    assert_eq!(verified.json()["ok"], true, "{}", verified.text());
}
