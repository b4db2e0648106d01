//! Token verification through a real Envoy with meshguard_auth.wasm: every
//! algorithm with tokens minted by `jsonwebtoken`, every way a token can be
//! wrong (401 with an RFC 6750 challenge and a reason, never a 5xx), scopes
//! (403), identity headers and the stripping of spoofed ones.

mod auth_support;

use auth_support::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use meshguard_harness::http::send_raw;
use meshguard_harness::Request;
use serde_json::{json, Value};

fn mesh() -> Mesh {
    Mesh::start(config(json!({
        "audiences": ["meshguard-api"],
        "token": {"cookie": "mg_token"},
    })))
}

fn good_claims(sub: &str) -> Value {
    let mut c = claims(sub);
    c["aud"] = json!(["other", "meshguard-api"]);
    c
}

#[test]
fn every_algorithm_verifies_and_sets_identity_headers_stripping_spoofed_ones() {
    let mesh = mesh();
    for alg in ALGORITHMS {
        let mut claims = good_claims("alice");
        claims["sid"] = json!("s-1");
        claims["scope"] = json!("read write");
        let token = mint(alg, Some(kid_for(alg)), &claims);
        let seen = mesh.upstream_saw(
            Request::get("/api/ml/predict")
                .header("authorization", &format!("Bearer {token}"))
                .header("x-auth-sub", "mallory")
                .header("X-Auth-Tier", "admin")
                .header("x-auth-whatever", "spoofed"),
        );
        assert_eq!(seen.headers_named("x-auth-sub"), vec!["alice"], "{alg:?}");
        assert_eq!(
            seen.headers_named("x-auth-tier"),
            vec!["premium"],
            "{alg:?}"
        );
        assert_eq!(seen.headers_named("x-auth-session"), vec!["s-1"], "{alg:?}");
        assert_eq!(seen.headers_named("x-auth-scopes"), vec!["read write"]);
        assert!(seen.headers_named("x-auth-whatever").is_empty(), "{alg:?}");
    }
    // Without a kid, the keys that allow the algorithm are tried.
    let token = mint(Algorithm::ES256, None, &good_claims("bob"));
    let seen = mesh
        .upstream_saw(Request::get("/api/x").header("authorization", &format!("Bearer {token}")));
    assert_eq!(seen.headers_named("x-auth-sub"), vec!["bob"]);
    assert_eq!(mesh.stat("verified"), 6);
}

#[test]
fn public_routes_need_no_token_but_never_pass_spoofed_identity() {
    let mesh = mesh();
    let seen = mesh.upstream_saw(
        Request::get("/public/docs?x=1")
            .header("x-auth-sub", "admin")
            .header("x-auth-tier", "enterprise")
            .header("x-auth-session", "s"),
    );
    for name in ["x-auth-sub", "x-auth-tier", "x-auth-session"] {
        assert!(
            seen.headers_named(name).is_empty(),
            "{name} reached the upstream"
        );
    }
    assert_eq!(mesh.envoy.get("/healthz").status, 200);
    assert_rejected(&mesh.envoy.get("/healthzx"), "missing_token");
    assert_eq!(mesh.stat("public"), 2);
}

#[test]
fn cookie_carries_the_token_when_the_header_is_absent() {
    let mesh = mesh();
    let token = mint(Algorithm::HS256, Some("hs"), &good_claims("carol"));
    let seen = mesh.upstream_saw(
        Request::get("/api/x").header("cookie", &format!("theme=dark; mg_token={token}")),
    );
    assert_eq!(seen.headers_named("x-auth-sub"), vec!["carol"]);
}

fn with(mut claims: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

#[test]
fn every_bad_token_is_a_401_with_its_reason() {
    let mesh = mesh();
    let now = now_s();
    let good = || good_claims("alice");
    let es = |c: &Value| mint(Algorithm::ES256, Some("ec"), c);
    let valid = es(&good());
    let (signed, _) = valid.rsplit_once('.').unwrap();
    let parts: Vec<&str> = valid.split('.').collect();
    let forged_payload = b64(with(good(), json!({"sub": "admin"})).to_string().as_bytes());
    let header = |h: Value| b64(h.to_string().as_bytes());
    // HS256 signed with the RSA public key (key confusion).
    let rsa_public_as_secret = |kid: Option<&str>| {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = kid.map(str::to_string);
        jsonwebtoken::encode(&h, &good(), &EncodingKey::from_secret(&keys().rsa_n)).unwrap()
    };
    let cases: Vec<(String, &str)> = vec![
        (
            es(&with(good(), json!({"exp": now - 3600, "iat": now - 7200}))),
            "expired",
        ),
        (
            es(&with(good(), json!({"nbf": now + 3600}))),
            "not_yet_valid",
        ),
        (
            es(&with(good(), json!({"iat": now + 3600}))),
            "issued_in_future",
        ),
        (
            es(&with(good(), json!({"iss": "https://evil.test"}))),
            "bad_issuer",
        ),
        (
            es(&with(good(), json!({"aud": "someone-else"}))),
            "bad_audience",
        ),
        (es(&with(good(), json!({"exp": null}))), "missing_claim"),
        (es(&with(good(), json!({"sub": null}))), "missing_claim"),
        (es(&with(good(), json!({"sub": ["a"]}))), "bad_claims"),
        (es(&with(good(), json!({"sub": "a\u{0}b"}))), "bad_identity"),
        (mint(Algorithm::ES256, Some("nope"), &good()), "unknown_kid"),
        (
            mint(Algorithm::EdDSA, Some("ec"), &good()),
            "alg_not_allowed",
        ),
        (
            format!("{}.{forged_payload}.{}", parts[0], parts[2]),
            "bad_signature",
        ),
        (
            format!(
                "{}.{}.",
                header(json!({"alg": "none", "typ": "JWT"})),
                parts[1]
            ),
            "unsupported_alg",
        ),
        (
            format!("{}.{}.", header(json!({"alg": "None"})), parts[1]),
            "unsupported_alg",
        ),
        (rsa_public_as_secret(Some("rsa")), "alg_not_allowed"),
        (rsa_public_as_secret(None), "bad_signature"),
        // Truncated by whole bytes: 63 of the 64 signature bytes.
        (valid[..valid.len() - 2].to_string(), "bad_signature"),
        (signed.to_string(), "malformed"),
        (valid[..valid.len() / 2].to_string(), "malformed"),
        (
            valid.replacen('e', "!", 1).replacen('A', "*", 1),
            "malformed",
        ),
        (format!("{valid}.{}", parts[2]), "malformed"),
        ("".to_string(), "missing_token"),
        ("x".repeat(9000), "too_large"),
    ];
    for (token, reason) in &cases {
        let response = mesh.get_with("/api/ml/x", token);
        assert_eq!(response.json()["reason"], *reason, "{token}");
        assert_rejected(&response, reason);
    }
    // No or another scheme's credentials: a bare challenge.
    assert_rejected(&mesh.envoy.get("/api/x"), "missing_token");
    let basic = Request::get("/api/x").header("authorization", "Basic YWxhZGRpbjpvcGVu");
    assert_rejected(&mesh.envoy.send(&basic), "missing_token");
    let twice = Request::get("/api/x")
        .header("authorization", &format!("Bearer {valid}"))
        .header("authorization", &format!("Bearer {valid}"));
    assert_rejected(&mesh.envoy.send(&twice), "malformed");
    assert_eq!(mesh.stat("rejected.expired"), 1);
    assert_eq!(mesh.stat("rejected.unsupported_alg"), 2);
    assert_eq!(mesh.stat("rejected"), cases.len() as u64 + 3);
    // The VM is alive and still verifying.
    assert_eq!(mesh.get_with("/api/x", &valid).status, 200);
}

#[test]
fn a_missing_scope_is_a_403() {
    let mesh = mesh();
    let plain = mint(Algorithm::HS256, Some("hs"), &good_claims("alice"));
    let response = mesh.get_with("/api/admin/users", &plain);
    assert_eq!(response.status, 403, "{}", response.text());
    let challenge = response.header("www-authenticate").unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"admin\""), "{challenge}");
    assert_eq!(response.json()["reason"], "insufficient_scope");
    let admin = mint(
        Algorithm::HS256,
        Some("hs"),
        &with(good_claims("root"), json!({"scp": ["admin", "x"]})),
    );
    assert_eq!(mesh.get_with("/api/admin/users", &admin).status, 200);
    assert_eq!(mesh.get_with("/api/other", &plain).status, 200);
}

#[test]
fn repeated_tokens_are_served_from_the_cache() {
    let mesh = mesh();
    let token = mint(Algorithm::RS256, Some("rsa"), &good_claims("alice"));
    for _ in 0..5 {
        assert_eq!(mesh.get_with("/api/x", &token).status, 200);
    }
    assert_eq!(mesh.stat("cache_misses"), 1);
    assert_eq!(mesh.stat("cache_hits"), 4);
    // A second byte form of the same ES256 token is its own cache entry and verifies too.
    let es = mint(Algorithm::ES256, Some("ec"), &good_claims("alice"));
    assert_eq!(mesh.get_with("/api/x", &es).status, 200);
    assert_eq!(mesh.get_with("/api/x", &malleate_es256(&es)).status, 200);
    assert_eq!(mesh.stat("cache_misses"), 3);
}

/// Random bytes and mutations of a valid token: a 401 (or 400 from Envoy's
/// own parser), never a 5xx, and the VM survives.
#[test]
fn random_authorization_bytes_never_get_a_5xx() {
    let mesh = mesh();
    let valid = mint(Algorithm::ES256, Some("ec"), &good_claims("alice"));
    let mut state: u64 = 0x5eed_a17c;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet: Vec<u8> = (0x20..0x7f).chain(0x80..=0xff).collect();
    for i in 0..300 {
        let mut value = b"Bearer ".to_vec();
        if i % 2 == 0 {
            let len = (next() % 600) as usize;
            value.extend((0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]));
        } else {
            let mut token = valid.as_bytes().to_vec();
            for _ in 0..1 + next() % 3 {
                let at = (next() % token.len() as u64) as usize;
                token[at] = alphabet[(next() % alphabet.len() as u64) as usize];
            }
            value.extend(token);
        }
        let request = Request::get("/api/x").header_bytes("authorization", &value);
        let response = send_raw(mesh.envoy.port, &request.to_bytes())
            .unwrap_or_else(|e| panic!("no response for {value:?}: {e}"));
        assert!(
            response.status == 401 || response.status == 400 || response.status == 200,
            "status {} for {:?}",
            response.status,
            String::from_utf8_lossy(&value)
        );
    }
    assert_eq!(mesh.get_with("/api/x", &valid).status, 200);
}
