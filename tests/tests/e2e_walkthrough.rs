//! The README walkthrough and the identity → tier → flags → upstream flow,
//! end to end through the shipped stack (`meshguard_harness::mesh`, what
//! `scripts/up` runs), in the default single-module layout and in the
//! four-filter alternative.

use meshguard_harness::mesh::{Layout, Mesh, MeshOptions};
use meshguard_harness::Request;
use serde_json::json;

/// The upstream's echo of the request it received: header name → value.
fn echoed_headers(body: &serde_json::Value) -> Vec<(String, String)> {
    body["meshguard_headers"]
        .as_object()
        .map(|headers| {
            headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn smoke(layout: Layout) {
    let mut options = MeshOptions::for_test();
    options.layout = layout;
    let mesh = Mesh::start(options);
    let health = mesh.send(&Request::get("/healthz"));
    assert_eq!(health.status, 200, "{}", health.text());
    let anonymous = mesh.send(&Request::get("/api/ml/"));
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    let token = mesh.mint_token("alice", "premium", json!({}));
    let response = mesh.send(
        &Request::get("/api/ml/")
            .header("authorization", &format!("Bearer {token}"))
            .header("x-auth-sub", "admin"),
    );
    assert_eq!(response.status, 200, "{}\n{}", response.text(), mesh.logs());
    let echoed = echoed_headers(&response.json());
    let header = |name: &str| {
        echoed
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("x-auth-sub").as_deref(), Some("alice"), "{echoed:?}");
    assert_eq!(
        header("x-auth-tier").as_deref(),
        Some("premium"),
        "{echoed:?}"
    );
}

#[test]
fn smoke_single_module() {
    smoke(Layout::SingleModule);
}

#[test]
fn smoke_four_filters() {
    smoke(Layout::FourFilters);
}
