//! A bounded cache of verified tokens so a repeated token skips signature
//! work. Keyed on the token string itself: a hit stands for "this exact
//! string verified" with no collision to reason about, and hashing a token
//! with the map's SipHash costs a fraction of a digest. Revocation (keyed on
//! `iss`+`jti`) and the validity window are checked on every hit.

use crate::verify::Verified;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

pub struct TokenCache {
    max: usize,
    entries: HashMap<Rc<str>, Rc<Verified>>,
    /// Insertion order; the oldest is evicted first.
    order: VecDeque<Rc<str>>,
}

impl TokenCache {
    pub fn new(max: usize) -> TokenCache {
        TokenCache {
            max,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn get(&self, token: &str) -> Option<&Rc<Verified>> {
        self.entries.get(token)
    }

    pub fn insert(&mut self, token: &str, verified: Rc<Verified>) {
        if self.max == 0 {
            return;
        }
        if let Some(entry) = self.entries.get_mut(token) {
            *entry = verified;
            return;
        }
        let token: Rc<str> = Rc::from(token);
        self.entries.insert(Rc::clone(&token), verified);
        self.order.push_back(token);
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

    fn verified(sub: &str) -> Rc<Verified> {
        Rc::new(Verified {
            sub: sub.into(),
            tier: None,
            groups: None,
            sid: None,
            iss: None,
            jti: None,
            iat: None,
            scopes: vec![],
            window: Window::new(None, None, 0),
        })
    }

    #[test]
    fn bounded_oldest_first() {
        let mut cache = TokenCache::new(2);
        for t in ["a", "b", "c"] {
            cache.insert(t, verified(t));
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.get("a").is_none());
        assert_eq!(cache.get("c").unwrap().sub, "c");
        cache.insert("c", verified("c2"));
        assert_eq!(cache.len(), 2, "replacing an entry evicts nothing");
        cache.clear();
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn size_zero_caches_nothing() {
        let mut cache = TokenCache::new(0);
        cache.insert("a", verified("a"));
        assert_eq!(cache.len(), 0);
    }
}
