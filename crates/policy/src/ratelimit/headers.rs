//! The IETF `RateLimit-Policy` and `RateLimit` fields
//! (draft-ietf-httpapi-ratelimit-headers-10, structured-field lists) and
//! `Retry-After`, rendered from bucket states.
//!
//! On an admitted request `RateLimit` lists every bucket with `t` = seconds
//! until it is full again. On a refused one it lists only the refusing
//! buckets with `t` = seconds until that bucket admits the request, and
//! `Retry-After` is the largest of those, so it is never earlier than any `t`.

use super::BucketState;
use std::borrow::Cow;

fn seconds_ceil(ms: u64) -> u64 {
    ms.div_ceil(1_000)
}

/// Appends an sf-string: quoted, with `"` and `\` escaped (characters an
/// sf-string cannot hold are left out).
fn push_sf_string(out: &mut String, name: &str) {
    out.push('"');
    let plain = |b: &u8| (b' '..=b'~').contains(b) && *b != b'"' && *b != b'\\';
    if name.bytes().all(|b| plain(&b)) {
        // Every configured bucket name: copied as it is.
        out.push_str(name);
        out.push('"');
        return;
    }
    for c in name.chars().filter(|c| (' '..='~').contains(c)) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Joins one list member per bucket with `", "`, written in place with
/// `itoa`: these headers go out on every response, and `format!` machinery
/// costs more than the rest of the rendering under Wasm.
fn sf_list<'a>(
    buckets: impl Iterator<Item = &'a BucketState>,
    params: impl Fn(&BucketState) -> (char, u64, char, u64),
) -> String {
    let mut out = String::with_capacity(64);
    let mut digits = itoa::Buffer::new();
    for (i, b) in buckets.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_sf_string(&mut out, &b.name);
        let (k1, v1, k2, v2) = params(b);
        for (key, value) in [(k1, v1), (k2, v2)] {
            out.push(';');
            out.push(key);
            out.push('=');
            out.push_str(digits.format(value));
        }
    }
    out
}

/// `"minute";q=10;w=60, "hour";q=100;w=3600`
pub fn policy_header(buckets: &[BucketState]) -> String {
    sf_list(buckets.iter(), |b| {
        ('q', b.limit, 'w', seconds_ceil(b.window_ms).max(1))
    })
}

/// `RateLimit-Policy` rendered once for the buckets a tier is configured
/// with: it only changes when the buckets do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyHeader {
    rendered_for: Vec<(Cow<'static, str>, u64, u64)>,
    value: String,
}

impl PolicyHeader {
    pub fn new(buckets: &[BucketState]) -> PolicyHeader {
        PolicyHeader {
            rendered_for: buckets.iter().map(policy_terms).collect(),
            value: policy_header(buckets),
        }
    }

    /// The header for `buckets`: the one rendered at configuration when
    /// they are the configured buckets, else rendered now.
    pub fn render(&self, buckets: &[BucketState]) -> Cow<'_, str> {
        let same = buckets.len() == self.rendered_for.len()
            && buckets
                .iter()
                .zip(&self.rendered_for)
                .all(|(b, (name, limit, window))| {
                    b.name == *name && b.limit == *limit && b.window_ms == *window
                });
        if same {
            Cow::Borrowed(&self.value)
        } else {
            Cow::Owned(policy_header(buckets))
        }
    }
}

fn policy_terms(b: &BucketState) -> (Cow<'static, str>, u64, u64) {
    (b.name.clone(), b.limit, b.window_ms)
}

/// `"minute";r=4;t=36, "hour";r=94;t=216`
pub fn ratelimit_header(buckets: &[BucketState]) -> String {
    let refused = buckets.iter().any(|b| !b.allowed);
    let listed = buckets.iter().filter(|b| !refused || !b.allowed);
    sf_list(listed, |b| {
        let t = if refused && b.retry_after_ms != u64::MAX {
            b.retry_after_ms
        } else {
            b.reset_ms
        };
        ('r', b.remaining, 't', seconds_ceil(t))
    })
}

/// Whole seconds (at least 1) until a refused request could pass; `None`
/// when nothing refused it or it never can (its cost exceeds a burst).
pub fn retry_after_seconds(buckets: &[BucketState]) -> Option<u64> {
    let mut refusing = buckets.iter().filter(|b| !b.allowed).peekable();
    refusing.peek()?;
    let mut longest = 0;
    for b in refusing {
        if b.retry_after_ms == u64::MAX {
            return None;
        }
        longest = longest.max(b.retry_after_ms);
    }
    Some(seconds_ceil(longest).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn bucket(
        name: &str,
        limit: u64,
        window_ms: u64,
        remaining: u64,
        reset_ms: u64,
        retry: u64,
    ) -> BucketState {
        BucketState {
            name: name.to_string().into(),
            limit,
            window_ms,
            remaining,
            reset_ms,
            retry_after_ms: retry,
            allowed: retry == 0,
        }
    }

    #[test]
    fn policy_header_is_rendered_once_for_its_buckets() {
        let configured = [
            bucket("minute", 10, 60_000, 10, 0, 0),
            bucket("hour", 100, 3_600_000, 100, 0, 0),
        ];
        let cached = PolicyHeader::new(&configured);
        let after = [
            bucket("minute", 10, 60_000, 3, 42_000, 0),
            bucket("hour", 100, 3_600_000, 93, 252_000, 0),
        ];
        let rendered = cached.render(&after);
        assert!(matches!(rendered, Cow::Borrowed(_)));
        assert_eq!(rendered, policy_header(&after));
        let other = [bucket("minute", 20, 60_000, 3, 0, 0)];
        let rendered = cached.render(&other);
        assert!(matches!(rendered, Cow::Owned(_)));
        assert_eq!(rendered, "\"minute\";q=20;w=60");
    }

    #[test]
    fn admitted_lists_every_bucket() {
        let b = [
            bucket("minute", 10, 60_000, 4, 35_001, 0),
            bucket("hour", 100, 3_600_000, 94, 216_000, 0),
        ];
        assert_eq!(
            policy_header(&b),
            r#""minute";q=10;w=60, "hour";q=100;w=3600"#
        );
        assert_eq!(
            ratelimit_header(&b),
            r#""minute";r=4;t=36, "hour";r=94;t=216"#
        );
        assert_eq!(retry_after_seconds(&b), None);
    }

    #[test]
    fn refused_lists_the_refusing_buckets_and_retry_after_covers_them() {
        let b = [
            bucket("minute", 10, 60_000, 0, 60_000, 5_200),
            bucket("hour", 100, 3_600_000, 90, 360_000, 0),
            bucket("global", 5, 1_000, 0, 1_000, 200),
        ];
        assert_eq!(
            ratelimit_header(&b),
            r#""minute";r=0;t=6, "global";r=0;t=1"#
        );
        assert_eq!(retry_after_seconds(&b), Some(6));
    }

    #[test]
    fn never_admissible_has_no_retry_after() {
        let b = [bucket("minute", 10, 60_000, 10, 0, u64::MAX)];
        assert_eq!(retry_after_seconds(&b), None);
        assert_eq!(ratelimit_header(&b), r#""minute";r=10;t=0"#);
    }

    #[test]
    fn names_are_quoted_safely() {
        let b = [bucket("a\"b\\c\n", 1, 500, 1, 0, 0)];
        assert_eq!(policy_header(&b), r#""a\"b\\c";q=1;w=1"#);
    }
}
