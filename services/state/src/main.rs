//! `meshguard-state`: the Redis-backed companion service of the Meshguard
//! plugins (`serve`), and the operator commands that call its admin API.

mod app;
mod app_state;
mod auth;
mod cli;
mod config;
mod error;
mod extract;
mod geo;
mod limits;
mod metrics;
mod routes;
mod serve;
mod store;
mod token;

#[cfg(test)]
mod tests;

use clap::Parser;
use std::process::ExitCode;

// glibc malloc took 12% of the service's CPU under load (perf, scripts/bench state).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Serve(args) => serve::main(*args),
        cli::Command::Token(token) => token::run(token),
        cli::Command::Completions { shell } => cli::completions(shell),
        other => cli::run(&cli.client, other),
    }
}
