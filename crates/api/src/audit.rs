//! Audit events: every revocation, session change, flag change and suspicious
//! event, in order, for the GDPR companion and operators.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// The stream id; also the cursor to read on from.
    pub id: String,
    pub at_ms: u64,
    /// `admin`, `plugin`, `system` or an operator-given name.
    pub actor: String,
    /// e.g. `revocation.token`, `session.evicted`, `flag.updated`, `suspicious.impossible_travel`.
    pub action: String,
    /// What the event is about: a user id, a flag key, an `iss`/`jti`.
    pub subject: String,
    #[serde(default)]
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    /// Pass as `since` to read on.
    pub cursor: String,
    pub events: Vec<AuditEvent>,
}

/// Every key holding data of one user, so export and erasure need no SCAN.
/// Entries inside shared keys are written `<key>#<field-or-member>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserIndex {
    pub user: String,
    pub keys: Vec<String>,
}
