//! The strip prefixes, checked against every request header's name. Their
//! first eight bytes are compared as one word before the rest: `starts_with`
//! called `memcmp` for every header and prefix, two dozen calls a request.

#[derive(Debug, Default)]
pub struct Prefixes(Vec<Prefix>);

#[derive(Debug)]
struct Prefix {
    text: String,
    /// The first (up to) eight bytes, little-endian, and which bytes count.
    head: u64,
    mask: u64,
}

impl Prefixes {
    pub fn new(prefixes: &[String]) -> Prefixes {
        Prefixes(
            prefixes
                .iter()
                .map(|text| {
                    let mut word = [0u8; 8];
                    for (w, b) in word.iter_mut().zip(text.bytes()) {
                        *w = b;
                    }
                    let counted = text.len().min(8);
                    let mask = u64::MAX.checked_shr(64 - 8 * counted as u32).unwrap_or(0);
                    Prefix {
                        text: text.clone(),
                        head: u64::from_le_bytes(word),
                        mask,
                    }
                })
                .collect(),
        )
    }

    /// Whether `name` starts with one of the prefixes.
    pub fn any_starts(&self, name: &str) -> bool {
        match name.as_bytes().first_chunk::<8>() {
            Some(word) => {
                let head = u64::from_le_bytes(*word);
                self.0
                    .iter()
                    .any(|p| head & p.mask == p.head && name.starts_with(p.text.as_str()))
            }
            None => self.0.iter().any(|p| name.starts_with(p.text.as_str())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_starts_with_for_every_length() {
        let list: Vec<String> = ["x-feature-", "x-v", "", "abcdefgh", "abcdefghi"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let names = [
            "x-feature-a",
            "x-feature-",
            "x-featur",
            "x-v",
            "x-",
            "x-variant",
            "abcdefgh",
            "abcdefghi",
            "abcdefgX",
            "",
            "y",
            "abcdefghij",
        ];
        for prefix in &list {
            let one = Prefixes::new(std::slice::from_ref(prefix));
            for name in names {
                assert_eq!(
                    one.any_starts(name),
                    name.starts_with(prefix.as_str()),
                    "{name:?} / {prefix:?}"
                );
            }
        }
        let none = Prefixes::new(&[]);
        assert!(names.iter().all(|n| !none.any_starts(n)));
    }
}
