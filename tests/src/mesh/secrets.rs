//! The run dir's secrets (0600 files made once from the system's
//! randomness) and the dev tokens signed with its `dev-jwt-key`.

use super::{json_patch::merge_patch, DEV_ISSUER};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// An HS256 dev token from `<run_dir>/dev-jwt-key` (see [`Mesh::mint_token`]).
pub fn mint_dev_token(run_dir: &Path, sub: &str, tier: &str, extra_claims: Value) -> String {
    let key = secret(run_dir, "dev-jwt-key");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut claims = json!({
        "iss": DEV_ISSUER,
        "sub": sub,
        "jti": random_hex(16),
        "iat": now,
        "exp": now + 3_600,
    });
    if !tier.is_empty() {
        claims["tier"] = json!(tier);
    }
    merge_patch(&mut claims, &extra_claims);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("JWT".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap_or_else(|e| panic!("signing a dev token: {e}"))
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    if let Ok(mut urandom) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = urandom.read_exact(&mut buffer);
    }
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

/// Makes `dir` readable and writable by its owner alone (0700).
pub(super) fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// A secret kept in `<run_dir>/<name>` (0600), made once from the system's randomness.
pub fn secret(run_dir: &Path, name: &str) -> String {
    let path = run_dir.join(name);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        if !existing.trim().is_empty() {
            // A file from an older run may be readable by others.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            return existing.trim().to_string();
        }
    }
    let value = random_hex(24);
    // Readable by the owner alone.
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut file| file.write_all(value.as_bytes()))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    value
}
