//! Revocations and the feed plugins follow to stay in sync.
//!
//! Every change is appended to a Redis Stream; a plugin asks for the changes
//! after its cursor and gets either those changes in order or, when its cursor
//! is older than what the stream still holds, a full snapshot with the cursor
//! to continue from.

use serde::{Deserialize, Serialize};

/// Revoke one token by issuer and token id (kept until the token expires).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeTokenRequest {
    pub iss: String,
    pub jti: String,
    /// The token's `exp` (Unix seconds).
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Revoke every token of `sub` issued before now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeUserRequest {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeResponse {
    /// The feed cursor of the change.
    pub cursor: String,
    pub revocation: Revocation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Revocation {
    /// The token `iss`+`jti` is revoked until `exp` (Unix seconds).
    Token { iss: String, jti: String, exp: u64 },
    /// Tokens of `sub` with `iat` before `not_before` (Unix seconds) are revoked.
    User { sub: String, not_before: u64 },
    /// Tokens carrying session id `session_id` are revoked until `until` (Unix seconds).
    Session {
        sub: String,
        session_id: String,
        until: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEntry {
    pub cursor: String,
    /// When the change was made (Unix milliseconds).
    pub at_ms: u64,
    #[serde(flatten)]
    pub revocation: Revocation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RevocationFeed {
    /// The changes after the requested cursor, oldest first. `more` says a
    /// further page is waiting after `cursor`.
    Changes {
        cursor: String,
        entries: Vec<FeedEntry>,
        more: bool,
    },
    /// Everything still in force; continue from `cursor`.
    Snapshot(RevocationSnapshot),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RevocationSnapshot {
    pub cursor: String,
    pub tokens: Vec<RevokedToken>,
    pub users: Vec<UserCutoff>,
    pub sessions: Vec<RevokedSession>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedToken {
    pub iss: String,
    pub jti: String,
    pub exp: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCutoff {
    pub sub: String,
    pub not_before: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedSession {
    pub sub: String,
    pub session_id: String,
    pub until: u64,
}

/// The cursor that asks for a snapshot.
pub const CURSOR_START: &str = "0";

/// The largest `clock_skew_s` a plugin may be configured with. A plugin
/// accepts a token until `exp` plus its skew, so a revoked token stays on
/// every denylist (Redis, the feed, the plugin) until `exp` plus this.
pub const MAX_CLOCK_SKEW_S: u64 = 3_600;

/// The longest token lifetime (`exp - iat`) a plugin may be configured to
/// accept (`max_token_lifetime_s`).
pub const MAX_TOKEN_LIFETIME_S: u64 = 86_400;

/// How long an ended session stays revoked: a token of the session issued
/// before it ended (its `iat` at most one skew ahead of the clocks) expires
/// within one lifetime, and is accepted for one more skew after that.
pub const SESSION_REVOCATION_S: u64 = MAX_TOKEN_LIFETIME_S + 2 * MAX_CLOCK_SKEW_S;

/// Whether a token revoked until `exp` is still denied at `now_s`.
pub fn token_revocation_in_force(exp: u64, now_s: u64) -> bool {
    now_s <= exp.saturating_add(MAX_CLOCK_SKEW_S)
}
