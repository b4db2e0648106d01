//! The GDPR data path of the shipped stack (`meshguard_harness::mesh`, what
//! `scripts/up` runs): the upstreams' `/gdpr/...` endpoints are closed on the
//! public listener whatever the token, open on Envoy's `meshguard_gdpr`
//! listener to meshguard-gdpr's own credential, and an access export and an
//! erasure started through meshguard-gdpr's HTTP API (docs/gdpr.md) reach
//! all five upstreams without a connector failure.

use meshguard_harness::mesh::{Mesh, MeshOptions};
use meshguard_harness::python::SERVICES;
use meshguard_harness::{Request, Response};
use serde_json::{json, Value};
use std::path::PathBuf;

fn with_bearer(request: Request, token: &str) -> Request {
    request.header("authorization", &format!("Bearer {token}"))
}

fn delete(path: &str) -> Request {
    Request {
        method: "DELETE".into(),
        path: path.into(),
        ..Request::default()
    }
}

/// A call to meshguard-gdpr's HTTP API with its admin token.
fn api(mesh: &Mesh, method: &str, path: &str, body: Option<Value>) -> Response {
    let mut request = Request {
        method: method.into(),
        path: path.into(),
        ..Request::default()
    };
    if let Some(body) = body {
        request.body = body.to_string().into_bytes();
        request = request.header("content-type", "application/json");
    } else if method == "POST" {
        request.body = Vec::new();
    }
    with_bearer(request, &mesh.gdpr_admin_token())
        .send(mesh.gdpr_port())
        .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", mesh.logs()))
}

/// The newest code mailed for `request` (meshguard-gdpr's file outbox).
fn mailed_code(mesh: &Mesh, request: &str) -> String {
    let outbox = mesh.gdpr.dir.join("outbox");
    let mut mails: Vec<PathBuf> = std::fs::read_dir(&outbox)
        .unwrap_or_else(|e| panic!("{}: {e}", outbox.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(request))
        })
        .collect();
    mails.sort();
    let mail = mails
        .last()
        .unwrap_or_else(|| panic!("no mail for {request}"));
    let text = std::fs::read_to_string(mail).expect("mail");
    text.split(" is ")
        .nth(1)
        .unwrap_or_else(|| panic!("no code in {text}"))
        .chars()
        .take(6)
        .collect()
}

/// Files a request through the API and verifies it with the mailed code.
fn verified_request(mesh: &Mesh, kind: &str, user: &str) -> String {
    // The subject's address is kept as a contact (POST /v1/contacts/{user});
    // a meshguard-gdpr without contacts takes it with the request.
    let contact = api(
        mesh,
        "POST",
        &format!("/v1/contacts/{user}"),
        Some(json!({"email": "subject@example.org", "source": "e2e sign-up form"})),
    );
    let mut created = api(
        mesh,
        "POST",
        "/v1/requests",
        Some(json!({"kind": kind, "user": user})),
    );
    if contact.status == 404 && created.status == 400 {
        created = api(
            mesh,
            "POST",
            "/v1/requests",
            Some(json!({"kind": kind, "user": user, "email": "subject@example.org"})),
        );
    }
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"]
        .as_str()
        .expect("request id")
        .to_string();
    let code = mailed_code(mesh, &id);
    let verified = api(
        mesh,
        "POST",
        &format!("/v1/requests/{id}/verify"),
        Some(json!({"code": code})),
    );
    assert_eq!(verified.status, 200, "{}", verified.text());
    id
}

/// Leaves records about `user` in every upstream, through the public listener.
fn leave_records(mesh: &Mesh, token: &str) {
    let calls = [
        Request::post("/api/ml/predict", r#"{"features": [1.5, 2.0]}"#),
        Request::get("/api/data/market/ETH"),
        Request::post("/api/nlp/detect", r#"{"text": "bonjour tout le monde"}"#),
        Request::post(
            "/api/fraud/assess",
            r#"{"amount": 12.5, "currency": "EUR", "country": "FR"}"#,
        ),
        Request::post(
            "/api/blockchain/contracts/analyze",
            r#"{"bytecode": "0x6080604052"}"#,
        ),
    ];
    for call in calls {
        let call = with_bearer(call, token).header("content-type", "application/json");
        let response = mesh.send(&call);
        assert!(
            response.status < 500,
            "{} {}: {} {}",
            call.method,
            call.path,
            response.status,
            response.text()
        );
    }
}

/// What the upstream `service` holds about `user`, asked on the GDPR path.
fn upstream_records(mesh: &Mesh, service: &str, user: &str) -> Vec<Value> {
    let token = std::fs::read_to_string(mesh.run_dir().join("gdpr-token")).expect("gdpr-token");
    let response = with_bearer(
        Request::get(&format!("/api/{service}/gdpr/users/{user}")),
        token.trim(),
    )
    .send(mesh.gdpr_path_port())
    .expect("GDPR path");
    assert_eq!(response.status, 200, "{service}: {}", response.text());
    response.json()["records"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn gdpr_endpoints_are_closed_on_the_public_listener_and_open_on_the_gdpr_path() {
    let mesh = Mesh::start(MeshOptions::for_test());
    let user_token = mesh.mint_token("mallory", "admin", json!({"scope": "gdpr admin"}));
    let gdpr_token = std::fs::read_to_string(mesh.run_dir().join("gdpr-token"))
        .expect("gdpr-token")
        .trim()
        .to_string();
    for (service, _) in SERVICES {
        // With a valid user token the route table itself answers: 404.
        let path = format!("/api/{service}/gdpr/users/alice");
        for request in [Request::get(&path), delete(&path)] {
            let refused = mesh.send(&with_bearer(request.clone(), &user_token));
            assert_eq!(
                refused.status,
                404,
                "{} {path}: {}",
                request.method,
                refused.text()
            );
        }
        // The upstreams' own credential is no JWT: auth refuses it first.
        let refused = mesh.send(&with_bearer(Request::get(&path), &gdpr_token));
        assert_eq!(refused.status, 401, "{path}: {}", refused.text());

        // The GDPR path: the upstream's own credential, nothing else.
        let open = with_bearer(Request::get(&path), &gdpr_token)
            .send(mesh.gdpr_path_port())
            .expect("GDPR path");
        assert_eq!(open.status, 200, "{service}: {}", open.text());
        let wrong = with_bearer(Request::get(&path), &user_token)
            .send(mesh.gdpr_path_port())
            .expect("GDPR path");
        assert_eq!(wrong.status, 401, "{service}: {}", wrong.text());
        let other = with_bearer(Request::get(&format!("/api/{service}/")), &gdpr_token)
            .send(mesh.gdpr_path_port())
            .expect("GDPR path");
        assert_eq!(other.status, 404, "only /gdpr/ is routed: {}", other.text());
    }
    // Every spelling Envoy normalises to the same path is refused too (429
    // once the client has been refused too often is a refusal as well).
    for path in [
        "/api/ml//gdpr/users/alice",
        "/api/ml/./gdpr/users/alice",
        "/api/ml/x/../gdpr/users/alice",
        "/api/ml/%67dpr/users/alice",
        "/api/ml/gdpr",
    ] {
        let response = mesh.send(&with_bearer(Request::get(path), &user_token));
        assert!(
            matches!(response.status, 404 | 429),
            "GET {path} reached something: {} {}",
            response.status,
            response.text()
        );
    }
}

#[test]
fn export_and_erasure_started_as_docs_say_reach_every_upstream() {
    let mesh = Mesh::start(MeshOptions::for_test());
    let user = "gdpr-e2e-subject";
    let token = mesh.mint_token(user, "premium", json!({"sid": "gdpr-e2e-session"}));
    leave_records(&mesh, &token);
    let before: Vec<(&str, usize)> = SERVICES
        .iter()
        .map(|(service, _)| (*service, upstream_records(&mesh, service, user).len()))
        .collect();
    assert!(
        before.iter().filter(|(_, n)| *n > 0).count() >= 2,
        "the calls left records in too few upstreams: {before:?}"
    );

    // Access (Art. 15): the package holds every connector's records.
    let access = verified_request(&mesh, "access", user);
    let exported = api(
        &mesh,
        "POST",
        &format!("/v1/requests/{access}/export"),
        Some(json!({"format": "json"})),
    );
    assert_eq!(exported.status, 200, "{}\n{}", exported.text(), mesh.logs());
    let link = exported.json()["link"]
        .as_str()
        .expect("download link")
        .to_string();
    let download_path = link
        .split_once("/v1/")
        .map(|(_, rest)| format!("/v1/{rest}"))
        .expect("link path");
    let package = Request::get(&download_path)
        .send(mesh.gdpr_port())
        .expect("download");
    assert_eq!(package.status, 200, "{}", package.text());
    let package_text = package.text();
    for (service, records) in &before {
        if *records > 0 {
            assert!(
                package_text.contains(&format!("upstream.{service}")),
                "the package lacks upstream.{service}"
            );
        }
    }

    // Erasure (Art. 17): every step done, no connector failed.
    let erasure = verified_request(&mesh, "erasure", user);
    let erased = api(
        &mesh,
        "POST",
        &format!("/v1/requests/{erasure}/erase"),
        None,
    );
    assert_eq!(erased.status, 200, "{}\n{}", erased.text(), mesh.logs());
    let status = api(&mesh, "GET", &format!("/v1/requests/{erasure}"), None).json();
    assert_eq!(status["status"], "completed", "{status}");
    let steps = api(&mesh, "GET", &format!("/v1/requests/{erasure}/steps"), None).json();
    let steps_text = steps.to_string();
    for (service, _) in SERVICES {
        assert!(
            steps_text.contains(&format!("connector:{service}")),
            "no connector:{service} step: {steps_text}"
        );
    }
    assert!(
        !steps_text.contains("\"failed\""),
        "a step failed: {steps_text}"
    );
    for (service, _) in SERVICES {
        assert!(
            upstream_records(&mesh, service, user).is_empty(),
            "{service} still holds records of {user}"
        );
    }
    // The erased user's token no longer passes the proxy.
    let refused = mesh.get_as("/api/ml/", &token);
    assert_eq!(refused.status, 401, "{}", refused.text());
}
