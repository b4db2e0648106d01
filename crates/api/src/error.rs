//! The one error body every endpoint answers with:
//! `{ "error": { "code": "...", "message": "..." } }`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable, machine-readable: clients branch on this, never on `message`.
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

/// The codes the service answers with.
pub mod codes {
    pub const MISSING_CREDENTIALS: &str = "missing_credentials";
    pub const INVALID_CREDENTIALS: &str = "invalid_credentials";
    pub const INVALID_JSON: &str = "invalid_json";
    pub const INVALID_REQUEST: &str = "invalid_request";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    pub const BODY_TOO_LARGE: &str = "body_too_large";
    pub const NOT_FOUND: &str = "not_found";
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    pub const INVALID_FLAG: &str = "invalid_flag";
    pub const UNKNOWN_TIER: &str = "unknown_tier";
    pub const STORE_UNAVAILABLE: &str = "store_unavailable";
    pub const INTERNAL: &str = "internal";
}
