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
