//! Shared-secret checks: plugin endpoints take the plugin secret (or the admin
//! token), operator endpoints only the admin token. Comparison is constant
//! time; secrets never appear in logs or `Debug` output.

use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use meshguard_api::error::codes;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// One secret, or several during a rotation: a value (or file) holding one
/// secret per line accepts each of them, so the callers can move from the
/// old secret to the new one without a moment where either is refused.
#[derive(Clone)]
pub struct Secret(Vec<Vec<u8>>);

impl Secret {
    /// One secret per non-blank line (surrounding whitespace trimmed).
    /// Refuses secrets shorter than 16 bytes: they are guessable.
    pub fn new(value: &str) -> Result<Secret, String> {
        let values: Vec<Vec<u8>> = value
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(|line| line.as_bytes().to_vec())
            .collect();
        if values.is_empty() || values.iter().any(|v| v.len() < 16) {
            return Err("must be at least 16 characters (each line, when rotating)".into());
        }
        Ok(Secret(values))
    }

    /// Whether `given` is one of the secrets. Every one is compared, in
    /// constant time, whatever matched: timing does not tell which was close.
    pub fn matches(&self, given: &[u8]) -> bool {
        self.0
            .iter()
            .fold(subtle::Choice::from(0), |found, value| {
                found | value.as_slice().ct_eq(given)
            })
            .into()
    }

    /// The first secret: the one a client of this value sends.
    pub fn expose(&self) -> &str {
        self.0
            .first()
            .and_then(|v| std::str::from_utf8(v).ok())
            .unwrap_or_default()
    }

    /// Whether any of these secrets is also one of `other`'s.
    pub fn overlaps(&self, other: &Secret) -> bool {
        self.0.iter().any(|value| other.matches(value))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone)]
pub struct Secrets {
    pub plugin: Secret,
    pub admin: Secret,
}

fn presented(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(v) = headers.get(meshguard_api::PLUGIN_SECRET_HEADER) {
        return Some(v.as_bytes());
    }
    let auth = headers.get(axum::http::header::AUTHORIZATION)?.as_bytes();
    let scheme = auth.get(..7)?;
    if scheme.eq_ignore_ascii_case(b"bearer ") {
        auth.get(7..)
    } else {
        None
    }
}

fn refuse(given: Option<&[u8]>) -> ApiError {
    match given {
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            codes::MISSING_CREDENTIALS,
            "credentials required (authorization: Bearer ...)",
        ),
        Some(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            codes::INVALID_CREDENTIALS,
            "credentials not accepted here",
        ),
    }
}

/// Plugin endpoints: the plugin secret or the admin token.
pub async fn plugin(
    State(secrets): State<Arc<Secrets>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let given = presented(req.headers());
    // `|`, not `||`: both comparisons always run, so timing does not tell
    // which secret was close.
    match given {
        Some(g) if secrets.plugin.matches(g) | secrets.admin.matches(g) => Ok(next.run(req).await),
        _ => Err(refuse(given)),
    }
}

/// Operator endpoints: the admin token only.
pub async fn admin(
    State(secrets): State<Arc<Secrets>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let given = presented(req.headers());
    match given {
        Some(g) if secrets.admin.matches(g) => Ok(next.run(req).await),
        _ => Err(refuse(given)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole_values_and_hide_in_debug() {
        let s = Secret::new("0123456789abcdef").unwrap();
        assert!(s.matches(b"0123456789abcdef"));
        assert!(!s.matches(b"0123456789abcde"));
        assert!(!s.matches(b"0123456789abcdeff"));
        assert!(!s.matches(b""));
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert!(Secret::new("short").is_err());
    }

    #[test]
    fn a_rotation_accepts_the_old_and_the_new_secret() {
        let s = Secret::new("old-secret-0123456789\n\n  new-secret-0123456789  \n").unwrap();
        assert!(s.matches(b"old-secret-0123456789"));
        assert!(s.matches(b"new-secret-0123456789"));
        assert!(!s.matches(b"other-secret-0123456"));
        assert_eq!(s.expose(), "old-secret-0123456789");
        assert!(Secret::new("a-long-enough-secret\nshort").is_err());
        assert!(Secret::new(" \n ").is_err());
        let admin = Secret::new("new-secret-0123456789").unwrap();
        assert!(s.overlaps(&admin) && admin.overlaps(&s));
    }

    #[test]
    fn bearer_and_secret_header_are_read() {
        let mut h = HeaderMap::new();
        assert_eq!(presented(&h), None);
        h.insert("authorization", "bearer abc".parse().unwrap());
        assert_eq!(presented(&h), Some(&b"abc"[..]));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(presented(&h), None);
        h.insert("x-meshguard-secret", "xyz".parse().unwrap());
        assert_eq!(presented(&h), Some(&b"xyz"[..]));
    }
}
