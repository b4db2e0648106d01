//! Storage behind a trait (in the style of Limitador's `AsyncCounterStorage`),
//! so handlers are written and tested against the contract, not Redis.

pub mod keys;
pub mod redis;

use async_trait::async_trait;
use meshguard_api::audit::AuditEvent;
use meshguard_api::flags::{FlagDefinition, FlagSnapshot};
use meshguard_api::revocation::{Revocation, RevocationFeed};
use meshguard_api::session::{Geo, SessionInfo};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis did not answer in time or the connection is down: the caller
    /// answers 503 and may retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Redis answered, but not as expected.
    #[error("store error: {0}")]
    Failed(String),
}

/// One GCRA bucket of a decision: its Redis key and its parameters in µs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSpec {
    pub key: String,
    pub emission_us: u64,
    pub tolerance_us: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buckets {
    /// The key's own buckets (indexed under the user), then shared ones.
    pub specs: Vec<BucketSpec>,
    /// How many leading specs belong to the key (same hash slot as `index_key`).
    pub user_specs: usize,
    pub index_key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketOutcome {
    pub allowed: bool,
    pub remaining: u64,
    pub reset_us: u64,
    /// `None`: never (cost above the burst).
    pub retry_us: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Admitted (or shadow mode).
    pub admitted: bool,
    /// Tokens taken from every bucket (0 when refused).
    pub granted: u64,
    pub buckets: Vec<BucketOutcome>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Take {
    /// Admit `cost` tokens or nothing; `shadow` admits regardless (and still counts).
    Check { cost: u64, shadow: bool },
    /// Take up to `tokens` and record them under `lease_key` for `ttl_ms`.
    Lease {
        tokens: u64,
        lease_key: String,
        ttl_ms: u64,
    },
}

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

#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub cursor: String,
    pub revocation: Revocation,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEvent {
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details: serde_json::Value,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn ping(&self) -> Result<(), StoreError>;

    async fn take(&self, buckets: &Buckets, take: &Take) -> Result<Decision, StoreError>;
    /// Returns (refunded, settled).
    async fn settle(
        &self,
        buckets: &Buckets,
        lease_key: &str,
        used: u64,
    ) -> Result<(u64, bool), StoreError>;

    /// Gives `tokens` back to every bucket (a bucket tops out at full).
    async fn give_back(&self, buckets: &Buckets, tokens: u64) -> Result<(), StoreError>;

    /// Records a revocation and appends it to the feed. For `Revocation::User`
    /// the given `not_before` is ignored: the store's clock sets it.
    async fn revoke(&self, revocation: &Revocation) -> Result<Recorded, StoreError>;
    async fn revocation_feed(
        &self,
        since: &str,
        limit: usize,
    ) -> Result<RevocationFeed, StoreError>;

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

    /// Writes `put` and deletes `delete` (or every other flag with `replace`)
    /// in one change; returns the new version.
    async fn change_flags(
        &self,
        put: &[FlagDefinition],
        delete: &[String],
        replace: bool,
    ) -> Result<(u64, bool), StoreError>;
    async fn flag_version(&self) -> Result<u64, StoreError>;
    async fn flag_snapshot(&self) -> Result<FlagSnapshot, StoreError>;

    async fn audit(&self, event: &NewAuditEvent) -> Result<String, StoreError>;
    async fn read_audit(&self, since: &str, limit: usize) -> Result<Vec<AuditEvent>, StoreError>;

    /// The purposes each user currently consents to (meshguard-gdpr's
    /// mirror of the latest choice per purpose), sorted; every user asked
    /// about is in the answer.
    async fn consents(
        &self,
        users: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<String>>, StoreError>;

    /// Records keys (or `key#field` entries of shared keys) holding `user`'s data.
    async fn index_user(&self, user: &str, entries: &[String]) -> Result<(), StoreError>;
    async fn user_index(&self, user: &str) -> Result<Vec<String>, StoreError>;
}
