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

/// The crate reads top-down: no module imports one that (through others)
/// imports it back, and nothing but the front ends names a front end.
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

    fn cycle_from(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if !done.insert(node.to_string()) {
            return None;
        }
        path.push(node.to_string());
        for dep in graph.get(node).into_iter().flatten() {
            if let Some(c) = cycle_from(dep, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }

    #[test]
    fn the_module_graph_has_no_cycle() {
        let graph = graph();
        assert!(graph.len() > 20, "{graph:?}");
        for node in graph.keys() {
            let mut done = BTreeSet::new();
            if let Some(cycle) = cycle_from(node, &graph, &mut Vec::new(), &mut done) {
                panic!("import cycle: {}", cycle.join(" → "));
            }
        }
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
