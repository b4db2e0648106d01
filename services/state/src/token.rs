//! `meshguard-state token mint`: HS256 tokens for local development, signed
//! with the dev key `scripts/up` creates. Not for production identities.

use chrono::{DateTime, Utc};
use clap::Subcommand;
use jwt_compact::alg::{Hs256, Hs256Key};
use jwt_compact::{AlgorithmExt, Claims, Header, TimeOptions};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a signed HS256 JWT.
    #[command(
        after_help = "Example:\n  TOKEN=$(meshguard-state token mint --key-file .run/dev-jwt-key --sub alice --tier premium --sid s1)"
    )]
    Mint(MintArgs),
}

#[derive(Debug, clap::Args)]
pub struct MintArgs {
    /// File with the HMAC key (at least 32 bytes; surrounding whitespace is trimmed).
    #[arg(long, env = "MESHGUARD_DEV_KEY_FILE")]
    pub key_file: PathBuf,
    #[arg(long)]
    pub sub: String,
    #[arg(long, default_value = "meshguard-dev")]
    pub iss: String,
    #[arg(long)]
    pub aud: Option<String>,
    #[arg(long)]
    pub tier: Option<String>,
    /// Session id (`sid` claim).
    #[arg(long)]
    pub sid: Option<String>,
    /// Space-separated scopes.
    #[arg(long)]
    pub scope: Option<String>,
    /// Token id; random when absent.
    #[arg(long)]
    pub jti: Option<String>,
    /// Key id (`kid` header).
    #[arg(long)]
    pub kid: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3_600)]
    pub ttl: i64,
}

#[derive(Debug, Serialize)]
struct DevClaims {
    iss: String,
    sub: String,
    jti: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

fn random_id() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub fn mint(args: &MintArgs, now: DateTime<Utc>) -> Result<String, String> {
    let raw = std::fs::read(&args.key_file)
        .map_err(|e| format!("reading {}: {e}", args.key_file.display()))?;
    let key = raw.trim_ascii();
    if key.len() < 32 {
        return Err(format!(
            "{}: the key must be at least 32 bytes",
            args.key_file.display()
        ));
    }
    if args.ttl <= 0 {
        return Err("--ttl must be positive".into());
    }
    let claims = DevClaims {
        iss: args.iss.clone(),
        sub: args.sub.clone(),
        jti: match &args.jti {
            Some(j) => j.clone(),
            None => random_id()?,
        },
        aud: args.aud.clone(),
        tier: args.tier.clone(),
        sid: args.sid.clone(),
        scope: args.scope.clone(),
    };
    let options = TimeOptions::new(chrono::Duration::zero(), move || now);
    let claims = Claims::new(claims)
        .set_duration_and_issuance(&options, chrono::Duration::seconds(args.ttl));
    let mut header = Header::empty().with_token_type("JWT");
    if let Some(kid) = &args.kid {
        header = header.with_key_id(kid.clone());
    }
    Hs256
        .token(&header, &claims, &Hs256Key::new(key))
        .map_err(|e| format!("signing: {e}"))
}

pub fn run(command: TokenCommand) -> ExitCode {
    let TokenCommand::Mint(args) = command;
    let now = DateTime::<Utc>::from(std::time::SystemTime::now());
    match mint(&args, now) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("meshguard-state: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jwt_compact::{UntrustedToken, ValidationError};

    #[test]
    fn minted_tokens_verify_with_the_key_and_carry_the_claims() {
        let dir = std::env::temp_dir().join(format!("mg-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key_file = dir.join("dev.key");
        std::fs::write(&key_file, "k".repeat(40) + "\n").unwrap();
        let args = MintArgs {
            key_file: key_file.clone(),
            sub: "alice".into(),
            iss: "meshguard-dev".into(),
            aud: None,
            tier: Some("premium".into()),
            sid: Some("s1".into()),
            scope: None,
            jti: None,
            kid: Some("dev".into()),
            ttl: 600,
        };
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let token = mint(&args, now).unwrap();
        let untrusted = UntrustedToken::new(&token).unwrap();
        assert_eq!(untrusted.header().key_id.as_deref(), Some("dev"));
        let key = Hs256Key::new("k".repeat(40));
        let verified = Hs256
            .validator::<serde_json::Value>(&key)
            .validate(&untrusted)
            .unwrap();
        let claims = verified.claims();
        assert_eq!(claims.custom["sub"], "alice");
        assert_eq!(claims.custom["tier"], "premium");
        assert_eq!(claims.custom["sid"], "s1");
        assert_eq!(claims.custom["jti"].as_str().unwrap().len(), 32);
        assert_eq!(claims.expiration.unwrap().timestamp(), 1_800_000_600);
        assert_eq!(claims.issued_at.unwrap().timestamp(), 1_800_000_000);
        let wrong = Hs256Key::new("x".repeat(40));
        assert!(matches!(
            Hs256
                .validator::<serde_json::Value>(&wrong)
                .validate(&untrusted),
            Err(ValidationError::InvalidSignature)
        ));
        std::fs::write(&key_file, "short").unwrap();
        assert!(mint(&args, now).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
