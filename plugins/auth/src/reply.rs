//! Refusals: 401 with an RFC 6750 `WWW-Authenticate` challenge, 403 for a
//! missing scope, 503 when the revocation state is stale and so configured;
//! always a small JSON body naming the reason.

use proxy_wasm::hostcalls;

pub enum Refusal<'a> {
    /// No bearer token: a bare challenge (RFC 6750 §3.1).
    MissingToken,
    /// A token that cannot be accepted, with a reason code.
    InvalidToken(&'static str),
    /// A valid token without the scopes the route needs.
    InsufficientScope(&'a [String]),
    /// The revocation state is too old to decide on.
    Stale { status: u16 },
    /// The client caused too many refusals; try again after this many seconds.
    OverBudget { retry_after_s: u64 },
}

fn description(reason: &str) -> &'static str {
    match reason {
        "malformed" => "the token is malformed",
        "too_large" => "the token is too large",
        "unsupported_alg" => "the token's algorithm is not supported",
        "alg_not_allowed" => "the token's algorithm is not allowed for its key",
        "unknown_kid" => "the token's key is unknown",
        "bad_signature" => "the token's signature is invalid",
        "bad_claims" => "the token's claims are malformed",
        "expired" => "the token has expired",
        "not_yet_valid" => "the token is not valid yet",
        "issued_in_future" => "the token is issued in the future",
        "too_old" => "the token is too old",
        "missing_claim" => "the token lacks a required claim",
        "bad_issuer" => "the token's issuer is not accepted",
        "bad_audience" => "the token's audience is not accepted",
        "bad_identity" => "the token's identity claims are unusable",
        "revoked_token" => "the token has been revoked",
        "revoked_user" => "the user's tokens have been revoked",
        "revoked_session" => "the token's session has ended",
        "stale_revocations" => "revocation state is unavailable",
        "too_long_lived" => "the token lives longer than allowed",
        _ => "the token is invalid",
    }
}

pub fn send(realm: &str, refusal: Refusal<'_>) {
    let retry_after = match &refusal {
        Refusal::OverBudget { retry_after_s } => Some(retry_after_s.to_string()),
        Refusal::Stale { status: 503 } => Some("1".to_string()),
        _ => None,
    };
    let (status, challenge, error, reason, message): (u16, Option<String>, &str, &str, &str) =
        match refusal {
            Refusal::MissingToken => (
                401,
                Some(format!("Bearer realm=\"{realm}\"")),
                "invalid_request",
                "missing_token",
                "a bearer token is required",
            ),
            Refusal::InvalidToken(reason) => (
                401,
                Some(format!(
                    "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
                    description(reason)
                )),
                "invalid_token",
                reason,
                description(reason),
            ),
            Refusal::InsufficientScope(scopes) => (
                403,
                Some(format!(
                    "Bearer realm=\"{realm}\", error=\"insufficient_scope\", scope=\"{}\"",
                    scopes.join(" ")
                )),
                "insufficient_scope",
                "insufficient_scope",
                "the token lacks a scope this route needs",
            ),
            Refusal::Stale { status: 503 } => (
                503,
                None,
                "temporarily_unavailable",
                "stale_revocations",
                description("stale_revocations"),
            ),
            Refusal::OverBudget { .. } => (
                429,
                None,
                "too_many_requests",
                "over_reject_budget",
                "too many refused requests from this client; retry later",
            ),
            Refusal::Stale { status } => (
                status,
                Some(format!(
                    "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
                    description("stale_revocations")
                )),
                "invalid_token",
                "stale_revocations",
                description("stale_revocations"),
            ),
        };
    let body =
        serde_json::json!({"error": error, "reason": reason, "message": message}).to_string();
    let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
    if let Some(challenge) = &challenge {
        headers.push(("www-authenticate", challenge));
    }
    if let Some(seconds) = &retry_after {
        headers.push(("retry-after", seconds));
    }
    let _ = hostcalls::send_http_response(status as u32, headers, Some(body.as_bytes()));
}
