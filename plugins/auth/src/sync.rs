//! The revocation set of one worker and where it stands in the feed:
//! the cursor to continue from and when the last sync succeeded.

use meshguard_api::revocation::{Revocation, RevocationFeed, CURSOR_START};
use meshguard_policy::auth::revocation::RevocationSet;

pub struct FeedState {
    pub set: RevocationSet,
    cursor: String,
    started_ms: u64,
    last_ok_ms: Option<u64>,
}

/// What one feed page did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub snapshot: bool,
    pub entries: usize,
    /// Another page is waiting.
    pub more: bool,
    /// When the newest applied change was made (Unix ms), for changes pages.
    pub newest_at_ms: Option<u64>,
}

impl FeedState {
    pub fn new(now_ms: u64) -> FeedState {
        FeedState {
            set: RevocationSet::new(),
            cursor: CURSOR_START.to_string(),
            started_ms: now_ms,
            last_ok_ms: None,
        }
    }

    #[cfg(test)]
    pub fn cursor(&self) -> &str {
        &self.cursor
    }

    /// The feed request path for the next page.
    pub fn path(&self, limit: u32) -> String {
        format!(
            "/v1/revocations/feed?since={}&limit={limit}",
            percent_encode(&self.cursor)
        )
    }

    pub fn apply(&mut self, feed: RevocationFeed, now_ms: u64) -> Applied {
        let applied = match feed {
            RevocationFeed::Snapshot(snapshot) => {
                self.set.clear();
                for t in &snapshot.tokens {
                    self.set.revoke_token(&t.iss, &t.jti, t.exp);
                }
                for u in &snapshot.users {
                    self.set.cut_off_user(&u.sub, u.not_before);
                }
                for s in &snapshot.sessions {
                    self.set.end_session(&s.sub, &s.session_id, s.until);
                }
                self.cursor = snapshot.cursor;
                Applied {
                    snapshot: true,
                    entries: snapshot.tokens.len() + snapshot.users.len() + snapshot.sessions.len(),
                    more: false,
                    newest_at_ms: None,
                }
            }
            RevocationFeed::Changes {
                cursor,
                entries,
                more,
            } => {
                for entry in &entries {
                    match &entry.revocation {
                        Revocation::Token { iss, jti, exp } => {
                            self.set.revoke_token(iss, jti, *exp)
                        }
                        Revocation::User { sub, not_before } => {
                            self.set.cut_off_user(sub, *not_before)
                        }
                        Revocation::Session {
                            sub,
                            session_id,
                            until,
                        } => self.set.end_session(sub, session_id, *until),
                    }
                }
                self.cursor = cursor;
                Applied {
                    snapshot: false,
                    entries: entries.len(),
                    more,
                    newest_at_ms: entries.iter().map(|e| e.at_ms).max(),
                }
            }
        };
        self.last_ok_ms = Some(now_ms);
        self.set
            .prune(i64::try_from(now_ms / 1000).unwrap_or(i64::MAX));
        applied
    }

    /// Whether the last successful sync is older than `max_ms` (or none happened).
    pub fn is_stale(&self, now_ms: u64, max_ms: u64) -> bool {
        self.last_ok_ms
            .is_none_or(|t| now_ms.saturating_sub(t) > max_ms)
    }

    /// Milliseconds since the last successful sync (since start before the first).
    pub fn lag_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.last_ok_ms.unwrap_or(self.started_ms))
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshguard_policy::auth::revocation::{Revoked, TokenRef};

    fn feed(json: &str) -> RevocationFeed {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn snapshot_then_changes() {
        let mut state = FeedState::new(1_000);
        assert!(state.is_stale(1_000, 30_000));
        assert_eq!(state.path(100), "/v1/revocations/feed?since=0&limit=100");
        let now_ms = 1_800_000_000_000;
        let applied = state.apply(
            feed(
                r#"{"type": "snapshot", "cursor": "5-0",
                "tokens": [{"iss": "i", "jti": "j", "exp": 1800000100}],
                "users": [{"sub": "u", "not_before": 1800000000}],
                "sessions": [{"sub": "u", "session_id": "s", "until": 1800000100}]}"#,
            ),
            now_ms,
        );
        assert_eq!(
            applied,
            Applied {
                snapshot: true,
                entries: 3,
                more: false,
                newest_at_ms: None,
            }
        );
        assert_eq!(state.cursor(), "5-0");
        assert!(!state.is_stale(now_ms + 1_000, 30_000));
        let token = TokenRef {
            iss: Some("i"),
            jti: Some("j"),
            ..TokenRef::default()
        };
        assert_eq!(state.set.check(&token, 1_800_000_000), Some(Revoked::Token));

        let applied = state.apply(
            feed(r#"{"type": "changes", "cursor": "6-0", "more": true, "entries": [
                {"cursor": "6-0", "at_ms": 1, "kind": "token", "iss": "i", "jti": "k", "exp": 1800000100}]}"#),
            now_ms,
        );
        assert_eq!(
            applied,
            Applied {
                snapshot: false,
                entries: 1,
                more: true,
                newest_at_ms: Some(1),
            }
        );
        assert_eq!(state.path(10), "/v1/revocations/feed?since=6-0&limit=10");
        // A new snapshot replaces everything.
        state.apply(
            feed(r#"{"type": "snapshot", "cursor": "7-0", "tokens": [], "users": [], "sessions": []}"#),
            now_ms,
        );
        assert!(state.set.is_empty());
    }

    #[test]
    fn cursors_are_encoded() {
        assert_eq!(percent_encode("1-0"), "1-0");
        assert_eq!(percent_encode("a b&c"), "a%20b%26c");
    }
}
