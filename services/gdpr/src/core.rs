//! What every operation needs: settings, the database, the key.

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::keys::Keys;
use rusqlite::Connection;

pub struct Core {
    pub settings: Settings,
    pub conn: Connection,
    pub keys: Keys,
}

impl Core {
    pub fn open(settings: &Settings) -> Result<Core> {
        let keys = Keys::load(&settings.key_file)?;
        let mut conn = crate::db::open(&settings.db)?;
        if crate::db::needs_reseal(&conn)? {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if crate::db::needs_reseal(&tx)? {
                crate::audit::reseal(&tx, &keys)?;
                tx.execute("DELETE FROM kv WHERE k = 'audit_reseal'", [])?;
            }
            tx.commit()?;
        }
        Ok(Core {
            settings: settings.clone(),
            conn,
            keys,
        })
    }

    pub fn redis(&self) -> Result<redis::Connection> {
        let client = redis::Client::open(self.settings.redis_url.as_str())
            .map_err(|e| Error::Config(format!("redis url: {e}")))?;
        let con = client
            .get_connection_with_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| Error::Unavailable(format!("redis: {e}")))?;
        con.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        Ok(con)
    }

    /// Appends an audit entry outside any other transaction.
    pub fn audit(
        &self,
        action: &str,
        subject_mac: Option<&str>,
        details: serde_json::Value,
    ) -> Result<i64> {
        crate::audit::append(
            &self.conn,
            &self.keys,
            &self.settings.actor,
            action,
            subject_mac,
            &details,
        )
    }
}

/// A user id as meshguard-state accepts it (it becomes part of Redis keys):
/// non-empty, at most 256 bytes, no hash-tag braces, no control characters.
pub fn check_user(user: &str) -> Result<()> {
    if user.is_empty()
        || user.len() > 256
        || user.chars().any(|c| c == '{' || c == '}' || c.is_control())
    {
        return Err(Error::Invalid(format!(
            "user: {user:?} is not a valid id (1..=256 bytes, no braces or control characters)"
        )));
    }
    Ok(())
}
