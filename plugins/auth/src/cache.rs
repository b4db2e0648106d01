//! A bounded cache of verified tokens so a repeated token skips signature
//! work. Keyed on the SHA-256 of the token bytes: that is safe here because
//! a hit only stands for "this exact string verified"; revocation (keyed on
//! `iss`+`jti`) and the validity window are checked on every hit.

use crate::verify::Verified;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};

pub type TokenKey = [u8; 32];

pub fn key_of(token: &str) -> TokenKey {
    Sha256::digest(token.as_bytes()).into()
}

pub struct TokenCache {
    max: usize,
    entries: HashMap<TokenKey, Verified>,
    /// Insertion order; the oldest is evicted first.
    order: VecDeque<TokenKey>,
}

impl TokenCache {
    pub fn new(max: usize) -> TokenCache {
        TokenCache {
            max,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn get(&self, key: &TokenKey) -> Option<&Verified> {
        self.entries.get(key)
    }

    pub fn insert(&mut self, key: TokenKey, verified: Verified) {
        if self.max == 0 {
            return;
        }
        if self.entries.insert(key, verified).is_some() {
            return;
        }
        self.order.push_back(key);
        while self.entries.len() > self.max {
            match self.order.pop_front() {
                Some(old) => {
                    self.entries.remove(&old);
                }
                None => break,
            }
        }
    }

    /// Forgets everything (the keys changed).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshguard_policy::auth::claims::Window;

    fn verified(sub: &str) -> Verified {
        Verified {
            sub: sub.into(),
            tier: None,
            sid: None,
            iss: None,
            jti: None,
            iat: None,
            scopes: vec![],
            window: Window::new(None, None, 0),
        }
    }

    #[test]
    fn bounded_oldest_first() {
        let mut cache = TokenCache::new(2);
        for t in ["a", "b", "c"] {
            cache.insert(key_of(t), verified(t));
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&key_of("a")).is_none());
        assert_eq!(cache.get(&key_of("c")).unwrap().sub, "c");
        cache.insert(key_of("c"), verified("c2"));
        assert_eq!(cache.len(), 2, "replacing an entry evicts nothing");
        cache.clear();
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn size_zero_caches_nothing() {
        let mut cache = TokenCache::new(0);
        cache.insert(key_of("a"), verified("a"));
        assert_eq!(cache.len(), 0);
    }
}
