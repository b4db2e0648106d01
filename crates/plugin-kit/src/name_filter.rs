//! Quick answers to "is this header name among these?": a request's policies
//! look up dozens of names, most of them absent, and comparing each against
//! every header cost more than the lookups' own work.

/// A name's length with its last and middle bytes: the header names of a
/// request (`x-feature-…` and the like) mostly differ in one of them. Equal
/// names have equal fingerprints; a lookup compares bytes only on a match.
pub fn fingerprint(name: &[u8]) -> u32 {
    let at = |i: usize| u32::from(name.get(i).copied().unwrap_or(0));
    let len = name.len();
    (len as u32 & 0xffff) | at(len.wrapping_sub(1)) << 16 | at(len / 2) << 24
}

/// A header name with its fingerprint, computed once for the lookups of
/// one change.
#[derive(Debug, Clone, Copy)]
pub struct Name<'a> {
    pub text: &'a str,
    pub fingerprint: u32,
}

impl<'a> Name<'a> {
    pub fn new(text: &'a str) -> Name<'a> {
        Name {
            text,
            fingerprint: fingerprint(text.as_bytes()),
        }
    }
}

/// A one-word Bloom filter over fingerprints: "absent" is certain, "maybe"
/// means look.
#[derive(Debug, Default, Clone, Copy)]
pub struct NameFilter(u64);

impl NameFilter {
    pub fn insert(&mut self, fingerprint: u32) {
        self.0 |= bit(fingerprint);
    }

    pub fn may_contain(&self, fingerprint: u32) -> bool {
        self.0 & bit(fingerprint) != 0
    }
}

fn bit(fingerprint: u32) -> u64 {
    1 << (fingerprint.wrapping_mul(0x9e37_79b1) >> 26)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserted_names_are_always_maybe() {
        let mut filter = NameFilter::default();
        let names: Vec<String> = (0..300).map(|i| format!("x-name-{i}")).collect();
        for name in &names {
            filter.insert(fingerprint(name.as_bytes()));
            assert!(filter.may_contain(fingerprint(name.as_bytes())));
        }
        assert!(names
            .iter()
            .all(|n| filter.may_contain(fingerprint(n.as_bytes()))));
    }

    #[test]
    fn an_empty_filter_holds_nothing_and_few_names_leave_most_out() {
        let empty = NameFilter::default();
        assert!(!empty.may_contain(fingerprint(b"")));
        assert!(!empty.may_contain(fingerprint(b"x-auth-sub")));
        let mut filter = NameFilter::default();
        for name in [
            ":path",
            ":method",
            ":authority",
            "user-agent",
            "authorization",
        ] {
            filter.insert(fingerprint(name.as_bytes()));
        }
        let absent = (0..100)
            .filter(|i| !filter.may_contain(fingerprint(format!("x-feature-{i}").as_bytes())))
            .count();
        assert!(absent > 80, "{absent} of 100 absent names ruled out");
    }

    #[test]
    fn fingerprints_take_length_last_and_middle_byte() {
        assert_eq!(fingerprint(b"abcde"), fingerprint(b"xbcde"));
        assert_ne!(fingerprint(b"abcde"), fingerprint(b"abcdf"));
        assert_ne!(fingerprint(b"abcde"), fingerprint(b"abXde"));
        assert_ne!(fingerprint(b"abcde"), fingerprint(b"abcdef"));
    }
}
