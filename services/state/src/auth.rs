//! Shared-secret checks: plugin endpoints take the plugin secret (or the admin
//! token), operator endpoints only the admin token. Comparison is constant
//! time; secrets never appear in logs or `Debug` output.

use crate::app::AppState;
use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use meshguard_api::error::codes;
use subtle::ConstantTimeEq;

#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Refuses secrets shorter than 16 bytes: they are guessable.
    pub fn new(value: &str) -> Result<Secret, String> {
        let value = value.trim();
        if value.len() < 16 {
            return Err("must be at least 16 characters".into());
        }
        Ok(Secret(value.as_bytes().to_vec()))
    }

    pub fn matches(&self, given: &[u8]) -> bool {
        self.0.as_slice().ct_eq(given).into()
    }

    pub fn expose(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
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

pub async fn plugin(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let given = presented(req.headers());
    // `|`, not `||`: both comparisons always run, so timing does not tell
    // which secret was close.
    match given {
        Some(g) if state.secrets.plugin.matches(g) | state.secrets.admin.matches(g) => {
            Ok(next.run(req).await)
        }
        _ => Err(refuse(given)),
    }
}

pub async fn admin(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let given = presented(req.headers());
    match given {
        Some(g) if state.secrets.admin.matches(g) => Ok(next.run(req).await),
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
