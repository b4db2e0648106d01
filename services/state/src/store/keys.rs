//! Redis key names. Everything of one user carries the `{u:<id>}` hash tag so
//! it lives in one cluster slot (per-user scripts stay single-slot); shared
//! structures carry their own tag.

pub const REV_STREAM: &str = "mg:{rev}:feed";
pub const REV_TOKENS: &str = "mg:{rev}:tokens";
pub const REV_USERS: &str = "mg:{rev}:users";
pub const REV_SESSIONS: &str = "mg:{rev}:sessions";
pub const REV_TRIMMED: &str = "mg:{rev}:trimmed-through";
pub const FLAG_DEFS: &str = "mg:{flags}:defs";
pub const FLAG_VERSION: &str = "mg:{flags}:version";
pub const AUDIT_STREAM: &str = "mg:{audit}:events";
pub const GLOBAL_BUCKET: &str = "mg:{rl:global}:tat";
/// Never written: fills the script's index slot when only shared buckets
/// are evaluated (a key must be in the same slot as the others).
pub const GLOBAL_INDEX: &str = "mg:{rl:global}:index";

fn user(id: &str, rest: &str) -> String {
    format!("mg:{{u:{id}}}:{rest}")
}

pub fn index(id: &str) -> String {
    user(id, "index")
}

pub fn bucket(id: &str, name: &str) -> String {
    user(id, &format!("rl:{name}"))
}

pub fn lease(id: &str, lease_id: &str) -> String {
    user(id, &format!("lease:{lease_id}"))
}

pub fn sessions(id: &str) -> String {
    user(id, "sessions")
}

pub fn session_records(id: &str) -> String {
    user(id, "session-records")
}

pub fn last_location(id: &str) -> String {
    user(id, "last-location")
}

/// Identifiers used inside keys: no hash-tag braces, no control characters
/// (the feed joins fields with `\n`), bounded length.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 256 && !id.chars().any(|c| c == '{' || c == '}' || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_keys_share_a_hash_tag() {
        for key in [
            index("alice"),
            bucket("alice", "minute"),
            sessions("alice"),
            session_records("alice"),
            last_location("alice"),
            lease("alice", "l1"),
        ] {
            assert!(key.starts_with("mg:{u:alice}:"), "{key}");
        }
    }

    #[test]
    fn ids_that_would_break_tags_are_refused() {
        assert!(valid_id("alice@example.com"));
        assert!(valid_id("10.0.0.1"));
        assert!(!valid_id(""));
        assert!(!valid_id("a}b"));
        assert!(!valid_id("a\nb"));
        assert!(!valid_id(&"x".repeat(257)));
    }
}
