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
pub fn actor(headers: &HeaderMap, role: &str) -> String {
    headers
        .get("x-meshguard-actor")
        .and_then(|v| v.to_str().ok())
        .filter(|v| keys::valid_id(v) && v.len() <= 64)
        .map_or_else(|| role.to_string(), |v| format!("{role}:{v}"))
}

pub use meshguard_api::time::now_ms;
