//! Sessions: logins registered by the operator side, activity reported by the
//! auth plugin, and the impossible-travel verdict on both.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Geo {
    pub lat: f64,
    pub lon: f64,
}

impl Geo {
    pub fn is_valid(&self) -> bool {
        (-90.0..=90.0).contains(&self.lat) && (-180.0..=180.0).contains(&self.lon)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRegistration {
    pub user: String,
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<Geo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRegistered {
    pub session: SessionInfo,
    /// Sessions ended to stay within the per-user maximum, oldest first;
    /// their tokens are revoked through the feed.
    pub evicted: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspicious: Option<SuspiciousActivity>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionActivity {
    pub user: String,
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<Geo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityResponse {
    /// Whether the session is live after this report.
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspicious: Option<SuspiciousActivity>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub user: String,
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<Geo>,
    pub created_ms: u64,
    pub last_seen_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionList {
    pub user: String,
    pub max_sessions: u32,
    /// Oldest first.
    pub sessions: Vec<SessionInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEnded {
    pub user: String,
    pub session_id: String,
    /// False when there was no such live session.
    pub ended: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuspiciousActivity {
    /// `impossible_travel`.
    pub kind: String,
    pub session_id: String,
    /// The session the previous location came from.
    pub previous_session_id: String,
    pub distance_km: f64,
    pub elapsed_s: f64,
    pub speed_kmh: f64,
    pub threshold_kmh: f64,
    /// Whether the session was ended for it.
    pub session_ended: bool,
}

/// The longest user agent kept with a session (bytes).
pub const MAX_USER_AGENT_BYTES: usize = 512;

/// One session a proxy saw in a report period: a new `sid` is registered
/// (the per-user maximum enforced, the oldest ended), a known one touched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionReport {
    pub user: String,
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<Geo>,
    /// When the proxy first saw the session in this period (Unix ms): the
    /// order sessions are registered in, so the oldest is the one evicted.
    pub first_seen_ms: u64,
    /// When the proxy last saw it (Unix ms).
    pub last_seen_ms: u64,
}

/// `POST /v1/sessions/reports`: a proxy's batch, oldest first. Each report
/// is read on its own: a malformed one is skipped and named in the answer,
/// never the reason the rest is lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionReports {
    pub reports: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionReportsAnswer {
    /// Reports applied (new or known sessions, or sessions already ended).
    pub applied: usize,
    /// Sessions registered for the first time.
    pub registered: Vec<String>,
    /// Sessions ended to stay within the per-user maximum.
    pub evicted: Vec<String>,
    #[serde(default)]
    pub suspicious: Vec<SuspiciousActivity>,
    /// Reports skipped or trimmed: `(index, what was wrong)`.
    #[serde(default)]
    pub problems: Vec<ReportProblem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportProblem {
    pub index: usize,
    /// `skipped` (the report was not applied) or `field_dropped`.
    pub outcome: String,
    pub message: String,
}
