//! The auth plugin verifying every token (`cache_max_entries: 0`, the
//! token cache off), one configuration per algorithm: HS256, EdDSA, RS256,
//! PS256 (2048-bit) and ES256. `auth (HS256 token)` in the catalogue is the
//! cached case. They join the plugin figures when `--only` names them
//! (`scripts/bench auth` does): five more rows would lengthen every plain
//! `scripts/bench plugins` run.
//!
//! The HS256 row sends the fixture's request unchanged. The others sign
//! the fixture token's very claims with their algorithm's key
//! (`crate::jwt_keys`, shared with the `auth_*` tests), so their requests
//! differ from the rest only in the token's header and signature.

use super::token::{claims, ISSUER};
use crate::envoy::Plugin;
use crate::jwt_keys::{keys, kid_for, mint};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

/// The end of every label here: `--only "verified every time"` selects them all.
pub const VERIFIED_SUFFIX: &str = "verified every time (cache off)";

/// The algorithms measured, in the order of their rows.
pub const VERIFIED_ALGORITHMS: [Algorithm; 5] = [
    Algorithm::HS256,
    Algorithm::EdDSA,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
];

/// `auth, RS256 verified every time (cache off)`.
pub fn verified_label(alg: Algorithm) -> String {
    let name = match alg {
        Algorithm::RS256 => "RS256 (2048-bit)",
        Algorithm::PS256 => "PS256 (2048-bit)",
        Algorithm::ES256 => "ES256 (P-256)",
        Algorithm::EdDSA => "EdDSA (Ed25519)",
        _ => "HS256",
    };
    format!("auth, {name} {VERIFIED_SUFFIX}")
}

/// Whether `--only` asks for any of these rows (an empty `--only` does not).
pub fn wanted(only: &[String]) -> bool {
    only.iter().any(|o| {
        VERIFIED_ALGORITHMS
            .iter()
            .any(|alg| verified_label(*alg).contains(o.as_str()))
    })
}

/// A row of its own: label, the auth filter, and the request headers in place
/// of the fixture's (`None`: the fixture's own).
pub struct VerifiedRow {
    pub label: String,
    pub plugin: Plugin,
    pub headers: Option<Vec<String>>,
}

/// One configuration per algorithm, the token cache off; `hs256_config` and
/// `headers` are the cached row's configuration and request headers.
pub fn verified_every_time(hs256_config: &Value, headers: &[String]) -> Vec<VerifiedRow> {
    VERIFIED_ALGORITHMS
        .iter()
        .map(|alg| {
            let (mut config, headers) = if *alg == Algorithm::HS256 {
                (hs256_config.clone(), None)
            } else {
                (asymmetric_config(), Some(signed_headers(headers, *alg)))
            };
            config["cache_max_entries"] = json!(0);
            VerifiedRow {
                label: verified_label(*alg),
                plugin: Plugin::new("auth", Some(config)),
                headers,
            }
        })
        .collect()
}

/// Every asymmetric test key as a JWKS (kids `rsa`, `ec`, `ed`), the RSA
/// key allowed both RS256 and PS256; `/healthz` verified.
fn asymmetric_config() -> Value {
    json!({
        "issuers": [ISSUER],
        "jwks": keys().jwks(),
        "key_algorithms": {"rsa": ["RS256", "PS256"]},
        "public_routes": [],
    })
}

/// `headers` with their bearer token's claims signed with `alg`.
fn signed_headers(headers: &[String], alg: Algorithm) -> Vec<String> {
    let bearer = "authorization: Bearer ";
    let token = headers
        .iter()
        .find_map(|h| h.strip_prefix(bearer))
        .unwrap_or_default();
    let signed = mint(alg, Some(kid_for(alg)), &claims(token));
    headers
        .iter()
        .map(|h| {
            if h.starts_with(bearer) {
                format!("{bearer}{signed}")
            } else {
                h.clone()
            }
        })
        .collect()
}
