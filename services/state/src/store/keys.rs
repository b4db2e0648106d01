//! Redis key names: the layout shared with the rate limiter and
//! meshguard-gdpr lives in `meshguard_api::keys`; this module adds the
//! service's own names. Everything of one user carries the `{u:sub:<id>}`
//! hash tag so it lives in one cluster slot (per-user scripts stay
//! single-slot); shared structures carry their own tag.

use meshguard_api::keys as shared;

pub use shared::{
    last_location, session_records, sessions, AUDIT_STREAM, REV_SESSIONS, REV_STREAM, REV_TOKENS,
    REV_TRIMMED, REV_USERS, USER_IDLE_TTL_MS,
};
pub const FLAG_DEFS: &str = "mg:{flags}:defs";
pub const FLAG_VERSION: &str = "mg:{flags}:version";
pub use meshguard_api::ratelimit::GLOBAL_BUCKET;
/// Never written: fills the script's index slot when only shared buckets
/// are evaluated (a key must be in the same slot as the others).
pub const GLOBAL_INDEX: &str = "mg:{rl:global}:index";

/// A user's key index (sessions, revocation entries, and the rate limiter's
/// buckets of `sub:<id>`: one index per user).
pub fn index(user: &str) -> String {
    shared::user_index(user)
}

/// The index a rate-limit key's buckets are listed in (the user's own index
/// for a `sub:` key).
pub fn limit_index(key: &str) -> String {
    shared::limit_index(key)
}

/// A bucket of a rate-limit key (`sub:<id>`, `ip:<address>`, or any key a
/// client names).
pub fn bucket(key: &str, name: &str) -> String {
    shared::keyed(key, &format!("rl:{name}"))
}

pub fn lease(key: &str, lease_id: &str) -> String {
    shared::keyed(key, &format!("lease:{lease_id}"))
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
        let limited = meshguard_api::keys::subject_key("alice");
        assert_eq!(limit_index(&limited), index("alice"));
        for key in [
            index("alice"),
            bucket(&limited, "minute"),
            sessions("alice"),
            session_records("alice"),
            last_location("alice"),
            lease(&limited, "l1"),
        ] {
            assert!(key.starts_with("mg:{u:sub:alice}:"), "{key}");
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
