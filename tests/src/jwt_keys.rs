//! Keys of every JWT algorithm the auth plugin verifies, generated once per
//! process, and tokens signed with them by `jsonwebtoken` (independent of
//! the plugin's jwt-compact): the `auth_*` tests and the bench's
//! verified-every-time rows share them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use std::sync::OnceLock;

pub struct TestKeys {
    pub hmac: Vec<u8>,
    rsa_der: Vec<u8>,
    pub rsa_n: Vec<u8>,
    pub rsa_e: Vec<u8>,
    ec_pkcs8: Vec<u8>,
    /// Uncompressed point: 0x04 || x || y.
    ec_public: Vec<u8>,
    ed_pkcs8: Vec<u8>,
    ed_public: Vec<u8>,
}

/// Fresh keys of every kind, generated once per process.
pub fn keys() -> &'static TestKeys {
    static KEYS: OnceLock<TestKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rng = SystemRandom::new();
        let mut hmac = vec![0u8; 32];
        ring::rand::SecureRandom::fill(&rng, &mut hmac).unwrap();
        let rsa = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let ec = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let ec_pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, ec.as_ref(), &rng).unwrap();
        let ed = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed_pair = Ed25519KeyPair::from_pkcs8(ed.as_ref()).unwrap();
        TestKeys {
            hmac,
            rsa_der: rsa.to_pkcs1_der().unwrap().as_bytes().to_vec(),
            rsa_n: rsa.n().to_bytes_be(),
            rsa_e: rsa.e().to_bytes_be(),
            ec_public: ec_pair.public_key().as_ref().to_vec(),
            ec_pkcs8: ec.as_ref().to_vec(),
            ed_public: ed_pair.public_key().as_ref().to_vec(),
            ed_pkcs8: ed.as_ref().to_vec(),
        }
    })
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl TestKeys {
    /// The public JWKS: kids `hs` (HS256), `rsa` (RS256, PS256 by override),
    /// `ec` (ES256), `ed` (EdDSA).
    pub fn jwks(&self) -> Value {
        json!({"keys": [
            {"kty": "oct", "kid": "hs", "alg": "HS256", "k": b64(&self.hmac)},
            self.rsa_jwk("rsa"),
            {"kty": "EC", "kid": "ec", "crv": "P-256", "alg": "ES256",
             "x": b64(&self.ec_public[1..33]), "y": b64(&self.ec_public[33..65])},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "alg": "EdDSA", "x": b64(&self.ed_public)},
        ]})
    }

    pub fn rsa_jwk(&self, kid: &str) -> Value {
        json!({"kty": "RSA", "kid": kid, "n": b64(&self.rsa_n), "e": b64(&self.rsa_e)})
    }

    pub fn encoding_key(&self, alg: Algorithm) -> EncodingKey {
        match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                EncodingKey::from_secret(&self.hmac)
            }
            Algorithm::RS256 | Algorithm::PS256 => EncodingKey::from_rsa_der(&self.rsa_der),
            Algorithm::ES256 => EncodingKey::from_ec_der(&self.ec_pkcs8),
            Algorithm::EdDSA => EncodingKey::from_ed_der(&self.ed_pkcs8),
            other => panic!("no test key for {other:?}"),
        }
    }
}

/// A token signed with the test key for `alg`, header `kid`.
pub fn mint(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, &keys().encoding_key(alg)).unwrap()
}

/// The kid of the test key for `alg`.
pub fn kid_for(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "hs",
        Algorithm::RS256 | Algorithm::PS256 => "rsa",
        Algorithm::ES256 => "ec",
        Algorithm::EdDSA => "ed",
        other => panic!("no test key for {other:?}"),
    }
}

pub const ALGORITHMS: [Algorithm; 5] = [
    Algorithm::HS256,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
];
