//! The operator commands. Each prints its result as JSON on stdout; errors
//! go to stderr with exit status 1 (2 for usage errors).

use crate::config::Settings;
use crate::consent::Purpose;
use crate::core::Core;
use crate::error::{Error, Result};
use crate::export::Format;
use crate::notify::Notifier;
use crate::requests::Kind;
use crate::{audit, consent, erase, export, holds, ingest, keys, requests};
use clap::{Parser, Subcommand};
use serde::Serialize;
use serde_json::json;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "meshguard-gdpr", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a fresh secret key (keep it apart from the database and back it up).
    #[command(after_help = "Example:\n  meshguard-gdpr keygen /etc/meshguard/gdpr.key")]
    Keygen { path: PathBuf },
    /// File, verify and follow data-subject requests.
    #[command(subcommand)]
    #[command(
        after_help = "Example:\n  meshguard-gdpr request create --kind erasure --user alice"
    )]
    Request(RequestCommand),
    /// Answer a verified access or portability request with a package.
    #[command(after_help = "Example:\n  meshguard-gdpr export dsr-9a1b2c --format csv")]
    Export {
        request: String,
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
    },
    /// Carry out (or resume) a verified erasure request.
    #[command(after_help = "Example:\n  meshguard-gdpr erase dsr-5f0c1d")]
    Erase { request: String },
    /// The erasure steps of a request and their status.
    #[command(after_help = "Example:\n  meshguard-gdpr steps dsr-5f0c1d")]
    Steps { request: String },
    /// The subject's contact address, from the subject's own records.
    #[command(subcommand)]
    #[command(
        after_help = "Example:\n  meshguard-gdpr contact set --user alice --email alice@example.org --source \"account 4411\""
    )]
    Contact(ContactCommand),
    /// Legal holds (Art. 17(3)) that block erasure of a category.
    #[command(subcommand)]
    #[command(
        after_help = "Example:\n  meshguard-gdpr hold add --user carol --category sessions --reason \"pending litigation\""
    )]
    Hold(HoldCommand),
    /// Consent records.
    #[command(subcommand)]
    #[command(after_help = "Example:\n  meshguard-gdpr consent show --user alice")]
    Consent(ConsentCommand),
    /// The audit log.
    #[command(subcommand)]
    #[command(after_help = "Example:\n  meshguard-gdpr audit verify")]
    Audit(AuditCommand),
    /// Delete expired export packages.
    #[command(after_help = "Example:\n  meshguard-gdpr prune-packages")]
    PrunePackages,
    /// Remove not-before cutoffs kept after erasures once their tokens expired.
    #[command(after_help = "Example:\n  meshguard-gdpr sweep")]
    Sweep,
    /// Was this identifier erased? Shows the proofs, checked.
    #[command(after_help = "Example:\n  meshguard-gdpr proof --user alice")]
    Proof {
        #[arg(long)]
        user: String,
    },
    /// Parse a package (JSON, CSV or XML, by extension) and print it as JSON.
    #[command(after_help = "Example:\n  meshguard-gdpr inspect-package package-dsr-9a1b2c.csv")]
    InspectPackage { path: PathBuf },
    /// Serve the HTTP API.
    #[command(
        after_help = "Example:\n  meshguard-gdpr serve --listen 127.0.0.1:7071 --admin-token-file gdpr-admin-token"
    )]
    Serve(crate::serve::ServeArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  meshguard-gdpr completions bash > /etc/bash_completion.d/meshguard-gdpr\n  meshguard-gdpr completions fish > ~/.config/fish/completions/meshguard-gdpr.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContactCommand {
    /// Record where verification codes for this subject go.
    #[command(
        after_help = "Example:\n  meshguard-gdpr contact set --user alice --email alice@example.org --source \"account 4411, verified 2025-03-02\""
    )]
    Set {
        #[arg(long)]
        user: String,
        #[arg(long)]
        email: String,
        /// The subject's record the address was taken from (e.g. "account 4411, verified 2025-03-02").
        #[arg(long)]
        source: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// File a request and send the subject a verification code.
    #[command(
        after_help = "Example:\n  meshguard-gdpr request create --kind access --user alice --received-at 2026-12-01"
    )]
    Create {
        #[arg(long, value_enum)]
        kind: Kind,
        /// The code goes to this subject's address on record (`contact set`).
        #[arg(long)]
        user: String,
        /// When the request arrived (RFC 3339 or YYYY-MM-DD); now by default.
        #[arg(long)]
        received_at: Option<String>,
    },
    /// Send a new code (the old one stops working).
    #[command(after_help = "Example:\n  meshguard-gdpr request send-code dsr-9a1b2c")]
    SendCode { request: String },
    /// Check the code the subject gives back.
    #[command(after_help = "Example:\n  meshguard-gdpr request verify dsr-9a1b2c --code 123456")]
    Verify {
        request: String,
        #[arg(long)]
        code: String,
    },
    /// A request: its kind, status, deadline and proof.
    #[command(after_help = "Example:\n  meshguard-gdpr request status dsr-9a1b2c")]
    Status { request: String },
    /// Requests, soonest deadline first.
    #[command(after_help = "Example:\n  meshguard-gdpr request list --overdue")]
    List {
        /// Only open requests past their deadline.
        #[arg(long)]
        overdue: bool,
        #[arg(long)]
        status: Option<String>,
    },
    /// Extend the deadline by one or two months (Art. 12(3)), with the reason.
    #[command(
        after_help = "Example:\n  meshguard-gdpr request extend dsr-9a1b2c --months 1 --reason \"complex request, many systems\""
    )]
    Extend {
        request: String,
        #[arg(long)]
        months: i64,
        #[arg(long)]
        reason: String,
    },
    /// Refuse a request, with the reason the subject is told.
    #[command(
        after_help = "Example:\n  meshguard-gdpr request reject dsr-9a1b2c --reason \"manifestly unfounded\""
    )]
    Reject {
        request: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum HoldCommand {
    /// Keep a category of a subject's data out of erasure.
    #[command(
        after_help = "Example:\n  meshguard-gdpr hold add --user carol --category sessions --reason \"pending litigation\""
    )]
    Add {
        #[arg(long)]
        user: String,
        #[arg(long)]
        category: String,
        #[arg(long)]
        reason: String,
    },
    /// End a hold; a pending erasure then includes the category.
    #[command(after_help = "Example:\n  meshguard-gdpr hold release 3")]
    Release { id: i64 },
    /// Active holds, of one subject or all.
    #[command(after_help = "Example:\n  meshguard-gdpr hold list --user carol")]
    List {
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConsentCommand {
    /// Record that the subject gave consent for a purpose.
    #[command(
        after_help = "Example:\n  meshguard-gdpr consent grant --user alice --purpose analytics --notice-version 2026-01 --method web-form"
    )]
    Grant(ConsentArgs),
    /// Record a withdrawal; the proxies see it within seconds.
    #[command(
        after_help = "Example:\n  meshguard-gdpr consent withdraw --user alice --purpose analytics --notice-version 2026-01 --method email"
    )]
    Withdraw(ConsentArgs),
    /// Current choices, or the whole history.
    #[command(after_help = "Example:\n  meshguard-gdpr consent show --user alice --history")]
    Show {
        #[arg(long)]
        user: String,
        #[arg(long)]
        history: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct ConsentArgs {
    #[arg(long)]
    pub user: String,
    #[arg(long, value_enum)]
    pub purpose: Purpose,
    /// The version of the notice the subject saw.
    #[arg(long)]
    pub notice_version: String,
    /// How the choice was made (web-form, email, api, ...).
    #[arg(long)]
    pub method: String,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the whole chain and its checkpoints; names the first broken entry.
    #[command(after_help = "Example:\n  meshguard-gdpr audit verify")]
    Verify,
    /// Seal a checkpoint at the head.
    #[command(after_help = "Example:\n  meshguard-gdpr audit checkpoint")]
    Checkpoint,
    /// Delete entries past the retention, keeping a checkpoint as the anchor.
    #[command(after_help = "Example:\n  meshguard-gdpr audit prune --retention-days 1095")]
    Prune {
        #[arg(long, default_value_t = audit::RETENTION_DAYS)]
        retention_days: i64,
    },
    /// Ingest meshguard-state's audit stream.
    #[command(after_help = "Example:\n  meshguard-gdpr audit ingest")]
    Ingest,
    /// Print entries (no personal data in them).
    #[command(after_help = "Example:\n  meshguard-gdpr audit show --since 120")]
    Show {
        #[arg(long, default_value_t = 0)]
        since: i64,
    },
}

fn print(value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
    println!("{text}");
    Ok(())
}

pub fn run(cli: Cli) -> Result<()> {
    let s = &cli.settings;
    match cli.command {
        Command::Keygen { path } => {
            keys::Keys::generate(&path)?;
            print(&json!({"key_file": path}))
        }
        Command::Serve(args) => crate::serve::main(s.clone(), args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut command = Cli::command();
            clap_complete::generate(
                shell,
                &mut command,
                "meshguard-gdpr",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Request(rc) => {
            let mut core = Core::open(s)?;
            match rc {
                RequestCommand::Create {
                    kind,
                    user,
                    received_at,
                } => {
                    let notifier = Notifier::from_settings(s)?;
                    print(&requests::create(
                        &mut core,
                        &notifier,
                        kind,
                        &user,
                        received_at.as_deref(),
                    )?)
                }
                RequestCommand::SendCode { request } => {
                    let notifier = Notifier::from_settings(s)?;
                    requests::send_code(&mut core, &notifier, &request)?;
                    print(&requests::get(&core, &request)?)
                }
                RequestCommand::Verify { request, code } => {
                    print(&requests::verify(&mut core, &request, &code)?)
                }
                RequestCommand::Status { request } => print(&requests::get(&core, &request)?),
                RequestCommand::List { overdue, status } => {
                    print(&requests::list(&core, overdue, status.as_deref())?)
                }
                RequestCommand::Extend {
                    request,
                    months,
                    reason,
                } => print(&requests::extend(&mut core, &request, months, &reason)?),
                RequestCommand::Reject { request, reason } => {
                    print(&requests::reject(&mut core, &request, &reason)?)
                }
            }
        }
        Command::Contact(ContactCommand::Set {
            user,
            email,
            source,
        }) => {
            let mut core = Core::open(s)?;
            print(&crate::contacts::set(&mut core, &user, &email, &source)?)
        }
        Command::Export { request, format } => {
            let mut core = Core::open(s)?;
            print(&export::run(&mut core, &request, format)?)
        }
        Command::Erase { request } => {
            let mut core = Core::open(s)?;
            print(&erase::run(&mut core, &request)?)
        }
        Command::Steps { request } => {
            let core = Core::open(s)?;
            requests::get(&core, &request)?;
            print(&erase::steps(&core, &request)?)
        }
        Command::Hold(hc) => {
            let mut core = Core::open(s)?;
            match hc {
                HoldCommand::Add {
                    user,
                    category,
                    reason,
                } => print(&holds::add(&mut core, &user, &category, &reason)?),
                HoldCommand::Release { id } => print(&holds::release(&mut core, id)?),
                HoldCommand::List { user } => print(&holds::list(&core, user.as_deref())?),
            }
        }
        Command::Consent(cc) => {
            let mut core = Core::open(s)?;
            match cc {
                ConsentCommand::Grant(a) => print(&consent::record(
                    &mut core,
                    &a.user,
                    a.purpose,
                    true,
                    &a.notice_version,
                    &a.method,
                )?),
                ConsentCommand::Withdraw(a) => print(&consent::record(
                    &mut core,
                    &a.user,
                    a.purpose,
                    false,
                    &a.notice_version,
                    &a.method,
                )?),
                ConsentCommand::Show { user, history } => {
                    if history {
                        print(&consent::history(&core, &user)?)
                    } else {
                        print(&consent::current(&core, &user)?)
                    }
                }
            }
        }
        Command::Audit(ac) => {
            let mut core = Core::open(s)?;
            match ac {
                AuditCommand::Verify => {
                    let v = audit::verify(&core.conn, &core.keys)?;
                    print(&v)?;
                    match v.problems.first() {
                        None => Ok(()),
                        Some(first) => Err(Error::Conflict(format!("audit log broken: {first}"))),
                    }
                }
                AuditCommand::Checkpoint => {
                    print(&json!({"checkpoint": audit::checkpoint(&core.conn, &core.keys)?}))
                }
                AuditCommand::Prune { retention_days } => {
                    if retention_days < 0 {
                        return Err(Error::Invalid("retention_days must not be negative".into()));
                    }
                    print(&audit::prune(&mut core.conn, &core.keys, retention_days)?)
                }
                AuditCommand::Ingest => print(&json!({"ingested": ingest::run(&mut core)?})),
                AuditCommand::Show { since } => print(&audit::entries(&core.conn, since)?),
            }
        }
        Command::InspectPackage { path } => {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            let format = Format::parse(ext)?;
            let bytes = std::fs::read(&path)
                .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
            print(&crate::formats::read(&bytes, format)?)
        }
        Command::PrunePackages => {
            let core = Core::open(s)?;
            print(&json!({"deleted": export::prune_packages(&core)?}))
        }
        Command::Sweep => {
            let mut core = Core::open(s)?;
            print(&erase::sweep(&mut core)?)
        }
        Command::Proof { user } => {
            crate::core::check_user(&user)?;
            let core = Core::open(s)?;
            print(&erase::proofs_for(&core, &user)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every subcommand says what it does in one line and shows an example.
    #[test]
    fn every_subcommand_has_a_description_and_an_example() {
        let missing = meshguard_service_kit::cli_help::undocumented(&Cli::command());
        assert!(missing.is_empty(), "{missing:#?}");
    }

    #[test]
    fn completions_cover_every_subcommand() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "meshguard-gdpr", &mut script);
            let script = String::from_utf8(script).unwrap();
            for name in ["request", "erase", "inspect-package", "completions"] {
                assert!(
                    script.contains(name),
                    "{name} missing from the {shell} completions"
                );
            }
        }
    }
}
