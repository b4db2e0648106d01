//! Settings shared by every command (flags with environment variables) and
//! the connectors file.

use crate::error::{Error, Result};
use crate::package;
use clap::Args;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// The SQLite database holding requests, consents and the audit log.
    #[arg(
        long,
        global = true,
        env = "MESHGUARD_GDPR_DB",
        default_value = "meshguard-gdpr.db"
    )]
    pub db: PathBuf,
    /// The secret key (at least 32 bytes) for subject HMACs, erasure proofs,
    /// code hashes and checkpoint MACs. Keep it apart from the database.
    #[arg(
        long,
        global = true,
        env = "MESHGUARD_GDPR_KEY_FILE",
        default_value = "meshguard-gdpr.key"
    )]
    pub key_file: PathBuf,
    /// Redis holding meshguard-state's data (read for export, written for erasure).
    #[arg(
        long,
        global = true,
        env = "MESHGUARD_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/"
    )]
    pub redis_url: String,
    /// meshguard-state's base URL (user revocation, audit stream).
    #[arg(
        long,
        global = true,
        env = "MESHGUARD_STATE_URL",
        default_value = "http://127.0.0.1:7070"
    )]
    pub state_url: String,
    /// File holding meshguard-state's admin token (or set MESHGUARD_ADMIN_TOKEN).
    #[arg(long, global = true, env = "MESHGUARD_ADMIN_TOKEN_FILE")]
    pub state_token_file: Option<PathBuf>,
    /// JSON file listing the upstream connectors (see docs/gdpr.md).
    #[arg(long, global = true, env = "MESHGUARD_GDPR_CONNECTORS")]
    pub connectors: Option<PathBuf>,
    /// Directory the outbox notifier writes verification mails to.
    #[arg(
        long,
        global = true,
        env = "MESHGUARD_GDPR_OUTBOX",
        default_value = "outbox"
    )]
    pub outbox: PathBuf,
    /// SMTP URL (smtps://user:pass@host) to send verification mails instead
    /// of the outbox; needs the `smtp` build feature.
    #[arg(long, global = true, env = "MESHGUARD_GDPR_SMTP_URL")]
    pub smtp_url: Option<String>,
    /// Sender of verification mails.
    #[arg(
        long,
        global = true,
        env = "MESHGUARD_GDPR_MAIL_FROM",
        default_value = "privacy@meshguard.local"
    )]
    pub mail_from: String,
    /// Directory holding export packages until they expire.
    #[arg(
        long,
        global = true,
        env = "MESHGUARD_GDPR_PACKAGES",
        default_value = "packages"
    )]
    pub packages_dir: PathBuf,
    /// Base of the download links handed to data subjects.
    #[arg(
        long,
        global = true,
        env = "MESHGUARD_GDPR_PUBLIC_URL",
        default_value = "http://127.0.0.1:7071"
    )]
    pub public_url: String,
    /// Name recorded as the actor in the audit log.
    #[arg(
        long,
        global = true,
        env = "MESHGUARD_ACTOR",
        default_value = "operator"
    )]
    pub actor: String,
    /// How long a verification code is valid (seconds).
    #[arg(
        long,
        global = true,
        env = "MESHGUARD_GDPR_CODE_TTL_S",
        default_value_t = 900
    )]
    pub code_ttl_s: i64,
    /// Wrong codes accepted before a code is locked.
    #[arg(
        long,
        global = true,
        env = "MESHGUARD_GDPR_CODE_ATTEMPTS",
        default_value_t = 5
    )]
    pub code_attempts: i64,
    /// The longest lifetime of a token: a user's not-before cutoff is kept
    /// this long after an erasure, then removed by `sweep`.
    #[arg(
        long,
        global = true,
        env = "MESHGUARD_GDPR_TOKEN_MAX_LIFETIME_S",
        default_value_t = 86_400
    )]
    pub token_max_lifetime_s: i64,
    /// How long an export package stays downloadable through its link
    /// (seconds; 7 days by default), then `prune-packages` deletes it.
    #[arg(
        long,
        global = true,
        env = "MESHGUARD_GDPR_PACKAGE_TTL_S",
        default_value_t = package::PACKAGE_TTL_S,
        value_parser = clap::value_parser!(i64).range(1..=package::PACKAGE_TTL_S)
    )]
    pub package_ttl_s: i64,
    /// How long an erasure waits after revoking the user's tokens before it
    /// erases data, so every Envoy has applied the cutoff (or, past the auth
    /// plugin's `revocation.max_staleness_ms`, fails closed) and no request
    /// still admitted writes new records behind the erasure. Keep it at
    /// least that `max_staleness_ms`; counted from the revoke step, so a
    /// resumed erasure waits only for what is left.
    #[arg(
        long,
        global = true,
        env = "MESHGUARD_GDPR_REVOCATION_GRACE_MS",
        default_value_t = 30_000,
        value_parser = clap::value_parser!(u64).range(0..=600_000)
    )]
    pub revocation_grace_ms: u64,
}

impl Settings {
    pub fn state_token(&self) -> Result<String> {
        if let Some(path) = &self.state_token_file {
            return read_secret(path);
        }
        std::env::var("MESHGUARD_ADMIN_TOKEN").map_err(|_| {
            Error::Config(
                "meshguard-state's admin token: set MESHGUARD_ADMIN_TOKEN or --state-token-file"
                    .into(),
            )
        })
    }

    pub fn connectors(&self) -> Result<Vec<Connector>> {
        match &self.connectors {
            None => Ok(Vec::new()),
            Some(path) => load_connectors(path),
        }
    }
}

pub fn read_secret(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    let secret = text.trim().to_string();
    if secret.len() < 16 {
        return Err(Error::Config(format!(
            "{}: a token must hold at least 16 characters",
            path.display()
        )));
    }
    Ok(secret)
}

/// One upstream that holds personal data: `GET url` exports, `DELETE url`
/// erases; `{id}` in the URL is replaced by the percent-encoded user id.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connector {
    pub name: String,
    pub url: String,
    /// The category held-data and legal holds refer to; `upstream.<name>` by default.
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// File holding a bearer token sent as `Authorization: Bearer <token>`
    /// (kept out of this file so the file can be shared).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Art. 15 metadata for this source (purposes, recipients, retention...).
    #[serde(default)]
    pub purposes: Vec<String>,
    #[serde(default)]
    pub recipients: Vec<String>,
    #[serde(default)]
    pub retention: Option<String>,
}

fn default_timeout_ms() -> u64 {
    5_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectorsFile {
    connectors: Vec<Connector>,
}

impl Connector {
    pub fn category(&self) -> String {
        self.category
            .clone()
            .unwrap_or_else(|| format!("upstream.{}", self.name))
    }

    fn validate(&self, at: usize) -> Result<()> {
        let field = |f: &str, why: &str| Error::Config(format!("connectors[{at}].{f}: {why}"));
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(field("name", "lowercase letters, digits, - and _ only"));
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(field("url", "must start with http:// or https://"));
        }
        if !self.url.contains("{id}") {
            return Err(field("url", "must contain {id}"));
        }
        if self.timeout_ms == 0 || self.timeout_ms > 600_000 {
            return Err(field("timeout_ms", "must be within 1..=600000"));
        }
        if let Some(c) = &self.category {
            if !crate::categories::valid_category_name(c) {
                return Err(field(
                    "category",
                    "lowercase letters, digits, ., - and _ only",
                ));
            }
        }
        Ok(())
    }
}

pub fn load_connectors(path: &Path) -> Result<Vec<Connector>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("connectors file {}: {e}", path.display())))?;
    let file: ConnectorsFile = serde_json::from_str(&text)
        .map_err(|e| Error::Config(format!("connectors file {}: {e}", path.display())))?;
    let mut seen = std::collections::HashSet::new();
    for (i, c) in file.connectors.iter().enumerate() {
        c.validate(i)?;
        if !seen.insert(c.name.clone()) {
            return Err(Error::Config(format!(
                "connectors[{i}].name: {} is listed twice",
                c.name
            )));
        }
    }
    Ok(file.connectors)
}
