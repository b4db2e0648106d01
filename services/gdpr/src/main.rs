//! `meshguard-gdpr`: data-subject requests (Art. 15, 17, 20), consent
//! records and a tamper-evident audit log for Meshguard; CLI first, `serve`
//! for the same operations over HTTP.

mod audit;
mod categories;
mod cli;
mod config;
mod connectors;
mod consent;
mod contacts;
mod core;
mod db;
mod erase;
mod error;
mod export;
mod files;
mod formats;
mod holds;
mod http_shared;
mod ingest;
mod keys;
mod metadata;
mod metrics;
mod notify;
mod package;
mod progress;
mod requests;
mod selfservice;
mod serve;
mod time;
mod userdata;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if let error::Error::Unavailable(_) = e {
                eprintln!("(nothing is lost: rerun the command to resume)");
            }
            ExitCode::FAILURE
        }
    }
}
