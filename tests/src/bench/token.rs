//! An HS256 key shared by the auth plugin, Envoy's jwt_authn and
//! `meshguard-state token mint`, and tokens minted with it.

use crate::paths::service_binary;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;

pub const ISSUER: &str = "meshguard-dev";

pub struct DevKey {
    /// The key as `token mint` reads it (ASCII hex: nothing for it to trim).
    bytes: Vec<u8>,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl DevKey {
    pub fn generate() -> DevKey {
        let mut buf = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
            .expect("read /dev/urandom for the bench key");
        let bytes: Vec<u8> = buf
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into_bytes();
        let dir = tempfile::tempdir().expect("temp dir for the bench key");
        let file = dir.path().join("dev-jwt-key");
        std::fs::write(&file, &bytes).expect("write the bench key");
        DevKey {
            bytes,
            file,
            _dir: dir,
        }
    }

    /// `{"keys": [...]}` with the key as an HS256 `oct` JWK.
    pub fn jwks(&self) -> Value {
        json!({"keys": [{"kty": "oct", "alg": "HS256", "k": URL_SAFE_NO_PAD.encode(&self.bytes)}]})
    }

    /// A token for `sub` in `tier` with this `jti`, valid for an hour.
    pub fn mint(&self, sub: &str, tier: &str, jti: &str) -> String {
        let output = Command::new(service_binary("meshguard-state"))
            .args(["token", "mint", "--key-file"])
            .arg(&self.file)
            .args(["--sub", sub, "--tier", tier, "--jti", jti, "--ttl", "3600"])
            .output()
            .expect("run meshguard-state token mint");
        assert!(
            output.status.success(),
            "token mint: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }
}

/// The claims of a JWT, unverified.
pub fn claims(token: &str) -> Value {
    token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|p| serde_json::from_slice(&p).ok())
        .unwrap_or(Value::Null)
}
