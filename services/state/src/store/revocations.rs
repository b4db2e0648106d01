//! The revocation feed: revocations recorded once, read as changes since a
//! cursor or as a snapshot.

use super::StoreError;
use async_trait::async_trait;
use meshguard_api::revocation::{Revocation, RevocationFeed};

#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub cursor: String,
    pub revocation: Revocation,
}

#[async_trait]
pub trait RevocationStore: Send + Sync {
    /// Records a revocation and appends it to the feed. For `Revocation::User`
    /// the given `not_before` is ignored: the store's clock sets it.
    async fn revoke(&self, revocation: &Revocation) -> Result<Recorded, StoreError>;
    async fn revocation_feed(
        &self,
        since: &str,
        limit: usize,
    ) -> Result<RevocationFeed, StoreError>;
}
