//! Verification keys from a JWKS document, each with its algorithm allowlist.

use jwt_compact::alg::{Ed25519, Es256, Rsa, RsaPublicKey};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::Algorithm;
use meshguard_policy::auth::keys::{key_algorithms, Alg, KeyEntry, KeyKind};
use serde_json::Value;
use std::collections::BTreeMap;

/// HMAC secrets shorter than this are refused (RFC 7518 §3.2 asks for the
/// hash size; 32 bytes is HS256's).
const MIN_HMAC_BYTES: usize = 32;
/// RSA moduli shorter than 2048 bits are refused.
const MIN_RSA_MODULUS_BYTES: usize = 256;

pub enum VerifyKey {
    Hmac(Vec<u8>),
    Rsa(RsaPublicKey),
    Es256(<Es256 as Algorithm>::VerifyingKey),
    Ed25519(<Ed25519 as Algorithm>::VerifyingKey),
}

impl VerifyKey {
    /// The RSA variant of `alg`, if it is one.
    pub fn rsa_for(alg: Alg) -> Option<Rsa> {
        Some(match alg {
            Alg::Rs256 => Rsa::rs256(),
            Alg::Rs384 => Rsa::rs384(),
            Alg::Rs512 => Rsa::rs512(),
            Alg::Ps256 => Rsa::ps256(),
            Alg::Ps384 => Rsa::ps384(),
            Alg::Ps512 => Rsa::ps512(),
            _ => return None,
        })
    }
}

/// Why a JWKS document (or one key of it) was refused; `field` is relative
/// to the document, e.g. `keys[2]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    pub field: String,
    pub message: String,
}

impl KeyError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> KeyError {
        KeyError {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Default)]
pub struct KeySet {
    entries: Vec<KeyEntry<VerifyKey>>,
}

impl KeySet {
    /// Parses a configured JWKS: every key must be usable (keys marked
    /// `"use": "enc"` are left out).
    pub fn parse(
        doc: &Value,
        overrides: &BTreeMap<String, Vec<String>>,
        global: &[Alg],
    ) -> Result<KeySet, KeyError> {
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| KeyError::new("keys", "a JWKS needs a `keys` array"))?;
        let mut entries = Vec::with_capacity(keys.len());
        for (i, jwk) in keys.iter().enumerate() {
            if let Some(entry) = parse_key(jwk, overrides, global)
                .map_err(|message| KeyError::new(format!("keys[{i}]"), message))?
            {
                entries.push(entry);
            }
        }
        Ok(KeySet { entries })
    }

    /// Parses a fetched JWKS leniently: keys the plugin cannot use are left
    /// out (an identity provider may publish other kinds); the count of
    /// those is returned beside the set.
    pub fn parse_fetched(
        body: &[u8],
        overrides: &BTreeMap<String, Vec<String>>,
        global: &[Alg],
    ) -> Result<(KeySet, usize), String> {
        let doc: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("not a JWKS: no `keys` array")?;
        let mut entries = Vec::with_capacity(keys.len());
        let mut skipped = 0;
        for jwk in keys {
            match parse_key(jwk, overrides, global) {
                Ok(Some(entry)) => entries.push(entry),
                Ok(None) | Err(_) => skipped += 1,
            }
        }
        Ok((KeySet { entries }, skipped))
    }

    /// The configured keys followed by the fetched ones.
    pub fn merged(configured: &KeySet, fetched: KeySet) -> KeySet {
        let mut set = fetched;
        let mut entries: Vec<KeyEntry<VerifyKey>> = configured
            .entries
            .iter()
            .map(|e| KeyEntry {
                kid: e.kid.clone(),
                algs: e.algs.clone(),
                key: e.key.clone_key(),
            })
            .collect();
        entries.append(&mut set.entries);
        KeySet { entries }
    }

    pub fn entries(&self) -> &[KeyEntry<VerifyKey>] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

impl VerifyKey {
    fn clone_key(&self) -> VerifyKey {
        match self {
            VerifyKey::Hmac(k) => VerifyKey::Hmac(k.clone()),
            VerifyKey::Rsa(k) => VerifyKey::Rsa(k.clone()),
            VerifyKey::Es256(k) => VerifyKey::Es256(*k),
            VerifyKey::Ed25519(k) => VerifyKey::Ed25519(*k),
        }
    }
}

fn str_field<'a>(jwk: &'a Value, name: &str) -> Result<Option<&'a str>, String> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("`{name}` must be a string")),
    }
}

/// One JWK; `Ok(None)` for an encryption key.
fn parse_key(
    jwk: &Value,
    overrides: &BTreeMap<String, Vec<String>>,
    global: &[Alg],
) -> Result<Option<KeyEntry<VerifyKey>>, String> {
    if !jwk.is_object() {
        return Err("a JWK must be an object".into());
    }
    if str_field(jwk, "use")? == Some("enc") {
        return Ok(None);
    }
    let kty = str_field(jwk, "kty")?.ok_or("missing `kty`")?;
    let crv = str_field(jwk, "crv")?;
    let kid = str_field(jwk, "kid")?.map(str::to_string);
    let kind = KeyKind::from_jwk(kty, crv)
        .ok_or_else(|| format!("unsupported key type {kty:?} (crv {crv:?})"))?;
    let override_algs = kid
        .as_ref()
        .and_then(|k| overrides.get(k))
        .map(Vec::as_slice);
    let algs = key_algorithms(kind, str_field(jwk, "alg")?, override_algs, global)
        .map_err(|e| e.to_string())?;
    let parsed: JsonWebKey<'_> =
        serde_json::from_value(jwk.clone()).map_err(|e| format!("malformed JWK: {e}"))?;
    let key = match (kind, &parsed) {
        (KeyKind::Oct, JsonWebKey::Symmetric { secret }) => {
            let bytes: &[u8] = secret;
            if bytes.len() < MIN_HMAC_BYTES {
                return Err(format!("an HMAC key needs at least {MIN_HMAC_BYTES} bytes"));
            }
            VerifyKey::Hmac(bytes.to_vec())
        }
        (KeyKind::Rsa, JsonWebKey::Rsa { modulus, .. }) => {
            if parsed.is_signing_key() {
                return Err("a private RSA key; give only the public part (n, e)".into());
            }
            let significant = modulus.iter().skip_while(|b| **b == 0).count();
            if significant < MIN_RSA_MODULUS_BYTES {
                return Err("an RSA key needs a modulus of at least 2048 bits".into());
            }
            VerifyKey::Rsa(RsaPublicKey::try_from(&parsed).map_err(|e| e.to_string())?)
        }
        (KeyKind::EcP256, _) => {
            if parsed.is_signing_key() {
                return Err("a private EC key; give only the public part (x, y)".into());
            }
            VerifyKey::Es256(
                TryFrom::try_from(&parsed)
                    .map_err(|e: jwt_compact::jwk::JwkError| e.to_string())?,
            )
        }
        (KeyKind::Ed25519, _) => {
            if parsed.is_signing_key() {
                return Err("a private OKP key; give only the public part (x)".into());
            }
            VerifyKey::Ed25519(
                TryFrom::try_from(&parsed)
                    .map_err(|e: jwt_compact::jwk::JwkError| e.to_string())?,
            )
        }
        _ => return Err("the key material does not match `kty`".into()),
    };
    Ok(Some(KeyEntry { kid, algs, key }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";

    #[test]
    fn configured_keys_parse_with_their_allowlists() {
        let doc = json!({"keys": [
            {"kty": "oct", "kid": "a", "k": SECRET},
            {"kty": "oct", "kid": "b", "k": SECRET, "alg": "HS512"},
            {"kty": "oct", "kid": "enc", "k": SECRET, "use": "enc"},
        ]});
        let set = KeySet::parse(&doc, &BTreeMap::new(), &Alg::ALL).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.entries()[0].algs, vec![Alg::Hs256]);
        assert_eq!(set.entries()[1].algs, vec![Alg::Hs512]);
    }

    #[test]
    fn weak_or_mismatched_keys_are_refused() {
        let cases = [
            json!({"keys": [{"kty": "oct", "k": "c2hvcnQ"}]}),
            json!({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}),
            json!({"keys": [{"kty": "RSA", "alg": "HS256", "n": "AQAB", "e": "AQAB"}]}),
            json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "AQAB", "y": "AQAB"}]}),
            json!({"keys": [{"kty": "oct", "k": SECRET, "alg": "none"}]}),
            json!({"keys": [{"kty": "XYZ"}]}),
            json!({"keys": ["x"]}),
            json!({"nokeys": []}),
        ];
        for doc in cases {
            assert!(
                KeySet::parse(&doc, &BTreeMap::new(), &Alg::ALL).is_err(),
                "{doc}"
            );
        }
    }

    #[test]
    fn fetched_documents_skip_what_cannot_be_used() {
        let body = json!({"keys": [
            {"kty": "oct", "kid": "a", "k": SECRET},
            {"kty": "RSA", "kid": "weak", "n": "AQAB", "e": "AQAB"},
        ]})
        .to_string();
        let (set, skipped) =
            KeySet::parse_fetched(body.as_bytes(), &BTreeMap::new(), &Alg::ALL).unwrap();
        assert_eq!((set.len(), skipped), (1, 1));
        assert!(KeySet::parse_fetched(b"<html>", &BTreeMap::new(), &Alg::ALL).is_err());
    }
}
