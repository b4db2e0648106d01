//! Flag definitions and their version.

use super::StoreError;
use async_trait::async_trait;
use meshguard_api::flags::{FlagDefinition, FlagSnapshot};

#[async_trait]
pub trait FlagStore: Send + Sync {
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
}
