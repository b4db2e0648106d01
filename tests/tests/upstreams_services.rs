//! The five Python services through Envoy's `/api/<service>/` routes: their
//! answers, their 4xx on malformed input, and the GDPR export/erase of the
//! per-user records they keep.

mod upstreams_support;

use meshguard_harness::http::{Request, Response};
use meshguard_harness::python::UpstreamOptions;
use serde_json::{json, Value};
use upstreams_support::{fast, served_by, Mesh};

fn post(mesh: &Mesh, path: &str, body: Value, user: Option<&str>) -> Response {
    let mut request =
        Request::post(path, body.to_string()).header("content-type", "application/json");
    if let Some(user) = user {
        request = request.header("x-auth-sub", user);
    }
    mesh.send(&request).expect("through envoy")
}

#[track_caller]
fn ok(response: Response) -> Value {
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()
}

fn gdpr_request(method: &str, service: &str, user: &str, token: &str) -> Request {
    Request {
        method: method.into(),
        path: format!("/api/{service}/gdpr/users/{user}"),
        ..Request::default()
    }
    .header("authorization", &format!("Bearer {token}"))
}

/// Through Envoy's GDPR data-path listener, as meshguard-gdpr calls.
fn gdpr(mesh: &Mesh, method: &str, service: &str, user: &str, token: &str) -> Response {
    gdpr_request(method, service, user, token)
        .send(mesh.gdpr_port)
        .expect("through envoy's gdpr listener")
}

#[test]
fn every_service_answers_through_envoy_and_keeps_and_erases_user_records() {
    let services = ["ml", "nlp", "fraud", "data", "blockchain"];
    let mesh = Mesh::start(&services, fast(), UpstreamOptions::default());
    let alice = Some("alice");

    for service in services {
        let info = mesh.get(&format!("/api/{service}/"));
        assert_eq!(info.status, 200, "{service}: {}", info.text());
        assert_eq!(info.json()["service"], service);
        assert!(served_by(&info).starts_with(&format!("{service}@")));
    }

    let trained = ok(post(
        &mesh,
        "/api/ml/train",
        json!({"samples": [
            {"features": [2.0, 0.0], "label": 1}, {"features": [1.5, 0.2], "label": 1},
            {"features": [-2.0, 0.1], "label": 0}, {"features": [-1.0, 0.3], "label": 0}
        ], "epochs": 50, "learning_rate": 0.5}),
        alice,
    ));
    assert!(trained["model_version"].as_u64() >= Some(1));
    let high = ok(post(
        &mesh,
        "/api/ml/predict",
        json!({"features": [3.0, 0.0]}),
        alice,
    ));
    let low = ok(post(
        &mesh,
        "/api/ml/predict",
        json!({"features": [-3.0, 0.0]}),
        alice,
    ));
    assert_eq!(
        (high["label"].as_u64(), low["label"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        high["model_version"], trained["model_version"],
        "model shared by both instances"
    );

    let detected = ok(post(
        &mesh,
        "/api/nlp/detect",
        json!({"text": "der Hund und die Katze"}),
        alice,
    ));
    assert_eq!(detected["language"], "de");
    let translated = ok(post(
        &mesh,
        "/api/nlp/translate",
        json!({"text": "hello world", "target": "fr"}),
        alice,
    ));
    assert_eq!(translated["translation"], "bonjour monde");
    let batch = ok(post(
        &mesh,
        "/api/nlp/batch",
        json!({"items": [{"op": "detect", "text": "hola mundo"}, {"op": "shout", "text": "x"}]}),
        None,
    ));
    assert_eq!(batch["results"][0]["language"], "es");
    assert!(batch["results"][1]["error"].as_str().is_some());

    let risky = ok(post(
        &mesh,
        "/api/fraud/assess",
        json!({"amount": 25000, "currency": "EUR", "country": "DE", "card_country": "KP",
               "account_age_days": 3, "transactions_last_hour": 40}),
        alice,
    ));
    assert_eq!(risky["decision"], "decline");
    let fine = ok(post(
        &mesh,
        "/api/fraud/assess",
        json!({"amount": 20, "currency": "EUR", "country": "DE"}),
        None,
    ));
    assert_eq!(
        (fine["decision"].as_str(), fine["score"].as_u64()),
        (Some("approve"), Some(0))
    );

    let events = ok(post(
        &mesh,
        "/api/data/events/validate",
        json!({"events": [
            {"type": "purchase", "user_id": "u", "timestamp": "2026-01-01T00:00:00Z", "properties": {"amount": 3}},
            {"type": "purchase", "user_id": "u", "timestamp": "yesterday"}
        ]}),
        alice,
    ));
    assert_eq!(
        (events["valid"].as_u64(), events["invalid"].as_u64()),
        (Some(1), Some(1))
    );
    let quote = ok(mesh
        .send(&Request::get("/api/data/market/MSFT").header("x-auth-sub", "alice"))
        .expect("envoy"));
    let again = ok(mesh.get("/api/data/market/MSFT"));
    assert_eq!(quote["price"], again["price"], "deterministic");

    // PUSH1 0xff must not count as SELFDESTRUCT; the trailing ff does.
    let analysis = ok(post(
        &mesh,
        "/api/blockchain/contracts/analyze",
        json!({"bytecode": "0x60ff32f4ff"}),
        alice,
    ));
    assert_eq!(analysis["risk"], "high");
    assert_eq!(analysis["opcodes"], 4);
    let mev = ok(post(
        &mesh,
        "/api/blockchain/mev/detect",
        json!({"transactions": [
            {"hash": "a1", "from": "bot", "pool": "p", "side": "buy"},
            {"hash": "v1", "from": "victim", "pool": "p", "side": "buy"},
            {"hash": "a2", "from": "bot", "pool": "p", "side": "sell"}
        ]}),
        alice,
    ));
    assert_eq!(mev["sandwiches"][0]["attacker"], "bot");
    let clusters = ok(post(
        &mesh,
        "/api/blockchain/wallets/cluster",
        json!({"transfers": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}, {"from": "x", "to": "y"}]}),
        alice,
    ));
    assert_eq!(clusters["clusters"], json!([["a", "b", "c"], ["x", "y"]]));

    // Malformed input is a 4xx naming the problem, never a 5xx.
    for (path, body) in [
        ("/api/ml/predict", "{\"features\": \"no\"}"),
        (
            "/api/nlp/translate",
            "{\"text\": \"hi\", \"target\": \"xx\"}",
        ),
        ("/api/fraud/assess", "not json"),
        ("/api/data/events/validate", "[1, 2]"),
        (
            "/api/blockchain/contracts/analyze",
            "{\"bytecode\": \"0xzz\"}",
        ),
    ] {
        let r = mesh
            .send(&Request::post(path, body).header("content-type", "application/json"))
            .expect("envoy");
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(r.json()["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    assert_eq!(mesh.get("/api/data/market/lower").status, 400);
    assert_eq!(mesh.get("/api/ml/nothing-here").status, 404);

    // GDPR: export what each service keeps about alice, then erase it.
    let token = mesh.upstreams.gdpr_token.clone();
    for service in services {
        // Never through the public listener, whatever the credential.
        let public = mesh
            .send(&gdpr_request("GET", service, "alice", &token))
            .expect("through envoy");
        assert_eq!(public.status, 404, "{service}: {}", public.text());
        assert_eq!(gdpr(&mesh, "GET", service, "alice", "wrong").status, 401);
        let export = ok(gdpr(&mesh, "GET", service, "alice", &token));
        let records = export["records"].as_array().cloned().unwrap_or_default();
        assert!(
            !records.is_empty(),
            "{service} keeps alice's records: {export}"
        );
        assert_eq!(export["user_id"], "alice");
        if service == "fraud" {
            // The anonymous assessment (no x-auth-sub) was not kept.
            assert_eq!(records.len(), 1, "{export}");
        }
        let erased = ok(gdpr(&mesh, "DELETE", service, "alice", &token));
        assert_eq!(erased["erased"].as_u64(), Some(records.len() as u64));
        // Erased on the shared store: whichever instance answers next.
        for _ in 0..2 {
            let after = ok(gdpr(&mesh, "GET", service, "alice", &token));
            assert_eq!(after["records"], json!([]), "{service}");
        }
    }
}
