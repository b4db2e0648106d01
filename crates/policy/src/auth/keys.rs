//! Key selection with an explicit algorithm allowlist per key.
//!
//! A key is usable only with the algorithms its type supports and that its
//! allowlist names (the JWK's `alg`, an operator override, or the type's
//! default), intersected with the plugin-wide allowlist. So `none` is never
//! accepted, HMAC is never tried with a public key, and an RSA key published
//! for RS256 never verifies a PS256 token unless the operator allows it.

use std::fmt;

/// The JWS algorithms the plugin verifies. `none` has no variant on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    Hs256,
    Hs384,
    Hs512,
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    EdDsa,
}

/// What kind of key material an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// `kty: oct`, a shared secret.
    Oct,
    /// `kty: RSA`.
    Rsa,
    /// `kty: EC`, `crv: P-256`.
    EcP256,
    /// `kty: OKP`, `crv: Ed25519`.
    Ed25519,
}

impl Alg {
    pub const ALL: [Alg; 11] = [
        Alg::Hs256,
        Alg::Hs384,
        Alg::Hs512,
        Alg::Rs256,
        Alg::Rs384,
        Alg::Rs512,
        Alg::Ps256,
        Alg::Ps384,
        Alg::Ps512,
        Alg::Es256,
        Alg::EdDsa,
    ];

    /// The JWS `alg` name; exact match, so `none`, `None` and `hs256` are unknown.
    pub fn parse(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Hs384 => "HS384",
            Alg::Hs512 => "HS512",
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Ps256 => "PS256",
            Alg::Ps384 => "PS384",
            Alg::Ps512 => "PS512",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }

    pub fn key_kind(self) -> KeyKind {
        match self {
            Alg::Hs256 | Alg::Hs384 | Alg::Hs512 => KeyKind::Oct,
            Alg::Rs256 | Alg::Rs384 | Alg::Rs512 | Alg::Ps256 | Alg::Ps384 | Alg::Ps512 => {
                KeyKind::Rsa
            }
            Alg::Es256 => KeyKind::EcP256,
            Alg::EdDsa => KeyKind::Ed25519,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl KeyKind {
    /// From a JWK's `kty` and `crv`; `None` for types the plugin cannot use.
    pub fn from_jwk(kty: &str, crv: Option<&str>) -> Option<KeyKind> {
        match (kty, crv) {
            ("oct", _) => Some(KeyKind::Oct),
            ("RSA", _) => Some(KeyKind::Rsa),
            ("EC", Some("P-256")) => Some(KeyKind::EcP256),
            ("OKP", Some("Ed25519")) => Some(KeyKind::Ed25519),
            _ => None,
        }
    }

    /// The algorithm a key of this kind is used with when nothing names one.
    pub fn default_alg(self) -> Alg {
        match self {
            KeyKind::Oct => Alg::Hs256,
            KeyKind::Rsa => Alg::Rs256,
            KeyKind::EcP256 => Alg::Es256,
            KeyKind::Ed25519 => Alg::EdDsa,
        }
    }
}

/// Why a key's allowlist could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRuleError {
    UnknownAlg(String),
    /// The algorithm needs another kind of key (e.g. HS256 on an RSA key).
    WrongKeyKind {
        alg: Alg,
        kind: KeyKind,
    },
    /// Nothing is left once the plugin-wide allowlist is applied.
    NoneAllowed,
}

impl fmt::Display for KeyRuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRuleError::UnknownAlg(name) => write!(f, "unsupported algorithm {name:?}"),
            KeyRuleError::WrongKeyKind { alg, kind } => {
                write!(f, "algorithm {alg} cannot be used with a {kind:?} key")
            }
            KeyRuleError::NoneAllowed => {
                f.write_str("none of the key's algorithms is in the allowlist")
            }
        }
    }
}

/// The algorithms one key may verify: `override_algs` (the operator's
/// per-key allowlist) if given, else the JWK's own `alg`, else the kind's
/// default; each must suit the key kind; then only those in `global`.
pub fn key_algorithms(
    kind: KeyKind,
    jwk_alg: Option<&str>,
    override_algs: Option<&[String]>,
    global: &[Alg],
) -> Result<Vec<Alg>, KeyRuleError> {
    let named: Vec<&str> = match (override_algs, jwk_alg) {
        (Some(list), _) => list.iter().map(String::as_str).collect(),
        (None, Some(alg)) => vec![alg],
        (None, None) => vec![kind.default_alg().name()],
    };
    let mut algs = Vec::with_capacity(named.len());
    for name in named {
        let alg = Alg::parse(name).ok_or_else(|| KeyRuleError::UnknownAlg(name.to_string()))?;
        if alg.key_kind() != kind {
            return Err(KeyRuleError::WrongKeyKind { alg, kind });
        }
        if global.contains(&alg) && !algs.contains(&alg) {
            algs.push(alg);
        }
    }
    if algs.is_empty() {
        return Err(KeyRuleError::NoneAllowed);
    }
    Ok(algs)
}

/// A verification key with its id and allowlist; `K` is the key material.
#[derive(Debug, Clone)]
pub struct KeyEntry<K> {
    pub kid: Option<String>,
    pub algs: Vec<Alg>,
    pub key: K,
}

/// Why no key can verify a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoKey {
    /// The token names a `kid` no key has.
    UnknownKid,
    /// Keys exist (with the token's `kid`, if any) but none allows its `alg`.
    AlgNotAllowed,
}

/// The keys to try for a token with header `alg` and `kid`, in order: with a
/// `kid`, only keys with that id; without, every key that allows `alg`.
pub fn select<'a, K>(
    keys: &'a [KeyEntry<K>],
    alg: Alg,
    kid: Option<&str>,
) -> Result<Vec<&'a KeyEntry<K>>, NoKey> {
    let named: Vec<&KeyEntry<K>> = match kid {
        Some(kid) => keys
            .iter()
            .filter(|k| k.kid.as_deref() == Some(kid))
            .collect(),
        None => keys.iter().collect(),
    };
    if named.is_empty() && kid.is_some() {
        return Err(NoKey::UnknownKid);
    }
    let usable: Vec<&KeyEntry<K>> = named
        .into_iter()
        .filter(|k| k.algs.contains(&alg))
        .collect();
    if usable.is_empty() {
        return Err(NoKey::AlgNotAllowed);
    }
    Ok(usable)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn names_round_trip_and_none_is_unknown() {
        for alg in Alg::ALL {
            assert_eq!(Alg::parse(alg.name()), Some(alg));
        }
        for bad in ["none", "None", "NONE", "hs256", "ES384", "", "HS256 "] {
            assert_eq!(Alg::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn key_kinds_from_jwk() {
        assert_eq!(KeyKind::from_jwk("oct", None), Some(KeyKind::Oct));
        assert_eq!(KeyKind::from_jwk("RSA", None), Some(KeyKind::Rsa));
        assert_eq!(
            KeyKind::from_jwk("EC", Some("P-256")),
            Some(KeyKind::EcP256)
        );
        assert_eq!(KeyKind::from_jwk("EC", Some("secp256k1")), None);
        assert_eq!(
            KeyKind::from_jwk("OKP", Some("Ed25519")),
            Some(KeyKind::Ed25519)
        );
        assert_eq!(KeyKind::from_jwk("OKP", Some("X25519")), None);
        assert_eq!(KeyKind::from_jwk("rsa", None), None);
    }

    #[test]
    fn allowlist_comes_from_override_then_jwk_then_default() {
        let all = Alg::ALL;
        assert_eq!(
            key_algorithms(KeyKind::Rsa, None, None, &all),
            Ok(vec![Alg::Rs256])
        );
        assert_eq!(
            key_algorithms(KeyKind::Rsa, Some("PS256"), None, &all),
            Ok(vec![Alg::Ps256])
        );
        let over = vec!["RS256".to_string(), "PS256".to_string()];
        assert_eq!(
            key_algorithms(KeyKind::Rsa, Some("PS256"), Some(&over), &all),
            Ok(vec![Alg::Rs256, Alg::Ps256])
        );
    }

    #[test]
    fn hmac_is_never_allowed_on_a_public_key() {
        for kind in [KeyKind::Rsa, KeyKind::EcP256, KeyKind::Ed25519] {
            assert_eq!(
                key_algorithms(kind, Some("HS256"), None, &Alg::ALL),
                Err(KeyRuleError::WrongKeyKind {
                    alg: Alg::Hs256,
                    kind
                })
            );
        }
        assert!(matches!(
            key_algorithms(KeyKind::Oct, Some("RS256"), None, &Alg::ALL),
            Err(KeyRuleError::WrongKeyKind { .. })
        ));
        assert_eq!(
            key_algorithms(KeyKind::Oct, Some("none"), None, &Alg::ALL),
            Err(KeyRuleError::UnknownAlg("none".into()))
        );
    }

    #[test]
    fn the_global_allowlist_narrows_every_key() {
        assert_eq!(
            key_algorithms(KeyKind::Oct, None, None, &[Alg::Es256]),
            Err(KeyRuleError::NoneAllowed)
        );
        let over = vec!["HS256".to_string(), "HS512".to_string()];
        assert_eq!(
            key_algorithms(KeyKind::Oct, None, Some(&over), &[Alg::Hs512]),
            Ok(vec![Alg::Hs512])
        );
    }

    fn entry(kid: Option<&str>, algs: &[Alg], key: u8) -> KeyEntry<u8> {
        KeyEntry {
            kid: kid.map(str::to_string),
            algs: algs.to_vec(),
            key,
        }
    }

    #[test]
    fn selection_by_kid_and_alg() {
        let keys = [
            entry(Some("a"), &[Alg::Rs256], 1),
            entry(Some("b"), &[Alg::Es256], 2),
            entry(None, &[Alg::Es256], 3),
        ];
        let picked = |alg, kid| {
            select(&keys, alg, kid).map(|ks| ks.iter().map(|k| k.key).collect::<Vec<_>>())
        };
        assert_eq!(picked(Alg::Rs256, Some("a")), Ok(vec![1]));
        assert_eq!(picked(Alg::Es256, Some("a")), Err(NoKey::AlgNotAllowed));
        assert_eq!(picked(Alg::Es256, Some("zz")), Err(NoKey::UnknownKid));
        assert_eq!(picked(Alg::Es256, None), Ok(vec![2, 3]));
        assert_eq!(picked(Alg::Hs256, None), Err(NoKey::AlgNotAllowed));
        let empty: [KeyEntry<u8>; 0] = [];
        assert_eq!(
            select(&empty, Alg::Hs256, None).map(|v| v.len()),
            Err(NoKey::AlgNotAllowed)
        );
    }
}
