//! Claim checks of a verified token, by the proxy's clock (Unix seconds)
//! with a clock-skew allowance: issuance time, issuer, audience, scopes, and
//! the validity window a cached token is checked against on every request.

/// Why a token's claims are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimError {
    Expired,
    NotYetValid,
    /// `iat` is later than now plus the skew.
    IssuedInFuture,
    /// `iat` is older than the configured maximum token age.
    TooOld,
    /// `exp` lies further after `iat` (or now) than the longest lifetime.
    TooLongLived,
    MissingClaim(&'static str),
    BadIssuer,
    BadAudience,
    /// An identity claim cannot travel in a header (control characters, too long).
    BadIdentity(&'static str),
}

impl ClaimError {
    /// A stable reason code for responses and stats.
    pub fn reason(self) -> &'static str {
        match self {
            ClaimError::Expired => "expired",
            ClaimError::NotYetValid => "not_yet_valid",
            ClaimError::IssuedInFuture => "issued_in_future",
            ClaimError::TooOld => "too_old",
            ClaimError::TooLongLived => "too_long_lived",
            ClaimError::MissingClaim(_) => "missing_claim",
            ClaimError::BadIssuer => "bad_issuer",
            ClaimError::BadAudience => "bad_audience",
            ClaimError::BadIdentity(_) => "bad_identity",
        }
    }
}

/// When a token is valid, skew included: `[from, until]`, either end open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: Option<i64>,
    pub until: Option<i64>,
}

impl Window {
    pub fn new(nbf: Option<i64>, exp: Option<i64>, skew_s: i64) -> Window {
        Window {
            from: nbf.map(|n| n.saturating_sub(skew_s)),
            until: exp.map(|e| e.saturating_add(skew_s)),
        }
    }

    pub fn check(&self, now_s: i64) -> Result<(), ClaimError> {
        if self.until.is_some_and(|until| now_s > until) {
            return Err(ClaimError::Expired);
        }
        if self.from.is_some_and(|from| now_s < from) {
            return Err(ClaimError::NotYetValid);
        }
        Ok(())
    }
}

/// `iat` may not lie in the future (beyond the skew) nor, with `max_age_s`,
/// further back than that. A missing `iat` passes unless a maximum age is set.
pub fn check_issued_at(
    iat: Option<i64>,
    now_s: i64,
    skew_s: i64,
    max_age_s: Option<i64>,
) -> Result<(), ClaimError> {
    match (iat, max_age_s) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(ClaimError::MissingClaim("iat")),
        (Some(iat), _) if iat > now_s.saturating_add(skew_s) => Err(ClaimError::IssuedInFuture),
        (Some(iat), Some(max)) if now_s.saturating_sub(iat) > max.saturating_add(skew_s) => {
            Err(ClaimError::TooOld)
        }
        (Some(_), _) => Ok(()),
    }
}

/// A token may live at most `max_s`: `exp - iat`, or `exp - now` (beyond
/// the skew) without `iat`. Revocations of sessions last as long as the
/// longest lifetime allowed, so no token can outlive them.
pub fn check_lifetime(
    iat: Option<i64>,
    exp: Option<i64>,
    now_s: i64,
    skew_s: i64,
    max_s: i64,
) -> Result<(), ClaimError> {
    let Some(exp) = exp else {
        return Ok(());
    };
    let too_long = match iat {
        Some(iat) => exp.saturating_sub(iat) > max_s,
        None => exp.saturating_sub(now_s) > max_s.saturating_add(skew_s),
    };
    if too_long {
        Err(ClaimError::TooLongLived)
    } else {
        Ok(())
    }
}

/// With a non-empty `allowed` list, `iss` must be one of them exactly.
pub fn check_issuer(iss: Option<&str>, allowed: &[String]) -> Result<(), ClaimError> {
    if allowed.is_empty() {
        return Ok(());
    }
    match iss {
        None => Err(ClaimError::MissingClaim("iss")),
        Some(iss) if allowed.iter().any(|a| a == iss) => Ok(()),
        Some(_) => Err(ClaimError::BadIssuer),
    }
}

/// With a non-empty `allowed` list, one of the token's audiences (`aud` is a
/// string or an array) must be among them.
pub fn check_audience(aud: &[String], allowed: &[String]) -> Result<(), ClaimError> {
    if allowed.is_empty() {
        return Ok(());
    }
    if aud.is_empty() {
        return Err(ClaimError::MissingClaim("aud"));
    }
    if aud.iter().any(|a| allowed.contains(a)) {
        Ok(())
    } else {
        Err(ClaimError::BadAudience)
    }
}

/// Whether every `required` scope is among the `granted` ones.
pub fn has_scopes<S: AsRef<str>>(granted: &[S], required: &[String]) -> bool {
    required
        .iter()
        .all(|r| granted.iter().any(|g| g.as_ref() == r))
}

/// The longest identity value (sub, tier, sid) passed on in a header.
pub const MAX_IDENTITY_BYTES: usize = 256;

/// An identity value may go into a request header: non-empty, short, and
/// free of control characters (a CR/LF or NUL would break or be refused).
pub fn check_identity(name: &'static str, value: &str) -> Result<(), ClaimError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_IDENTITY_BYTES
        && !value.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(ClaimError::BadIdentity(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn window_honours_skew_at_both_ends() {
        let w = Window::new(Some(NOW + 30), Some(NOW - 30), 60);
        assert_eq!(w.check(NOW), Ok(()));
        let w = Window::new(None, Some(NOW - 61), 60);
        assert_eq!(w.check(NOW), Err(ClaimError::Expired));
        let w = Window::new(Some(NOW + 61), None, 60);
        assert_eq!(w.check(NOW), Err(ClaimError::NotYetValid));
        let w = Window::new(None, Some(NOW - 60), 60);
        assert_eq!(w.check(NOW), Ok(()), "the boundary second is still valid");
        assert_eq!(Window::new(None, None, 0).check(NOW), Ok(()));
    }

    #[test]
    fn window_arithmetic_saturates() {
        let w = Window::new(Some(i64::MIN), Some(i64::MAX), i64::MAX);
        assert_eq!(w.check(NOW), Ok(()));
    }

    #[test]
    fn issued_at_checks() {
        assert_eq!(check_issued_at(None, NOW, 60, None), Ok(()));
        assert_eq!(
            check_issued_at(None, NOW, 60, Some(3600)),
            Err(ClaimError::MissingClaim("iat"))
        );
        assert_eq!(check_issued_at(Some(NOW + 60), NOW, 60, None), Ok(()));
        assert_eq!(
            check_issued_at(Some(NOW + 61), NOW, 60, None),
            Err(ClaimError::IssuedInFuture)
        );
        assert_eq!(
            check_issued_at(Some(NOW - 3661), NOW, 60, Some(3600)),
            Err(ClaimError::TooOld)
        );
        assert_eq!(
            check_issued_at(Some(NOW - 3600), NOW, 0, Some(3600)),
            Ok(())
        );
    }

    #[test]
    fn lifetime_is_bounded() {
        let day = 86_400;
        assert_eq!(
            check_lifetime(Some(NOW), Some(NOW + day), NOW, 60, day),
            Ok(())
        );
        assert_eq!(
            check_lifetime(Some(NOW), Some(NOW + day + 1), NOW, 60, day),
            Err(ClaimError::TooLongLived)
        );
        assert_eq!(
            check_lifetime(None, Some(NOW + day + 60), NOW, 60, day),
            Ok(())
        );
        assert_eq!(
            check_lifetime(None, Some(NOW + day + 61), NOW, 60, day),
            Err(ClaimError::TooLongLived)
        );
        assert_eq!(check_lifetime(Some(NOW), None, NOW, 60, day), Ok(()));
        assert_eq!(
            check_lifetime(Some(i64::MIN), Some(i64::MAX), NOW, 60, day),
            Err(ClaimError::TooLongLived)
        );
    }

    #[test]
    fn issuer_must_match_exactly_when_configured() {
        let allowed = vec!["https://a".to_string()];
        assert_eq!(check_issuer(None, &[]), Ok(()));
        assert_eq!(check_issuer(Some("https://a"), &allowed), Ok(()));
        assert_eq!(
            check_issuer(Some("https://a/"), &allowed),
            Err(ClaimError::BadIssuer)
        );
        assert_eq!(
            check_issuer(None, &allowed),
            Err(ClaimError::MissingClaim("iss"))
        );
    }

    #[test]
    fn audience_needs_one_match() {
        let allowed = vec!["api".to_string(), "web".to_string()];
        let aud = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(check_audience(&aud(&["x", "web"]), &allowed), Ok(()));
        assert_eq!(
            check_audience(&aud(&["x"]), &allowed),
            Err(ClaimError::BadAudience)
        );
        assert_eq!(
            check_audience(&[], &allowed),
            Err(ClaimError::MissingClaim("aud"))
        );
        assert_eq!(check_audience(&aud(&["x"]), &[]), Ok(()));
    }

    #[test]
    fn scopes_and_identity_values() {
        let required = vec!["read".to_string(), "write".to_string()];
        assert!(has_scopes(&["write", "read", "x"], &required));
        assert!(!has_scopes(&["read"], &required));
        assert!(has_scopes::<&str>(&[], &[]));
        assert_eq!(check_identity("sub", "alice"), Ok(()));
        assert_eq!(check_identity("sub", "José"), Ok(()));
        for bad in ["", "a\r\nx-auth-tier: admin", "a\0", &"x".repeat(257)] {
            assert_eq!(
                check_identity("sub", bad),
                Err(ClaimError::BadIdentity("sub")),
                "{bad:?}"
            );
        }
    }
}
