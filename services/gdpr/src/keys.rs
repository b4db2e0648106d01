//! The secret key kept apart from the database. Everything that must not
//! reveal a person is an HMAC under it: subjects in the audit log, proofs of
//! erasure, verification codes. A plain hash of an identifier is still
//! personal data (anyone can hash a guess), a keyed MAC is not.

use crate::error::{Error, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::Path;

type HmacSha256 = Hmac<Sha256>;

const MIN_KEY_BYTES: usize = 32;

#[derive(Clone)]
pub struct Keys {
    secret: Vec<u8>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    pub fn from_bytes(secret: Vec<u8>) -> Result<Keys> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(Error::Config(format!(
                "the key must hold at least {MIN_KEY_BYTES} bytes (it has {})",
                secret.len()
            )));
        }
        Ok(Keys { secret })
    }

    pub fn load(path: &Path) -> Result<Keys> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::Config(format!("key file {}: {e}", path.display())))?;
        Keys::from_bytes(bytes)
    }

    /// Writes a fresh random key (mode 0600) unless the file exists.
    pub fn generate(path: &Path) -> Result<()> {
        if path.exists() {
            return Err(Error::Config(format!(
                "{} exists; refusing to overwrite a key (proofs made with it would become unverifiable)",
                path.display()
            )));
        }
        let key = random_bytes(32)?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(path)
            .map_err(|e| Error::Config(format!("key file {}: {e}", path.display())))?;
        std::io::Write::write_all(&mut file, &key)
            .map_err(|e| Error::Config(format!("key file {}: {e}", path.display())))?;
        Ok(())
    }

    /// HMAC-SHA256 under a key derived for one purpose, so a MAC made for
    /// one use can never stand in for another.
    pub fn mac(&self, purpose: &str, parts: &[&[u8]]) -> String {
        let mut derive = HmacSha256::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        derive.update(purpose.as_bytes());
        let subkey = derive.finalize().into_bytes();
        let mut mac = HmacSha256::new_from_slice(&subkey)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for part in parts {
            // Length-prefixed so ("ab","c") and ("a","bc") differ.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        hex::encode(mac.finalize().into_bytes())
    }

    /// The pseudonym of a data subject in the audit log and in records kept
    /// after erasure.
    pub fn subject(&self, user: &str) -> String {
        self.mac("subject", &[user.as_bytes()])
    }

    pub fn verify_mac(&self, purpose: &str, parts: &[&[u8]], expected: &str) -> bool {
        let actual = self.mac(purpose, parts);
        // Constant-time enough: both are fixed-length hex of a MAC.
        actual.len() == expected.len()
            && actual
                .bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

pub fn random_bytes(n: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| Error::Internal(format!("random source: {e}")))?;
    Ok(buf)
}

/// An unguessable token: 256 random bits, hex.
pub fn random_token() -> Result<String> {
    Ok(hex::encode(random_bytes(32)?))
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::from_bytes(vec![7u8; 32]).unwrap()
    }

    #[test]
    fn macs_are_separated_by_purpose_and_framing() {
        let k = keys();
        assert_ne!(k.mac("a", &[b"x"]), k.mac("b", &[b"x"]));
        assert_ne!(k.mac("a", &[b"ab", b"c"]), k.mac("a", &[b"a", b"bc"]));
        assert_eq!(k.subject("alice"), k.subject("alice"));
        assert_ne!(k.subject("alice"), k.subject("alicf"));
        assert!(k.verify_mac("a", &[b"x"], &k.mac("a", &[b"x"])));
        assert!(!k.verify_mac("a", &[b"y"], &k.mac("a", &[b"x"])));
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(Keys::from_bytes(vec![1u8; 31]).is_err());
    }
}
