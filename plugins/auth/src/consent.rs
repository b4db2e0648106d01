//! The current consents of the users a worker serves, kept in sync from
//! meshguard-state off the request path, and passed on in `x-auth-consents`
//! (comma-separated purposes) like the other identity headers.
//!
//! meshguard-gdpr records each choice and mirrors the current ones into
//! Redis; meshguard-state reads them there. Each worker asks, every
//! `poll_interval_ms`, for the consents of the users it served recently
//! (`POST /v1/consents/lookup`) and replaces what it knew: a withdrawal
//! reaches the proxy within one interval and a call. A user not asked
//! about yet gets no header on their first requests (no consent is
//! assumed); one not seen for `forget_after_ms` is forgotten.

use meshguard_api::consent::{ConsentLookup, MAX_LOOKUP_USERS};
use meshguard_plugin_kit::config::ConfigError;
use meshguard_plugin_kit::state_client::StateClientConfig;
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsentConfig {
    /// The meshguard-state client; defaults to `revocation.state`.
    pub state: Option<StateClientConfig>,
    /// The header the purposes travel in (an `x-auth-*` name, so clients
    /// cannot send it).
    pub header: String,
    pub poll_interval_ms: u64,
    /// Users tracked per worker; past it, new users get no header.
    pub max_users: usize,
    /// A user not seen for this long is no longer asked about.
    pub forget_after_ms: u64,
}

impl Default for ConsentConfig {
    fn default() -> Self {
        ConsentConfig {
            state: None,
            header: "x-auth-consents".into(),
            poll_interval_ms: 1_000,
            max_users: 10_000,
            forget_after_ms: 600_000,
        }
    }
}

impl ConsentConfig {
    pub fn validate(
        &self,
        revocation_state: Option<&StateClientConfig>,
    ) -> Result<(), ConfigError> {
        let header_ok = self
            .header
            .starts_with(crate::identity_headers::IDENTITY_PREFIX)
            && self.header.len() > crate::identity_headers::IDENTITY_PREFIX.len()
            && self
                .header
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
        if !header_ok {
            return Err(ConfigError::new(
                "consents.header",
                "must be a lowercase x-auth-* header name (only the chain may set it)",
            ));
        }
        if !(100..=600_000).contains(&self.poll_interval_ms) {
            return Err(ConfigError::new(
                "consents.poll_interval_ms",
                "must be from 100 to 600000",
            ));
        }
        if !(1..=1_000_000).contains(&self.max_users) {
            return Err(ConfigError::new(
                "consents.max_users",
                "must be from 1 to 1000000",
            ));
        }
        if self.forget_after_ms < self.poll_interval_ms {
            return Err(ConfigError::new(
                "consents.forget_after_ms",
                "must be at least poll_interval_ms",
            ));
        }
        match &self.state {
            Some(state) => state.validate("consents.state"),
            None if revocation_state.is_none() => Err(ConfigError::new(
                "consents.state",
                "required when `revocation` is not configured",
            )),
            None => Ok(()),
        }
    }
}

struct Known {
    /// The header value (`None`: not known yet or none granted).
    header: Option<String>,
    last_seen_ms: u64,
}

#[derive(Default)]
pub struct ConsentCache {
    users: HashMap<String, Known>,
    max_users: usize,
}

/// A purpose as it may travel in the header: a short lowercase label.
fn is_purpose(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 64
        && p.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

impl ConsentCache {
    pub fn new(max_users: usize) -> ConsentCache {
        ConsentCache {
            users: HashMap::new(),
            max_users,
        }
    }

    /// The header value for `sub` (none when nothing is granted or known
    /// yet), noting that the user was seen.
    pub fn header(&mut self, sub: &str, now_ms: u64) -> Option<&str> {
        if !self.users.contains_key(sub) {
            if self.users.len() >= self.max_users {
                return None;
            }
            self.users.insert(
                sub.to_string(),
                Known {
                    header: None,
                    last_seen_ms: now_ms,
                },
            );
        }
        let known = self.users.get_mut(sub)?;
        known.last_seen_ms = now_ms;
        known.header.as_deref()
    }

    /// Forgets users not seen since `now_ms - forget_after_ms`; returns the
    /// others in pages to ask about.
    pub fn pages(&mut self, now_ms: u64, forget_after_ms: u64) -> Vec<ConsentLookup> {
        let horizon = now_ms.saturating_sub(forget_after_ms);
        self.users.retain(|_, k| k.last_seen_ms >= horizon);
        let users: Vec<String> = self.users.keys().cloned().collect();
        users
            .chunks(MAX_LOOKUP_USERS)
            .map(|chunk| ConsentLookup {
                users: chunk.to_vec(),
            })
            .collect()
    }

    /// Applies an answer: every user asked about gets what was granted
    /// (users the answer leaves out have nothing granted).
    pub fn apply(&mut self, asked: &[String], granted: &HashMap<String, Vec<String>>) {
        for user in asked {
            let Some(known) = self.users.get_mut(user) else {
                continue;
            };
            let purposes: Vec<&str> = granted
                .get(user)
                .map(|list| {
                    list.iter()
                        .map(String::as_str)
                        .filter(|p| is_purpose(p))
                        .collect()
                })
                .unwrap_or_default();
            known.header = (!purposes.is_empty()).then(|| purposes.join(","));
        }
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_seen_are_asked_about_and_get_what_they_granted() {
        let mut cache = ConsentCache::new(2);
        assert_eq!(cache.header("alice", 0), None);
        assert_eq!(cache.header("bob", 0), None);
        // Full: carol is not tracked.
        assert_eq!(cache.header("carol", 0), None);
        let pages = cache.pages(10, 1_000);
        assert_eq!(pages.len(), 1);
        let mut asked = pages[0].users.clone();
        asked.sort();
        assert_eq!(asked, ["alice", "bob"]);
        let granted = HashMap::from([(
            "alice".to_string(),
            vec![
                "analytics".to_string(),
                "bad value".to_string(),
                "essential".to_string(),
            ],
        )]);
        cache.apply(&asked, &granted);
        assert_eq!(cache.header("alice", 20), Some("analytics,essential"));
        assert_eq!(cache.header("bob", 20), None);
        // A withdrawal: the next answer replaces the list.
        cache.apply(&asked, &HashMap::new());
        assert_eq!(cache.header("alice", 30), None);
        // Bob, not seen again, is forgotten.
        cache.header("alice", 5_000);
        let pages = cache.pages(5_000, 1_000);
        assert_eq!(pages[0].users, ["alice"]);
        assert_eq!(cache.len(), 1);
    }
}
