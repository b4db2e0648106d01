//! Handlers, one module per area.

pub mod audit;
pub mod consents;
pub mod flags;
pub mod health;
pub mod ratelimit;
pub mod revocations;
pub mod sessions;

use crate::error::ApiError;
use crate::store::keys;
use axum::http::HeaderMap;

/// Refuses identifiers that cannot be used in keys.
pub fn check_id(field: &str, value: &str) -> Result<(), ApiError> {
    if keys::valid_id(value) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{field} must be 1-256 characters without braces or control characters"
        )))
    }
}

/// Who to name in audit events: `x-meshguard-actor` when given (an
/// operator's name, passed by the CLI), else the role.
/// A Redis stream id as a cursor: `MS` or `MS-SEQ`, each a u64 (Redis
/// refuses anything larger, which would answer 500 instead of 400).
pub fn is_stream_id(c: &str) -> bool {
    let mut parts = c.splitn(2, '-');
    let number = |p: &str| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u64>().is_ok()
    };
    parts.next().is_some_and(number) && parts.next().is_none_or(number)
}

pub fn actor(headers: &HeaderMap, role: &str) -> String {
    headers
        .get("x-meshguard-actor")
        .and_then(|v| v.to_str().ok())
        .filter(|v| keys::valid_id(v) && v.len() <= 64)
        .map_or_else(|| role.to_string(), |v| format!("{role}:{v}"))
}

pub use meshguard_api::time::now_ms;
