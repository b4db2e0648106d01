//! The names of the data categories legal holds and the Art. 15 metadata
//! refer to: a leaf, so settings can check connector categories without
//! reaching into the operations.

pub const BUILTIN_CATEGORIES: &[&str] = &[
    "sessions",
    "location",
    "rate_limits",
    "revocations",
    "consents",
];

pub fn valid_category_name(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= 64
        && c.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
}
