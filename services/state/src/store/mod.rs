//! Storage behind small traits, one per area (in the style of Limitador's
//! storage): handlers are written and tested against the contract, not
//! Redis. [`Store`] gathers them so handlers hold one `Arc<dyn Store>`;
//! `redis` implements every area, one file each.

pub mod audit;
pub mod consents;
pub mod flags;
pub mod keys;
pub mod ratelimit;
pub mod redis;
pub mod revocations;
pub mod sessions;

pub use audit::{AuditStore, NewAuditEvent};
pub use consents::ConsentStore;
pub use flags::FlagStore;
pub use ratelimit::{BucketOutcome, BucketSpec, Buckets, Decision, RateLimitStore, Take};
pub use revocations::{Recorded, RevocationStore};
pub use sessions::{LastLocation, Learned, Registered, SeenSession, SessionStore, Touched};

use async_trait::async_trait;

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

/// Every area of the store, and whether it is reachable at all.
#[async_trait]
pub trait Store:
    RateLimitStore + RevocationStore + SessionStore + FlagStore + AuditStore + ConsentStore + 'static
{
    async fn ping(&self) -> Result<(), StoreError>;
}
