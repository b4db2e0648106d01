//! Verifies one token: parse, pick the keys its `alg` and `kid` allow,
//! check the signature, then the claims by the proxy clock.

use crate::keys::{KeySet, VerifyKey};
use chrono::{DateTime, TimeDelta, Utc};
use jwt_compact::alg::{Ed25519, Es256, Hs256, Hs256Key, Hs384, Hs384Key, Hs512, Hs512Key};
use jwt_compact::{AlgorithmExt, Claims, TimeOptions, Token, UntrustedToken, ValidationError};
use meshguard_policy::auth::claims::{self, ClaimError, Window};
use meshguard_policy::auth::keys::{select, Alg, NoKey};
use serde_json::{Map, Value};

/// What every verification needs besides the keys.
pub struct VerifyPolicy {
    pub global_algs: Vec<Alg>,
    pub issuers: Vec<String>,
    pub audiences: Vec<String>,
    pub skew_s: i64,
    pub require_exp: bool,
    pub max_age_s: Option<i64>,
    pub tier_claim: String,
    pub default_tier: Option<String>,
    pub max_lifetime_s: i64,
    pub groups_claim: String,
    pub max_groups: usize,
}

/// A verified token's identity and what later checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub sub: String,
    pub tier: Option<String>,
    /// The groups, comma separated (`x-auth-groups`).
    pub groups: Option<String>,
    pub sid: Option<String>,
    pub iss: Option<String>,
    pub jti: Option<String>,
    pub iat: Option<i64>,
    pub scopes: Vec<String>,
    pub window: Window,
}

/// Why a token is refused (always a 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    Malformed,
    UnsupportedAlg,
    AlgNotAllowed,
    UnknownKid,
    BadSignature,
    BadClaims,
    Claim(ClaimError),
}

impl Reject {
    pub fn reason(self) -> &'static str {
        match self {
            Reject::Malformed => "malformed",
            Reject::UnsupportedAlg => "unsupported_alg",
            Reject::AlgNotAllowed => "alg_not_allowed",
            Reject::UnknownKid => "unknown_kid",
            Reject::BadSignature => "bad_signature",
            Reject::BadClaims => "bad_claims",
            Reject::Claim(c) => c.reason(),
        }
    }
}

type Custom = Map<String, Value>;

fn check_signature(
    alg: Alg,
    key: &VerifyKey,
    token: &UntrustedToken<'_>,
) -> Result<Token<Custom>, ValidationError> {
    match (alg, key) {
        (Alg::Hs256, VerifyKey::Hmac(k)) => Hs256.validator(&Hs256Key::new(k)).validate(token),
        (Alg::Hs384, VerifyKey::Hmac(k)) => Hs384.validator(&Hs384Key::new(k)).validate(token),
        (Alg::Hs512, VerifyKey::Hmac(k)) => Hs512.validator(&Hs512Key::new(k)).validate(token),
        (Alg::Es256, VerifyKey::Es256(k)) => Es256.validator(k).validate(token),
        (Alg::EdDsa, VerifyKey::Ed25519(k)) => Ed25519.validator(k).validate(token),
        (alg, VerifyKey::Rsa(k)) => match VerifyKey::rsa_for(alg) {
            Some(rsa) => rsa.validator(k).validate(token),
            None => Err(ValidationError::InvalidSignature),
        },
        // The allowlists never pair an algorithm with another kind of key.
        _ => Err(ValidationError::InvalidSignature),
    }
}

pub fn verify(
    raw: &str,
    keys: &KeySet,
    policy: &VerifyPolicy,
    now_s: i64,
) -> Result<Verified, Reject> {
    let token = UntrustedToken::new(raw).map_err(|_| Reject::Malformed)?;
    let alg = Alg::parse(token.algorithm()).ok_or(Reject::UnsupportedAlg)?;
    if !policy.global_algs.contains(&alg) {
        return Err(Reject::AlgNotAllowed);
    }
    let candidates =
        select(keys.entries(), alg, token.header().key_id.as_deref()).map_err(|e| match e {
            NoKey::UnknownKid => Reject::UnknownKid,
            NoKey::AlgNotAllowed => Reject::AlgNotAllowed,
        })?;
    let mut verified = None;
    for entry in candidates {
        match check_signature(alg, &entry.key, &token) {
            Ok(t) => {
                verified = Some(t);
                break;
            }
            Err(ValidationError::MalformedClaims(_)) => return Err(Reject::BadClaims),
            Err(_) => {}
        }
    }
    let token = verified.ok_or(Reject::BadSignature)?;
    check_claims(token.claims(), policy, now_s)
}

fn time_options(skew_s: i64, now_s: i64) -> TimeOptions<impl Fn() -> DateTime<Utc>> {
    let now = DateTime::from_timestamp(now_s, 0).unwrap_or_default();
    TimeOptions::new(
        TimeDelta::try_seconds(skew_s).unwrap_or_default(),
        move || now,
    )
}

fn string_claim<'a>(custom: &'a Custom, name: &str) -> Result<Option<&'a str>, Reject> {
    match custom.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Reject::BadClaims),
    }
}

/// `aud` and `scp` may be one string or an array of strings.
fn string_list(custom: &Custom, name: &str) -> Result<Vec<String>, Reject> {
    match custom.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or(Reject::BadClaims))
            .collect(),
        Some(_) => Err(Reject::BadClaims),
    }
}

/// The groups as `x-auth-groups` carries them: each a short value without
/// control characters or commas (the separator), at most `max` of them,
/// the whole within the identity header bound times the count.
fn groups_header(groups: &[String], max: usize) -> Result<Option<String>, Reject> {
    if groups.is_empty() {
        return Ok(None);
    }
    let bad = Reject::Claim(ClaimError::BadIdentity("groups"));
    if groups.len() > max {
        return Err(bad);
    }
    for g in groups {
        if claims::check_identity("groups", g).is_err() || g.contains(',') || g.trim() != g {
            return Err(bad);
        }
    }
    Ok(Some(groups.join(",")))
}

fn check_claims(
    claims: &Claims<Custom>,
    policy: &VerifyPolicy,
    now_s: i64,
) -> Result<Verified, Reject> {
    let options = time_options(policy.skew_s, now_s);
    if policy.require_exp || claims.expiration.is_some() {
        claims.validate_expiration(&options).map_err(|e| match e {
            ValidationError::NoClaim(_) => Reject::Claim(ClaimError::MissingClaim("exp")),
            _ => Reject::Claim(ClaimError::Expired),
        })?;
    }
    if claims.not_before.is_some() {
        claims
            .validate_maturity(&options)
            .map_err(|_| Reject::Claim(ClaimError::NotYetValid))?;
    }
    let iat = claims.issued_at.map(|t| t.timestamp());
    claims::check_issued_at(iat, now_s, policy.skew_s, policy.max_age_s).map_err(Reject::Claim)?;
    let exp = claims.expiration.map(|t| t.timestamp());
    claims::check_lifetime(iat, exp, now_s, policy.skew_s, policy.max_lifetime_s)
        .map_err(Reject::Claim)?;

    let custom = &claims.custom;
    let iss = string_claim(custom, "iss")?;
    claims::check_issuer(iss, &policy.issuers).map_err(Reject::Claim)?;
    claims::check_audience(&string_list(custom, "aud")?, &policy.audiences)
        .map_err(Reject::Claim)?;

    let sub = string_claim(custom, "sub")?.ok_or(Reject::Claim(ClaimError::MissingClaim("sub")))?;
    claims::check_identity("sub", sub).map_err(Reject::Claim)?;
    let tier = match string_claim(custom, &policy.tier_claim)? {
        Some(t) => Some(t.to_string()),
        None => policy.default_tier.clone(),
    };
    if let Some(t) = &tier {
        claims::check_identity("tier", t).map_err(Reject::Claim)?;
    }
    let sid = string_claim(custom, "sid")?;
    if let Some(s) = sid {
        claims::check_identity("sid", s).map_err(Reject::Claim)?;
    }
    let groups = groups_header(
        &string_list(custom, &policy.groups_claim)?,
        policy.max_groups,
    )?;
    let mut scopes: Vec<String> = string_claim(custom, "scope")?
        .map(|s| s.split_ascii_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    scopes.extend(string_list(custom, "scp")?);
    // Scopes travel in `x-auth-scopes`: no control characters, no spaces inside one.
    if scopes
        .iter()
        .any(|s| s.is_empty() || s.chars().any(|c| c.is_control() || c == ' '))
    {
        return Err(Reject::Claim(ClaimError::BadIdentity("scope")));
    }

    Ok(Verified {
        sub: sub.to_string(),
        tier,
        groups,
        sid: sid.map(str::to_string),
        iss: iss.map(str::to_string),
        jti: string_claim(custom, "jti")?.map(str::to_string),
        iat,
        scopes,
        window: Window::new(
            claims.not_before.map(|t| t.timestamp()),
            claims.expiration.map(|t| t.timestamp()),
            policy.skew_s,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jwt_compact::{AlgorithmExt, Claims, Header};
    use serde_json::json;
    use std::collections::BTreeMap;

    const NOW: i64 = 1_800_000_000;
    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn keys() -> KeySet {
        let key = Hs256Key::new(SECRET);
        let mut jwk = serde_json::to_value(jwt_compact::jwk::JsonWebKey::from(&key)).unwrap();
        jwk["kid"] = json!("dev");
        KeySet::parse(&json!({"keys": [jwk]}), &BTreeMap::new(), &Alg::ALL).unwrap()
    }

    fn policy() -> VerifyPolicy {
        VerifyPolicy {
            global_algs: Alg::ALL.to_vec(),
            issuers: vec!["iss".into()],
            audiences: vec![],
            skew_s: 60,
            require_exp: true,
            max_age_s: None,
            tier_claim: "tier".into(),
            default_tier: None,
            max_lifetime_s: 86_400,
            groups_claim: "groups".into(),
            max_groups: 3,
        }
    }

    fn mint(custom: Value, exp: Option<i64>) -> String {
        let mut claims = Claims::new(custom.as_object().unwrap().clone());
        claims.expiration = exp.and_then(|e| DateTime::from_timestamp(e, 0));
        claims.issued_at = DateTime::from_timestamp(NOW - 5, 0);
        Hs256
            .token(
                &Header::empty().with_key_id("dev"),
                &claims,
                &Hs256Key::new(SECRET),
            )
            .unwrap()
    }

    #[test]
    fn a_valid_token_yields_its_identity() {
        let token = mint(
            json!({"iss": "iss", "sub": "alice", "tier": "premium", "sid": "s1", "jti": "j", "scope": "read write"}),
            Some(NOW + 60),
        );
        let v = verify(&token, &keys(), &policy(), NOW).unwrap();
        assert_eq!(v.sub, "alice");
        assert_eq!(v.tier.as_deref(), Some("premium"));
        assert_eq!(v.sid.as_deref(), Some("s1"));
        assert_eq!(v.scopes, vec!["read", "write"]);
        assert_eq!(v.iat, Some(NOW - 5));
        assert_eq!(v.groups, None);
    }

    #[test]
    fn groups_come_from_a_string_or_an_array_and_are_bounded() {
        let with = |groups: Value| {
            let token = mint(
                json!({"iss": "iss", "sub": "alice", "groups": groups}),
                Some(NOW + 60),
            );
            verify(&token, &keys(), &policy(), NOW).map(|v| v.groups)
        };
        assert_eq!(with(json!("staff")), Ok(Some("staff".into())));
        assert_eq!(
            with(json!(["staff", "beta"])),
            Ok(Some("staff,beta".into()))
        );
        assert_eq!(with(json!([])), Ok(None));
        let bad = Err(Reject::Claim(ClaimError::BadIdentity("groups")));
        assert_eq!(with(json!(["a", "b", "c", "d"])), bad);
        assert_eq!(with(json!(["a,b"])), bad);
        assert_eq!(with(json!(["a\r\nx-auth-sub: admin"])), bad);
        assert_eq!(with(json!([""])), bad);
        assert_eq!(with(json!(["x".repeat(257)])), bad);
        assert_eq!(with(json!([5])), Err(Reject::BadClaims));
    }

    #[test]
    fn refusals_carry_their_reason() {
        let ok = json!({"iss": "iss", "sub": "alice"});
        let cases = [
            (mint(ok.clone(), Some(NOW - 61)), "expired"),
            (mint(ok.clone(), None), "missing_claim"),
            (mint(ok.clone(), Some(NOW + 86_400)), "too_long_lived"),
            (
                mint(json!({"iss": "other", "sub": "a"}), Some(NOW + 60)),
                "bad_issuer",
            ),
            (mint(json!({"iss": "iss"}), Some(NOW + 60)), "missing_claim"),
            (
                mint(json!({"iss": "iss", "sub": 5}), Some(NOW + 60)),
                "bad_claims",
            ),
            (
                mint(json!({"iss": "iss", "sub": "a\nb"}), Some(NOW + 60)),
                "bad_identity",
            ),
            (
                mint(
                    json!({"iss": "iss", "sub": "a", "scp": ["ok", "a\u{7f}"]}),
                    Some(NOW + 60),
                ),
                "bad_identity",
            ),
            (
                mint(
                    json!({"iss": "iss", "sub": "a", "nbf": NOW + 100}),
                    Some(NOW + 600),
                ),
                "not_yet_valid",
            ),
            ("not.a.token".to_string(), "malformed"),
            (String::new(), "malformed"),
        ];
        for (token, reason) in cases {
            let err = verify(&token, &keys(), &policy(), NOW).unwrap_err();
            assert_eq!(err.reason(), reason, "{token}");
        }
    }

    #[test]
    fn tampering_and_alg_games_are_refused() {
        let token = mint(json!({"iss": "iss", "sub": "alice"}), Some(NOW + 60));
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let forged = mint(json!({"iss": "iss", "sub": "admin"}), Some(NOW + 60));
        parts[1] = forged.split('.').nth(1).unwrap().to_string();
        let tampered = parts.join(".");
        assert_eq!(
            verify(&tampered, &keys(), &policy(), NOW),
            Err(Reject::BadSignature)
        );

        use base64ct::{Base64UrlUnpadded, Encoding};
        let header = |h: Value| Base64UrlUnpadded::encode_string(h.to_string().as_bytes());
        let none = format!("{}.{}.", header(json!({"alg": "none"})), parts[1]);
        assert_eq!(
            verify(&none, &keys(), &policy(), NOW),
            Err(Reject::UnsupportedAlg)
        );
        let unknown = format!(
            "{}.{}.{}",
            header(json!({"alg": "HS256", "kid": "zz"})),
            parts[1],
            parts[2]
        );
        assert_eq!(
            verify(&unknown, &keys(), &policy(), NOW),
            Err(Reject::UnknownKid)
        );
        let rs = format!(
            "{}.{}.{}",
            header(json!({"alg": "RS256", "kid": "dev"})),
            parts[1],
            parts[2]
        );
        assert_eq!(
            verify(&rs, &keys(), &policy(), NOW),
            Err(Reject::AlgNotAllowed)
        );
    }
}
