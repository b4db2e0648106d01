//! Consents: meshguard-gdpr's per-user hash of the latest choice per purpose.

use super::RedisStore;
use crate::store::{ConsentStore, StoreError};
use async_trait::async_trait;
use redis::aio::ConnectionLike;
use std::collections::HashMap;

#[async_trait]
impl<C> ConsentStore for RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn consents(&self, users: &[String]) -> Result<HashMap<String, Vec<String>>, StoreError> {
        if users.is_empty() {
            return Ok(HashMap::new());
        }
        let records: Vec<HashMap<String, String>> = if self.cluster {
            // Each user's hash lives in the user's own slot, and a cluster
            // refuses a pipeline across slots (CROSSSLOT): one call each.
            let mut records = Vec::with_capacity(users.len());
            for user in users {
                records.push(
                    self.run(|mut c| async move {
                        redis::cmd("HGETALL")
                            .arg(meshguard_api::keys::consents(user))
                            .query_async(&mut c)
                            .await
                    })
                    .await?,
                );
            }
            records
        } else {
            self.run(|mut c| async move {
                let mut pipe = redis::pipe();
                for user in users {
                    pipe.cmd("HGETALL").arg(meshguard_api::keys::consents(user));
                }
                pipe.query_async(&mut c).await
            })
            .await?
        };
        Ok(users
            .iter()
            .zip(records)
            .map(|(user, record)| {
                let mut granted: Vec<String> = record
                    .into_iter()
                    .filter(|(_, choice)| {
                        // `{"granted": true, ...}`; anything else is no consent.
                        serde_json::from_str::<serde_json::Value>(choice)
                            .is_ok_and(|c| c.get("granted") == Some(&serde_json::Value::Bool(true)))
                    })
                    .map(|(purpose, _)| purpose)
                    .collect();
                granted.sort();
                (user.clone(), granted)
            })
            .collect())
    }
}
