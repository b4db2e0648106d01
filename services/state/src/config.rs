//! `meshguard-state serve` settings, from flags or environment. Secrets come
//! only from the environment or files (never flags, which `ps` shows).

use crate::auth::{Secret, Secrets};
use crate::limits::{Limits, LimitsFile};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Log lines as text or as one JSON object each (level: MESHGUARD_LOG).
    #[arg(long, env = "MESHGUARD_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: meshguard_service_kit::logging::LogFormat,
    /// Address to listen on.
    #[arg(long, env = "MESHGUARD_STATE_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// Redis URL; with --redis-cluster, a comma-separated list of node URLs.
    #[arg(
        long,
        env = "MESHGUARD_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/"
    )]
    pub redis_url: String,
    /// Treat --redis-url as Redis Cluster seed nodes.
    #[arg(long, env = "MESHGUARD_REDIS_CLUSTER")]
    pub redis_cluster: bool,
    /// Deadline for every Redis call; past it the endpoint answers 503.
    #[arg(long, env = "MESHGUARD_REDIS_TIMEOUT_MS", default_value_t = 500)]
    pub redis_timeout_ms: u64,
    /// The plugin shared secret (at least 16 characters).
    #[arg(
        long,
        env = "MESHGUARD_PLUGIN_SECRET",
        hide_env_values = true,
        hide = true
    )]
    pub plugin_secret: Option<String>,
    #[arg(long, env = "MESHGUARD_PLUGIN_SECRET_FILE")]
    pub plugin_secret_file: Option<PathBuf>,
    /// The operator token (at least 16 characters).
    #[arg(
        long,
        env = "MESHGUARD_ADMIN_TOKEN",
        hide_env_values = true,
        hide = true
    )]
    pub admin_token: Option<String>,
    #[arg(long, env = "MESHGUARD_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Largest request body accepted.
    #[arg(long, env = "MESHGUARD_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,
    /// Tiers, global limit and route costs (JSON); the seed defaults when absent.
    #[arg(long, env = "MESHGUARD_LIMITS_FILE")]
    pub limits_file: Option<PathBuf>,
    /// Live sessions per user; the oldest is ended past this.
    #[arg(long, env = "MESHGUARD_MAX_SESSIONS", default_value_t = 5)]
    pub max_sessions: u32,
    /// Speed between two locations of one user above which travel is impossible.
    #[arg(long, env = "MESHGUARD_TRAVEL_MAX_KMH", default_value_t = 900.0)]
    pub travel_max_kmh: f64,
    /// End the session that reported an impossible travel.
    #[arg(long, env = "MESHGUARD_TRAVEL_END_SESSION")]
    pub travel_end_session: bool,
    /// How long a session revocation stays in the feed: at least the longest
    /// token lifetime a plugin accepts plus twice the largest clock skew.
    #[arg(
        long,
        env = "MESHGUARD_SESSION_REVOCATION_TTL_S",
        default_value_t = meshguard_api::revocation::SESSION_REVOCATION_S
    )]
    pub session_revocation_ttl_s: u64,
    /// Entries the revocation stream keeps; an older cursor gets a snapshot.
    #[arg(long, env = "MESHGUARD_FEED_MAX_LEN", default_value_t = 100_000)]
    pub feed_max_len: u64,
    /// Entries the audit stream keeps (approximately).
    #[arg(long, env = "MESHGUARD_AUDIT_MAX_LEN", default_value_t = 1_000_000)]
    pub audit_max_len: u64,
    /// Lifetime of a quota lease.
    #[arg(long, env = "MESHGUARD_LEASE_TTL_MS", default_value_t = 10_000)]
    pub lease_ttl_ms: u64,
}

/// What handlers need besides the store, resolved from [`ServeArgs`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_sessions: u32,
    pub travel_max_kmh: f64,
    pub travel_end_session: bool,
    pub session_revocation_ttl_s: u64,
    pub lease_ttl_ms: u64,
    pub feed_page_max: usize,
}

impl ServeArgs {
    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms.max(1))
    }

    pub fn settings(&self) -> Result<Settings, String> {
        if self.max_sessions == 0 {
            return Err("--max-sessions must be at least 1".into());
        }
        if !(self.travel_max_kmh.is_finite() && self.travel_max_kmh > 0.0) {
            return Err("--travel-max-kmh must be positive".into());
        }
        if self.session_revocation_ttl_s < meshguard_api::revocation::SESSION_REVOCATION_S {
            return Err(format!(
                "--session-revocation-ttl-s must be at least {} (the longest token lifetime a plugin accepts plus twice the largest clock skew): a shorter one lets an ended session's tokens back in",
                meshguard_api::revocation::SESSION_REVOCATION_S
            ));
        }
        if self.feed_max_len == 0 {
            return Err("--feed-max-len must be at least 1".into());
        }
        Ok(Settings {
            max_sessions: self.max_sessions,
            travel_max_kmh: self.travel_max_kmh,
            travel_end_session: self.travel_end_session,
            session_revocation_ttl_s: self.session_revocation_ttl_s,
            lease_ttl_ms: self.lease_ttl_ms.max(1),
            feed_page_max: 1_000,
        })
    }

    pub fn secrets(&self) -> Result<Secrets, String> {
        let plugin = load_secret(
            "plugin secret",
            self.plugin_secret.as_deref(),
            self.plugin_secret_file.as_ref(),
        )?;
        let admin = load_secret(
            "admin token",
            self.admin_token.as_deref(),
            self.admin_token_file.as_ref(),
        )?;
        if plugin.overlaps(&admin) {
            return Err("the plugin secret and the admin token must differ".into());
        }
        Ok(Secrets { plugin, admin })
    }

    pub fn limits(&self) -> Result<Limits, String> {
        let file = match &self.limits_file {
            None => LimitsFile::seed(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("reading {}: {e}", path.display()))?;
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
        };
        file.compile()
    }
}

pub fn load_secret(
    what: &str,
    value: Option<&str>,
    file: Option<&PathBuf>,
) -> Result<Secret, String> {
    let raw = match (value, file) {
        (Some(_), Some(_)) => return Err(format!("{what}: give either the value or the file")),
        (Some(v), None) => v.to_string(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| format!("{what}: reading {}: {e}", path.display()))?,
        (None, None) => return Err(format!("{what} is required (environment or file)")),
    };
    Secret::new(&raw).map_err(|e| format!("{what} {e}"))
}
