//! `meshguard-gdpr serve`, the HTTP API, against real Redis and
//! meshguard-state: the admin token guards every operation (missing, wrong
//! or the wrong scheme: 401, nothing done); a request goes create →
//! send-code (codes read from the outbox) → verify → export, the package is
//! downloaded through its link without auth and parsed; a package past its
//! `--package-ttl-s` answers 404 and `prune-packages` deletes it.

use meshguard_harness::gdpr::{Gdpr, GdprServer};
use meshguard_harness::state::StateService;
use meshguard_harness::Redis;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One call; `auth` is the whole Authorization header, if any.
fn call(method: &str, url: &str, auth: Option<&str>, body: Option<Value>) -> Answer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let request = request
        .header("content-type", "application/json")
        .body(body.map(|b| b.to_string()).unwrap_or_default())
        .unwrap();
    let mut response = agent
        .run(request)
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    Answer {
        status: response.status().as_u16(),
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

struct Api<'a>(&'a GdprServer);

impl Api<'_> {
    fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let auth = format!("Bearer {}", self.0.admin_token);
        call(
            method,
            &format!("{}{path}", self.0.url()),
            Some(&auth),
            body,
        )
    }

    #[track_caller]
    fn ok(&self, method: &str, path: &str, body: Option<Value>, want: u16) -> Value {
        let a = self.admin(method, path, body);
        assert_eq!(a.status, want, "{method} {path}: {}", a.body);
        a.body
    }

    fn anonymous(&self, method: &str, path: &str, auth: Option<&str>) -> Answer {
        let body = (method == "POST").then(|| json!({"kind": "access", "user": "mallory"}));
        call(method, &format!("{}{path}", self.0.url()), auth, body)
    }
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An RFC 3339 time as Unix seconds (GNU date parses it).
fn epoch_s(rfc3339: &str) -> i64 {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", rfc3339, "+%s"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("date cannot read {rfc3339}"))
}

/// The package token of a download link.
fn package_token(link: &str) -> String {
    link.rsplit_once("/v1/packages/")
        .map(|(_, t)| t.to_string())
        .unwrap_or_else(|| panic!("not a package link: {link}"))
}

#[test]
fn the_http_api_takes_a_request_from_filing_to_an_expiring_download() {
    let redis = Redis::start();
    let state = StateService::start(&redis);
    let gdpr = Gdpr::new(&redis.url(), &state.url(), &state.admin_token);
    let server = gdpr.serve(&[]);
    let api = Api(&server);
    let user = "erin-serve";

    // Without the admin token nothing happens.
    let wrong = format!("Bearer {}x", server.admin_token);
    let basic = format!("Basic {}", server.admin_token);
    for (method, path) in [
        ("GET", "/v1/requests"),
        ("POST", "/v1/requests"),
        ("GET", "/v1/audit/verify"),
    ] {
        for auth in [None, Some(wrong.as_str()), Some(basic.as_str())] {
            let a = api.anonymous(method, path, auth);
            assert_eq!(a.status, 401, "{method} {path} with {auth:?}: {}", a.body);
            assert_eq!(a.body["error"]["code"], "unauthorized");
        }
    }
    assert_eq!(api.ok("GET", "/v1/requests", None, 200), json!([]));
    assert_eq!(
        call("GET", &format!("{}/healthz", server.url()), None, None).status,
        200
    );

    // Some data to export: a consent, recorded through the API.
    api.ok(
        "POST",
        &format!("/v1/consents/{user}"),
        Some(json!({"purpose": "analytics", "granted": true, "notice_version": "v4", "method": "api"})),
        200,
    );

    // The address comes from the subject's records, never from the request.
    api.ok(
        "POST",
        &format!("/v1/contacts/{user}"),
        Some(json!({"email": "erin@example.org", "source": "account 17"})),
        200,
    );
    let typed = api.admin(
        "POST",
        "/v1/requests",
        Some(json!({"kind": "access", "user": user, "email": "attacker@example.org"})),
    );
    assert_eq!(typed.status, 400, "{}", typed.body);
    // File → send-code → verify.
    let created = api.ok(
        "POST",
        "/v1/requests",
        Some(json!({"kind": "access", "user": user})),
        201,
    );
    let id = created["id"].as_str().unwrap().to_string();
    let duplicate = api.admin(
        "POST",
        "/v1/requests",
        Some(json!({"kind": "access", "user": user})),
    );
    assert_eq!(duplicate.status, 409, "{}", duplicate.body);
    let unverified = api.admin(
        "POST",
        &format!("/v1/requests/{id}/export"),
        Some(json!({"format": "json"})),
    );
    assert_eq!(unverified.status, 409, "{}", unverified.body);
    let first_code = gdpr.code_for(&id);
    api.ok("POST", &format!("/v1/requests/{id}/send-code"), None, 200);
    let code = gdpr.code_for(&id);
    if code != first_code {
        let old = api.admin(
            "POST",
            &format!("/v1/requests/{id}/verify"),
            Some(json!({"code": first_code})),
        );
        assert!(
            old.status == 400 || old.status == 409,
            "the replaced code was accepted: {} {}",
            old.status,
            old.body
        );
    }
    let bad_body = api.admin(
        "POST",
        &format!("/v1/requests/{id}/verify"),
        Some(json!({"cod": code})),
    );
    assert_eq!(bad_body.status, 400, "{}", bad_body.body);
    let verified = api.ok(
        "POST",
        &format!("/v1/requests/{id}/verify"),
        Some(json!({"code": code})),
        200,
    );
    assert_eq!(verified["status"], "verified");

    // Export, then download by link without any credentials.
    let exported = api.ok(
        "POST",
        &format!("/v1/requests/{id}/export"),
        Some(json!({"format": "json"})),
        200,
    );
    let link = exported["link"].as_str().unwrap().to_string();
    assert!(link.starts_with(&server.url()), "{link}");
    let left = epoch_s(exported["expires_at"].as_str().unwrap()) - now_s();
    assert!(
        (7 * 86_400 - 300..=7 * 86_400).contains(&left),
        "valid for {left} s, not 7 days"
    );
    let download = call("GET", &link, None, None);
    assert_eq!(download.status, 200, "{}", download.body);
    assert_eq!(download.header("content-type"), Some("application/json"));
    assert_eq!(download.header("cache-control"), Some("no-store"));
    let package = &download.body;
    assert_eq!(package["subject"], user);
    assert_eq!(package["request_id"], id.as_str());
    let consent = package["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["category"] == "consents" && r["field"] == "analytics")
        .unwrap_or_else(|| panic!("no consent record in {package}"));
    let consent: Value = serde_json::from_str(consent["value"].as_str().unwrap()).unwrap();
    assert_eq!(
        (
            consent["granted"].as_bool(),
            consent["notice_version"].as_str()
        ),
        (Some(true), Some("v4"))
    );
    assert_eq!(package["rights"].as_array().unwrap().len(), 8);
    assert_eq!(
        api.ok("GET", &format!("/v1/requests/{id}"), None, 200)["status"],
        "completed"
    );
    // Unknown and malformed package tokens look the same: 404.
    for token in ["0".repeat(64), "not-a-token".into()] {
        let a = call(
            "GET",
            &format!("{}/v1/packages/{token}", server.url()),
            None,
            None,
        );
        assert_eq!(a.status, 404, "{token}: {}", a.body);
    }

    // A package with a 1 s lifetime (the CLI shares the database): its
    // link dies, `prune-packages` deletes the file; the 7-day one stays.
    for ttl in ["0", "604801"] {
        let refused = gdpr.run(&["export", &id, "--format", "csv", "--package-ttl-s", ttl]);
        assert_eq!(refused.status, 2, "ttl {ttl}: {}", refused.stdout);
        assert!(
            refused.stderr.contains("--package-ttl-s"),
            "{}",
            refused.stderr
        );
    }
    let short = gdpr.ok(&["export", &id, "--format", "csv", "--package-ttl-s", "1"]);
    let short_path = std::path::PathBuf::from(short["path"].as_str().unwrap());
    assert!(short_path.exists());
    let short_link = format!(
        "{}/v1/packages/{}",
        server.url(),
        package_token(short["link"].as_str().unwrap())
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let gone = loop {
        let a = call("GET", &short_link, None, None);
        if a.status != 200 || Instant::now() > deadline {
            break a;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(gone.status, 404, "{}", gone.body);
    assert_eq!(gone.body["error"]["code"], "not_found");
    assert_eq!(gdpr.ok(&["prune-packages"])["deleted"], 1);
    assert!(
        !short_path.exists(),
        "the expired package file is still there"
    );
    assert_eq!(call("GET", &link, None, None).status, 200);

    let log = api.ok("GET", "/v1/audit/verify", None, 200);
    assert_eq!(log["ok"], true, "{log}");
    let shown = gdpr.ok(&["audit", "show"]).to_string();
    assert!(shown.contains("packages.pruned"));
    assert!(!shown.contains(user));
    drop(server);
}
