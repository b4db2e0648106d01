//! The audit stream, and the per-user index of keys holding a user's data
//! (what meshguard-gdpr reads to export or erase a user).

use super::StoreError;
use async_trait::async_trait;
use meshguard_api::audit::AuditEvent;

#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEvent {
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details: serde_json::Value,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn audit(&self, event: &NewAuditEvent) -> Result<String, StoreError>;
    async fn read_audit(&self, since: &str, limit: usize) -> Result<Vec<AuditEvent>, StoreError>;
    /// Records keys (or `key#field` entries of shared keys) holding `user`'s data.
    async fn index_user(&self, user: &str, entries: &[String]) -> Result<(), StoreError>;
    async fn user_index(&self, user: &str) -> Result<Vec<String>, StoreError>;
}
