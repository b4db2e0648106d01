//! The Redis key layout every component agrees on: the rate limiter names
//! its buckets with [`limit_key`], meshguard-state stores each user's data
//! under [`user_key`], and meshguard-gdpr finds all of it again through the
//! same functions. One definition, so erasure can never miss a key because
//! two components spelled the user differently.
//!
//! Everything of one user carries the hash tag `{u:sub:<subject>}` (one
//! cluster slot, so per-user scripts stay single-slot); shared structures
//! carry their own tag.

/// The longest rate-limit key the state service accepts (bytes).
pub const MAX_KEY_LEN: usize = 256;

/// The revocation feed stream (entries name the subject).
pub const REV_STREAM: &str = "mg:{rev}:feed";
/// Revoked tokens: zset `iss\njti` → exp.
pub const REV_TOKENS: &str = "mg:{rev}:tokens";
/// User not-before cutoffs: hash `sub` → Unix seconds.
pub const REV_USERS: &str = "mg:{rev}:users";
/// Revoked sessions: zset `sub\nsid` → until.
pub const REV_SESSIONS: &str = "mg:{rev}:sessions";
/// The newest feed entry no longer in the stream: a cursor before it gets a
/// snapshot instead of changes.
pub const REV_TRIMMED: &str = "mg:{rev}:trimmed-through";
/// meshguard-state's audit stream (entries name the subject).
pub const AUDIT_STREAM: &str = "mg:{audit}:events";

/// How long a user's idle per-user keys (sessions, session records, last
/// location, consents mirror, the index) live after their last write: a user
/// not seen for this long leaves nothing behind in Redis.
pub const USER_IDLE_TTL_MS: u64 = 30 * 24 * 3_600 * 1_000;

/// The key a client is rate-limited and indexed under: `<kind>:<id>`, with
/// braces, `%` and control characters percent-encoded (braces would break
/// the Redis hash tags). An id too long for the state service keeps its head
/// and gains a hash of the whole id, so distinct ids stay distinct.
pub fn limit_key(kind: &str, id: &str) -> String {
    let mut key = String::with_capacity(kind.len() + 1 + id.len());
    key.push_str(kind);
    key.push(':');
    let plain = |b: &u8| (b.is_ascii_graphic() && !matches!(b, b'{' | b'}' | b'%')) || *b == b' ';
    if id.len() <= MAX_KEY_LEN && id.as_bytes().iter().all(plain) {
        // The usual id: nothing to encode, copied as it is.
        key.push_str(id);
        if key.len() <= MAX_KEY_LEN {
            return key;
        }
    }
    key.truncate(kind.len() + 1);
    for c in id.chars() {
        if c == '{' || c == '}' || c == '%' || c.is_control() {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                key.push_str(&format!("%{byte:02X}"));
            }
        } else {
            key.push(c);
        }
    }
    if key.len() <= MAX_KEY_LEN {
        return key;
    }
    let suffix = format!("~{:016x}", fnv1a64(id.as_bytes()));
    let mut cut = MAX_KEY_LEN - suffix.len();
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    key.truncate(cut);
    key.push_str(&suffix);
    key
}

/// FNV-1a, 64-bit: enough to keep ids longer than the limit apart.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The rate-limit key of an authenticated subject (`sub:<subject>`): the
/// form in which the user appears inside every per-user key name.
pub fn subject_key(sub: &str) -> String {
    limit_key("sub", sub)
}

/// The rate-limit key of an anonymous client address (`ip:<address>`).
pub fn address_key(address: &str) -> String {
    limit_key("ip", address)
}

/// `mg:{u:<limit key>}:<rest>`: a key of one rate-limited client.
pub fn keyed(limit_key: &str, rest: &str) -> String {
    let mut key = String::with_capacity(limit_key.len() + rest.len() + 7);
    key.push_str("mg:{u:");
    key.push_str(limit_key);
    key.push_str("}:");
    key.push_str(rest);
    key
}

/// The prefix every per-user key of this subject starts with.
pub fn user_prefix(sub: &str) -> String {
    keyed(&subject_key(sub), "")
}

/// A per-user key of a subject: `mg:{u:sub:<subject>}:<rest>`.
pub fn user_key(sub: &str, rest: &str) -> String {
    keyed(&subject_key(sub), rest)
}

/// The set of every key (or `<shared key>#<member>`) holding the subject's
/// data, written as each is stored.
pub fn user_index(sub: &str) -> String {
    user_key(sub, "index")
}

/// The index of a rate-limit key (the user's index when it is `sub:`).
pub fn limit_index(limit_key: &str) -> String {
    keyed(limit_key, "index")
}

pub fn sessions(sub: &str) -> String {
    user_key(sub, "sessions")
}

pub fn session_records(sub: &str) -> String {
    user_key(sub, "session-records")
}

pub fn last_location(sub: &str) -> String {
    user_key(sub, "last-location")
}

pub fn consents(sub: &str) -> String {
    user_key(sub, "consents")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limiter_and_the_user_keys_meet_in_one_tag() {
        let rl = keyed(&subject_key("alice"), "rl:minute");
        assert_eq!(rl, "mg:{u:sub:alice}:rl:minute");
        assert_eq!(limit_index(&subject_key("alice")), user_index("alice"));
        for key in [
            user_index("alice"),
            sessions("alice"),
            session_records("alice"),
            last_location("alice"),
            consents("alice"),
        ] {
            assert!(key.starts_with(&user_prefix("alice")), "{key}");
        }
        assert_eq!(user_prefix("a{b}"), "mg:{u:sub:a%7Bb%7D}:");
    }

    #[test]
    fn keys_are_safe_for_the_state_service() {
        assert_eq!(limit_key("sub", "alice"), "sub:alice");
        assert_eq!(limit_key("sub", "a{b}%\n"), "sub:a%7Bb%7D%25%0A");
        let long = "é".repeat(300);
        let key = limit_key("sub", &long);
        assert!(key.len() <= MAX_KEY_LEN, "{}", key.len());
        assert!(key.starts_with("sub:é"));
        assert_ne!(key, limit_key("sub", &format!("{long}x")));
        let plain_long = "a".repeat(300);
        let key = limit_key("sub", &plain_long);
        assert!(key.len() <= MAX_KEY_LEN && key.starts_with("sub:aaa"));
        assert_ne!(key, limit_key("sub", &format!("{plain_long}b")));
        assert_eq!(address_key("10.0.0.1"), "ip:10.0.0.1");
        assert_eq!(limit_key("sub", "a b\u{7f}é"), "sub:a b%7Fé");
    }
}
