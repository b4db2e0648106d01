//! The operator commands: thin calls to the admin API that print its JSON.

use crate::config::{load_secret, ServeArgs};
use crate::token::TokenCommand;
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "meshguard-state", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// How the operator commands reach the service.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The service's base URL.
    #[arg(
        long,
        global = true,
        env = "MESHGUARD_STATE_URL",
        default_value = "http://127.0.0.1:7070"
    )]
    pub url: String,
    /// File holding the admin token (or set MESHGUARD_ADMIN_TOKEN).
    #[arg(long = "token-file", global = true, env = "MESHGUARD_ADMIN_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Name recorded as the actor in audit events.
    #[arg(long, global = true, env = "MESHGUARD_ACTOR")]
    pub actor: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service.
    #[command(
        after_help = "Example:\n  meshguard-state serve --redis-url redis://127.0.0.1:6379 --admin-token-file admin-token"
    )]
    Serve(Box<ServeArgs>),
    /// Revoke one token by issuer and token id.
    #[command(
        after_help = "Example:\n  meshguard-state revoke --iss meshguard-dev --jti 5f0c2a --exp 1767225600 --reason leaked"
    )]
    Revoke {
        #[arg(long)]
        iss: String,
        #[arg(long)]
        jti: String,
        /// The token's expiry (Unix seconds); the revocation is kept until then.
        #[arg(long)]
        exp: u64,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Revoke every token of a user issued before now.
    #[command(
        after_help = "Example:\n  meshguard-state revoke-user alice --reason \"password reset\""
    )]
    RevokeUser {
        sub: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// List or end a user's sessions.
    #[command(after_help = "Example:\n  meshguard-state sessions list alice")]
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Read and change feature flags.
    #[command(after_help = "Example:\n  meshguard-state flags get FEATURE_ML_V2")]
    #[command(subcommand)]
    Flags(FlagsCommand),
    /// Development tokens.
    #[command(
        after_help = "Example:\n  meshguard-state token mint --key-file .run/dev-jwt-key --sub alice --tier premium"
    )]
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  meshguard-state completions bash > /etc/bash_completion.d/meshguard-state\n  meshguard-state completions zsh > \"${fpath[1]}/_meshguard-state\"\n  meshguard-state completions fish > ~/.config/fish/completions/meshguard-state.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Writes the completion script of `shell` for this binary to stdout.
pub fn completions(shell: clap_complete::Shell) -> ExitCode {
    use clap::CommandFactory;
    let mut command = Cli::command();
    clap_complete::generate(
        shell,
        &mut command,
        "meshguard-state",
        &mut std::io::stdout(),
    );
    ExitCode::SUCCESS
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// A user's sessions with their device (user agent, client address, first and last seen).
    #[command(after_help = "Example:\n  meshguard-state sessions list alice")]
    List { user: String },
    /// End one session: its tokens are refused at the proxy within one feed poll.
    #[command(after_help = "Example:\n  meshguard-state sessions end alice s-42")]
    End { user: String, session_id: String },
}

#[derive(Debug, Subcommand)]
pub enum FlagsCommand {
    /// One flag, or all of them with their version.
    #[command(after_help = "Example:\n  meshguard-state flags get FEATURE_ML_V2")]
    Get { key: Option<String> },
    /// Create or replace a flag from a JSON definition (a file, or - for stdin).
    #[command(after_help = "Example:\n  meshguard-state flags set FEATURE_ML_V2 ml-v2.json")]
    Set { key: String, file: PathBuf },
    /// Write several flags from a JSON file `{"flags": [...]}` or `[...]`,
    /// or from an OpenFeature flagd flag-definition file with `--flagd`.
    #[command(
        after_help = "Example:\n  meshguard-state flags import --flagd flagd.json --var email=header:x-user-email"
    )]
    Import {
        file: PathBuf,
        /// Delete the flags the file does not list.
        #[arg(long)]
        replace: bool,
        /// The file is flagd JSON; unsupported parts are refused by name.
        #[arg(long)]
        flagd: bool,
        /// Maps a flagd context variable to a Meshguard attribute, e.g.
        /// `--var email=header:x-user-email` (targetingKey is `sub`).
        #[arg(long = "var", value_name = "VARIABLE=ATTRIBUTE")]
        vars: Vec<String>,
    },
    /// Delete a flag.
    #[command(after_help = "Example:\n  meshguard-state flags delete FEATURE_ML_V2")]
    Delete { key: String },
}

/// Converts a flagd document into Meshguard flag definitions (JSON).
fn flagd_flags(document: &Value, vars: &[String]) -> Result<Value, String> {
    let mut options = meshguard_policy::flags::ImportOptions::default();
    for var in vars {
        let (variable, attribute) = var
            .split_once('=')
            .ok_or_else(|| format!("--var {var}: expected VARIABLE=ATTRIBUTE"))?;
        options
            .attributes
            .insert(variable.to_string(), attribute.to_string());
    }
    let flags = meshguard_policy::flags::import_flagd(document, &options)
        .map_err(|e| format!("flagd import: {e}"))?;
    serde_json::to_value(flags).map_err(|e| e.to_string())
}

fn read_json(file: &PathBuf) -> Result<Value, String> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("reading stdin: {e}"))?
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?
    };
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))
}

struct Client {
    agent: ureq::Agent,
    base: String,
    token: String,
    actor: Option<String>,
}

impl Client {
    fn new(args: &ClientArgs) -> Result<Client, String> {
        let env = std::env::var("MESHGUARD_ADMIN_TOKEN").ok();
        let token = load_secret(
            "admin token",
            if args.token_file.is_some() {
                None
            } else {
                env.as_deref()
            },
            args.token_file.as_ref(),
        )?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Ok(Client {
            agent,
            base: args.url.trim_end_matches('/').to_string(),
            token: token.expose().to_string(),
            actor: args.actor.clone(),
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let actor = self.actor.clone().unwrap_or_default();
        let result = match (method, body) {
            ("GET", _) => self
                .agent
                .get(&url)
                .header("authorization", &auth)
                .header("x-meshguard-actor", &actor)
                .call(),
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("authorization", &auth)
                .header("x-meshguard-actor", &actor)
                .call(),
            ("PUT", Some(b)) => self
                .agent
                .put(&url)
                .header("authorization", &auth)
                .header("x-meshguard-actor", &actor)
                .send_json(b),
            (_, b) => self
                .agent
                .post(&url)
                .header("authorization", &auth)
                .header("x-meshguard-actor", &actor)
                .send_json(b.unwrap_or(Value::Null)),
        };
        let mut response = result.map_err(|e| format!("{method} {url}: {e}"))?;
        let status = response.status();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("{method} {url}: reading the answer: {e}"))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            Ok(value)
        } else {
            Err(format!("{method} {url}: {status}: {value}"))
        }
    }
}

fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn execute(client: &Client, command: Command) -> Result<Value, String> {
    match command {
        Command::Revoke {
            iss,
            jti,
            exp,
            reason,
        } => client.call(
            "POST",
            "/v1/revocations/token",
            Some(json!({ "iss": iss, "jti": jti, "exp": exp, "reason": reason })),
        ),
        Command::RevokeUser { sub, reason } => client.call(
            "POST",
            "/v1/revocations/user",
            Some(json!({ "sub": sub, "reason": reason })),
        ),
        Command::Sessions(SessionsCommand::List { user }) => {
            client.call("GET", &format!("/v1/sessions/{}", segment(&user)), None)
        }
        Command::Sessions(SessionsCommand::End { user, session_id }) => client.call(
            "DELETE",
            &format!("/v1/sessions/{}/{}", segment(&user), segment(&session_id)),
            None,
        ),
        Command::Flags(FlagsCommand::Get { key: None }) => client.call("GET", "/v1/flags", None),
        Command::Flags(FlagsCommand::Get { key: Some(key) }) => {
            client.call("GET", &format!("/v1/flags/{}", segment(&key)), None)
        }
        Command::Flags(FlagsCommand::Set { key, file }) => client.call(
            "PUT",
            &format!("/v1/flags/{}", segment(&key)),
            Some(read_json(&file)?),
        ),
        Command::Flags(FlagsCommand::Delete { key }) => {
            client.call("DELETE", &format!("/v1/flags/{}", segment(&key)), None)
        }
        Command::Flags(FlagsCommand::Import {
            file,
            replace,
            flagd,
            vars,
        }) => {
            let flags = if flagd {
                flagd_flags(&read_json(&file)?, &vars)?
            } else {
                match read_json(&file)? {
                    Value::Object(mut o) => o.remove("flags").unwrap_or(Value::Null),
                    other => other,
                }
            };
            client.call(
                "POST",
                "/v1/flags/import",
                Some(json!({ "flags": flags, "replace": replace })),
            )
        }
        Command::Serve(_) | Command::Token(_) | Command::Completions { .. } => {
            Err("not an API command".into())
        }
    }
}

pub fn run(args: &ClientArgs, command: Command) -> ExitCode {
    let result = Client::new(args).and_then(|client| execute(&client, command));
    match result {
        Ok(value) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string())
            );
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

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(segment("alice@example.com"), "alice%40example.com");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "meshguard-state",
            "--url",
            "http://x:1",
            "sessions",
            "end",
            "alice",
            "s1",
        ])
        .unwrap();
        assert_eq!(cli.client.url, "http://x:1");
        assert!(matches!(
            cli.command,
            Command::Sessions(SessionsCommand::End { .. })
        ));
    }

    /// Every subcommand says what it does in one line and shows an example.
    #[test]
    fn every_subcommand_has_a_description_and_an_example() {
        use clap::CommandFactory;
        let missing = meshguard_service_kit::cli_help::undocumented(&Cli::command());
        assert!(missing.is_empty(), "{missing:#?}");
    }

    #[test]
    fn completions_cover_every_subcommand() {
        use clap::CommandFactory;
        let mut script = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut Cli::command(),
            "meshguard-state",
            &mut script,
        );
        let script = String::from_utf8(script).unwrap();
        for name in ["revoke-user", "sessions", "flags", "token", "completions"] {
            assert!(
                script.contains(name),
                "{name} missing from the bash completions"
            );
        }
    }

    #[test]
    fn flagd_documents_convert_and_unsupported_parts_are_named() {
        let document = serde_json::json!({"flags": {"checkout": {
            "state": "ENABLED",
            "variants": {"a": "a", "b": "b"},
            "defaultVariant": "a",
            "targeting": {"fractional": [["a", 50], ["b", 50]]}
        }}});
        let flags = flagd_flags(&document, &[]).unwrap();
        assert_eq!(flags[0]["key"], "checkout");
        assert_eq!(flags[0]["weights"][1]["variant"], "b");

        let unsupported = serde_json::json!({"flags": {"f": {
            "state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a",
            "targeting": {"and": [true, true]}
        }}});
        let err = flagd_flags(&unsupported, &[]).unwrap_err();
        assert!(err.contains("flags.f.targeting"), "{err}");
        assert!(flagd_flags(&document, &["novalue".into()]).is_err());
    }
}
