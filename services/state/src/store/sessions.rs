//! Sessions per user: registered or learned from proxies' reports, touched,
//! listed and ended, with the last location for the travel check.

use super::StoreError;
use async_trait::async_trait;
use meshguard_api::session::{Geo, SessionInfo};

/// A location seen earlier for a user.
#[derive(Debug, Clone, PartialEq)]
pub struct LastLocation {
    pub geo: Geo,
    pub at_ms: u64,
    pub session_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    pub evicted: Vec<SessionInfo>,
    pub previous: Option<LastLocation>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Touched {
    NotLive,
    Live { previous: Option<LastLocation> },
}

/// A session a proxy saw, as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenSession<'a> {
    pub user: &'a str,
    pub session_id: &'a str,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub geo: Option<Geo>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Learned {
    /// The session was ended; the report changed nothing.
    Ended,
    /// A live session; `new` when this report registered it.
    Live {
        new: bool,
        evicted: Vec<String>,
        previous: Option<LastLocation>,
    },
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn register_session(
        &self,
        session: &SessionInfo,
        max_sessions: u32,
    ) -> Result<Registered, StoreError>;
    async fn touch_session(
        &self,
        user: &str,
        session_id: &str,
        now_ms: u64,
        ip: Option<&str>,
        geo: Option<Geo>,
    ) -> Result<Touched, StoreError>;
    /// Registers a session a proxy reported, or touches it when known; an
    /// ended session stays ended. Evicts the oldest beyond `max_sessions`.
    async fn learn_session(
        &self,
        seen: &SeenSession<'_>,
        max_sessions: u32,
    ) -> Result<Learned, StoreError>;
    /// Records that sessions were ended until `until_s`, so a late report
    /// cannot bring them back.
    async fn mark_sessions_ended(
        &self,
        user: &str,
        session_ids: &[&str],
        until_s: u64,
    ) -> Result<(), StoreError>;
    async fn list_sessions(&self, user: &str) -> Result<Vec<SessionInfo>, StoreError>;
    async fn end_session(&self, user: &str, session_id: &str) -> Result<bool, StoreError>;
}
