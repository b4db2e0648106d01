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

/// The crate reads top-down: nothing but the front ends names a front end.
/// (That no module imports one that imports it back is checked for this
/// crate and the plugins by tests/tests/module_graph.rs.)
#[cfg(test)]
mod layers {
    use std::collections::{BTreeMap, BTreeSet};

    /// `module → modules it names`, from the code before its tests.
    fn graph() -> BTreeMap<String, BTreeSet<String>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut modules = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let mut deps = BTreeSet::new();
            for (i, _) in code.match_indices("crate::") {
                let rest = &code[i + "crate::".len()..];
                if let Some(list) = rest.strip_prefix('{') {
                    let list = &list[..list.find('}').unwrap()];
                    for item in list.split(',') {
                        let item = item.trim().split("::").next().unwrap().trim();
                        if !item.is_empty() {
                            deps.insert(item.to_string());
                        }
                    }
                } else {
                    let end = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    deps.insert(rest[..end].to_string());
                }
            }
            deps.remove(&name);
            deps.remove("self");
            modules.insert(name, deps);
        }
        modules
    }

    #[test]
    fn only_front_ends_name_front_ends() {
        let front = ["main", "cli", "serve", "selfservice"];
        for (module, deps) in graph() {
            if front.contains(&module.as_str()) {
                continue;
            }
            for f in front {
                assert!(!deps.contains(f), "{module} names the front end {f}");
            }
        }
    }
}
