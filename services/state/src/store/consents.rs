//! Consents as meshguard-gdpr mirrors them, read for the proxies.

use super::StoreError;
use async_trait::async_trait;

#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// The purposes each user currently consents to (meshguard-gdpr's
    /// mirror of the latest choice per purpose), sorted; every user asked
    /// about is in the answer.
    async fn consents(
        &self,
        users: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<String>>, StoreError>;
}
