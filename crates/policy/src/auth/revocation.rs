//! The local revocation set the auth plugin checks on every request, filled
//! from meshguard-state's feed.
//!
//! Tokens are keyed on `iss` + `jti`, never on the token bytes: an ECDSA
//! signature `(r, s)` has a second valid form `(r, n - s)`, so a denylist of
//! token hashes would let a revoked token back in with the other form.
//! A user cutoff revokes every token of `sub` issued before `not_before`
//! (emergency revocation and token versioning in one); an ended session
//! revokes every token carrying its `sid`.
//!
//! A revoked token stays revoked until its `exp` plus the largest clock
//! skew any plugin may allow (`MAX_CLOCK_SKEW_S`): dropping it at `exp`
//! would let it back in for the skew a plugin still accepts it. A cutoff
//! refuses tokens issued in its own second too: `iat` has one-second
//! resolution, so a token issued just before the cutoff shares its second.

use meshguard_api::revocation::token_revocation_in_force;
use std::collections::HashMap;

/// Why a token is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    Token,
    User,
    Session,
}

impl Revoked {
    pub fn reason(self) -> &'static str {
        match self {
            Revoked::Token => "revoked_token",
            Revoked::User => "revoked_user",
            Revoked::Session => "revoked_session",
        }
    }
}

/// The claims of a token that revocation looks at.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenRef<'a> {
    pub iss: Option<&'a str>,
    pub jti: Option<&'a str>,
    pub sub: Option<&'a str>,
    pub iat: Option<i64>,
    pub sid: Option<&'a str>,
}

#[derive(Debug, Default, Clone)]
pub struct RevocationSet {
    /// `pair(iss, jti)` → `exp`.
    tokens: HashMap<String, u64>,
    /// `sub` → `not_before`.
    users: HashMap<String, u64>,
    /// `pair(sub, sid)` → until.
    sessions: HashMap<String, u64>,
}

/// One key for two strings, unambiguous whatever bytes they hold.
fn pair(a: &str, b: &str) -> String {
    let mut key = String::with_capacity(a.len() + b.len() + 8);
    key.push_str(&a.len().to_string());
    key.push(':');
    key.push_str(a);
    key.push_str(b);
    key
}

impl RevocationSet {
    pub fn new() -> RevocationSet {
        RevocationSet::default()
    }

    /// Revokes `iss`+`jti` until `exp` plus the largest skew (a later `exp` wins).
    pub fn revoke_token(&mut self, iss: &str, jti: &str, exp: u64) {
        let until = self.tokens.entry(pair(iss, jti)).or_insert(exp);
        *until = (*until).max(exp);
    }

    /// Tokens of `sub` issued before or in the second of `not_before` are
    /// revoked (the latest cutoff wins).
    pub fn cut_off_user(&mut self, sub: &str, not_before: u64) {
        let cutoff = self.users.entry(sub.to_string()).or_insert(not_before);
        *cutoff = (*cutoff).max(not_before);
    }

    /// Tokens of `sub` carrying `sid` are revoked until `until`.
    pub fn end_session(&mut self, sub: &str, sid: &str, until: u64) {
        let end = self.sessions.entry(pair(sub, sid)).or_insert(until);
        *end = (*end).max(until);
    }

    /// Whether a token is revoked at `now_s`. A token without `iat` of a user
    /// with a cutoff is revoked: nothing shows it was issued after it.
    pub fn check(&self, token: &TokenRef<'_>, now_s: i64) -> Option<Revoked> {
        let now = u64::try_from(now_s).unwrap_or(0);
        if let (Some(iss), Some(jti)) = (token.iss, token.jti) {
            if self
                .tokens
                .get(&pair(iss, jti))
                .is_some_and(|&exp| token_revocation_in_force(exp, now))
            {
                return Some(Revoked::Token);
            }
        }
        let sub = token.sub?;
        if let Some(&not_before) = self.users.get(sub) {
            let before = match token.iat {
                Some(iat) => u64::try_from(iat).map_or(true, |iat| iat <= not_before),
                None => true,
            };
            if before {
                return Some(Revoked::User);
            }
        }
        if let Some(sid) = token.sid {
            if self
                .sessions
                .get(&pair(sub, sid))
                .is_some_and(|&until| now <= until)
            {
                return Some(Revoked::Session);
            }
        }
        None
    }

    /// Drops token and session revocations that no longer matter: no plugin
    /// accepts the token any more (past `exp` and the largest skew) or the
    /// session revocation ran out.
    pub fn prune(&mut self, now_s: i64) {
        let now = u64::try_from(now_s).unwrap_or(0);
        self.tokens
            .retain(|_, exp| token_revocation_in_force(*exp, now));
        self.sessions.retain(|_, until| *until >= now);
    }

    pub fn clear(&mut self) {
        self.tokens.clear();
        self.users.clear();
        self.sessions.clear();
    }

    /// Entries held: tokens, user cutoffs, sessions.
    pub fn len(&self) -> usize {
        self.tokens.len() + self.users.len() + self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const NOW: i64 = 1_800_000_000;
    const NOW_U: u64 = NOW as u64;

    fn token<'a>(iss: &'a str, jti: &'a str, sub: &'a str, iat: i64) -> TokenRef<'a> {
        TokenRef {
            iss: Some(iss),
            jti: Some(jti),
            sub: Some(sub),
            iat: Some(iat),
            sid: None,
        }
    }

    #[test]
    fn token_revocation_is_keyed_on_issuer_and_id() {
        let mut set = RevocationSet::new();
        set.revoke_token("https://a", "j1", NOW_U + 60);
        assert_eq!(
            set.check(&token("https://a", "j1", "u", NOW), NOW),
            Some(Revoked::Token)
        );
        assert_eq!(set.check(&token("https://b", "j1", "u", NOW), NOW), None);
        assert_eq!(set.check(&token("https://a", "j2", "u", NOW), NOW), None);
        // No confusion between ("ab", "c") and ("a", "bc").
        set.revoke_token("ab", "c", NOW_U + 60);
        assert_eq!(set.check(&token("a", "bc", "u", NOW), NOW), None);
    }

    #[test]
    fn user_cutoff_revokes_older_tokens_only() {
        let mut set = RevocationSet::new();
        set.cut_off_user("alice", NOW_U);
        assert_eq!(
            set.check(&token("i", "j", "alice", NOW - 1), NOW),
            Some(Revoked::User)
        );
        // The cutoff's own second: a token issued just before it shares it.
        assert_eq!(
            set.check(&token("i", "j", "alice", NOW), NOW),
            Some(Revoked::User)
        );
        assert_eq!(set.check(&token("i", "j", "alice", NOW + 1), NOW), None);
        assert_eq!(set.check(&token("i", "j", "bob", NOW - 1), NOW), None);
        let no_iat = TokenRef {
            iat: None,
            ..token("i", "j", "alice", 0)
        };
        assert_eq!(set.check(&no_iat, NOW), Some(Revoked::User));
        // An older cutoff arriving late does not undo a newer one.
        set.cut_off_user("alice", NOW_U - 100);
        assert_eq!(
            set.check(&token("i", "j", "alice", NOW - 50), NOW),
            Some(Revoked::User)
        );
    }

    #[test]
    fn ended_sessions_revoke_their_tokens_until_the_end() {
        let mut set = RevocationSet::new();
        set.end_session("alice", "s1", NOW_U + 10);
        let with_sid = |sub, sid| TokenRef {
            sid: Some(sid),
            ..token("i", "j", sub, NOW)
        };
        assert_eq!(
            set.check(&with_sid("alice", "s1"), NOW),
            Some(Revoked::Session)
        );
        assert_eq!(set.check(&with_sid("alice", "s2"), NOW), None);
        assert_eq!(set.check(&with_sid("bob", "s1"), NOW), None);
        assert_eq!(set.check(&with_sid("alice", "s1"), NOW + 11), None);
    }

    #[test]
    fn a_revoked_token_stays_revoked_for_the_largest_skew_after_exp() {
        use meshguard_api::revocation::MAX_CLOCK_SKEW_S;
        let mut set = RevocationSet::new();
        set.revoke_token("i", "j", NOW_U);
        let later = |s: u64| NOW + s as i64;
        let t = token("i", "j", "u", NOW);
        assert_eq!(set.check(&t, later(MAX_CLOCK_SKEW_S)), Some(Revoked::Token));
        set.prune(later(MAX_CLOCK_SKEW_S));
        assert_eq!(set.len(), 1);
        assert_eq!(set.check(&t, later(MAX_CLOCK_SKEW_S + 1)), None);
        set.prune(later(MAX_CLOCK_SKEW_S + 1));
        assert!(set.is_empty());
    }

    #[test]
    fn prune_drops_what_ran_out_and_keeps_cutoffs() {
        use meshguard_api::revocation::MAX_CLOCK_SKEW_S;
        let mut set = RevocationSet::new();
        set.revoke_token("i", "old", NOW_U - 1 - MAX_CLOCK_SKEW_S);
        set.revoke_token("i", "new", NOW_U + 1);
        set.end_session("u", "s", NOW_U - 1);
        set.cut_off_user("u", NOW_U - 1000);
        set.prune(NOW);
        assert_eq!(set.len(), 2);
        assert_eq!(
            set.check(&token("i", "new", "x", NOW), NOW),
            Some(Revoked::Token)
        );
        set.clear();
        assert!(set.is_empty());
    }

    #[test]
    fn tokens_without_identity_claims_are_only_checked_by_what_they_have() {
        let mut set = RevocationSet::new();
        set.cut_off_user("u", NOW_U);
        assert_eq!(set.check(&TokenRef::default(), NOW), None);
        assert_eq!(
            set.check(
                &TokenRef {
                    sub: Some("u"),
                    iat: Some(-5),
                    ..TokenRef::default()
                },
                NOW
            ),
            Some(Revoked::User)
        );
    }
}
