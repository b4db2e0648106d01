//! Every crate reads top-down: no module imports one that (through others)
//! imports it back, at two levels. Between a crate's top-level modules (a
//! file `src/x.rs` with its `src/x/` children counting as `x`), through the
//! `crate::…` paths their code names; and between the children of one
//! module (the files of one `src/…/x/` directory), through the `super::…`
//! paths each names. Test code does not count: files named `tests.rs` and
//! everything from a file's `#[cfg(test)] mod tests`.

use meshguard_harness::paths::workspace_root;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's code before its test module; `None` for a `tests.rs` file.
fn code_of(file: &Path) -> Option<String> {
    if file.file_name().is_some_and(|n| n == "tests.rs") {
        return None;
    }
    let text = std::fs::read_to_string(file).unwrap();
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let test_module = line.trim() == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod tests"));
        if test_module {
            break;
        }
        code.push_str(line);
        code.push('\n');
    }
    Some(code)
}

/// `crate::a::b`, `crate::{a, b::c}` → `a`, `b` (with `prefix` `crate::`).
fn named_modules(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in code.match_indices(prefix) {
        // `super::super::x` is not a sibling; `crate::` inside `xcrate::` is no path.
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[at + prefix.len()..];
        let items: Vec<&str> = match rest.strip_prefix('{') {
            Some(list) => list[..list.find('}').unwrap_or(list.len())]
                .split(',')
                .collect(),
            None => vec![rest],
        };
        for item in items {
            let item = item.trim();
            let end = item
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(item.len());
            let name = &item[..end];
            if !name.is_empty() && name != "super" && name != "self" {
                names.insert(name.to_string());
            }
        }
    }
    names
}

fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(src).unwrap();
        let top = relative.iter().next().unwrap().to_string_lossy();
        let module = top.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(code) = code_of(&file) else {
            continue;
        };
        let mut deps = named_modules(&code, "crate::");
        deps.remove(&module);
        deps.remove("self");
        graph.entry(module).or_default().extend(deps);
    }
    graph
}

/// For each directory of child modules under `src`: child → the siblings
/// its `super::…` paths name.
fn sibling_graphs(src: &Path) -> Vec<(std::path::PathBuf, BTreeMap<String, BTreeSet<String>>)> {
    let mut graphs = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let mut children = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                children.insert(name, path);
            }
        }
        if dir == src {
            continue; // The top level: `module_graph`'s `crate::` paths.
        }
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (name, path) in &children {
            let Some(code) = code_of(path) else {
                continue;
            };
            let siblings = named_modules(&code, "super::")
                .into_iter()
                .filter(|dep| dep != name && children.contains_key(dep));
            graph.entry(name.clone()).or_default().extend(siblings);
        }
        graphs.push((dir, graph));
    }
    graphs
}

fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) || !graph.contains_key(node) {
            return None;
        }
        path.push(node.to_string());
        for dep in &graph[node] {
            if let Some(found) = visit(dep, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// Every crate's `src/`: the plugins, the shared crates, the services, the
/// harness and the tools.
fn crate_sources() -> Vec<std::path::PathBuf> {
    let root = workspace_root();
    let mut sources = Vec::new();
    for group in ["crates", "plugins", "services", "tests", "tools"] {
        let group = root.join(group);
        if group.join("src").is_dir() {
            sources.push(group.join("src"));
            continue;
        }
        for entry in std::fs::read_dir(&group).unwrap() {
            let src = entry.unwrap().path().join("src");
            if src.is_dir() {
                sources.push(src);
            }
        }
    }
    sources.sort();
    sources
}

#[test]
fn no_crate_has_a_module_cycle() {
    let sources = crate_sources();
    let mut modules = 0;
    let mut cycles = Vec::new();
    for src in &sources {
        let graph = module_graph(src);
        modules += graph.len();
        if let Some(found) = cycle(&graph) {
            cycles.push(format!("{}: {}", src.display(), found.join(" → ")));
        }
        for (dir, siblings) in sibling_graphs(src) {
            if let Some(found) = cycle(&siblings) {
                cycles.push(format!("{}: {}", dir.display(), found.join(" → ")));
            }
        }
    }
    // The walk found the workspace (a wrong root would pass with nothing).
    assert!(
        sources.len() >= 12 && modules > 100,
        "{} crates, {modules} modules",
        sources.len()
    );
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// meshguard-gdpr reads top-down in layers: nothing but its front ends
/// (the CLI, the operator API, the self-service API and `main`) names a
/// front end, children of a module counting as the module.
#[test]
fn only_the_gdpr_front_ends_name_a_front_end() {
    let graph = module_graph(&workspace_root().join("services/gdpr/src"));
    let front = ["main", "cli", "serve", "selfservice"];
    assert!(
        front[1..].iter().all(|f| graph.contains_key(*f)),
        "{graph:?}"
    );
    for (module, deps) in &graph {
        if front.contains(&module.as_str()) {
            continue;
        }
        for f in front {
            assert!(!deps.contains(f), "{module} names the front end {f}");
        }
    }
}

#[test]
fn the_check_finds_a_cycle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("root", vec!["filter"]),
        ("filter", vec!["runtime", "root"]),
        ("runtime", vec![]),
    ]
    .into_iter()
    .map(|(m, deps)| (m.to_string(), deps.into_iter().map(String::from).collect()))
    .collect();
    // BTreeMap order: the walk starts at "filter".
    assert_eq!(cycle(&graph).unwrap(), ["filter", "root", "filter"]);
    assert_eq!(
        named_modules("use crate::{a, b::c};\nlet x = crate::d::e();", "crate::"),
        ["a", "b", "d"].map(String::from).into()
    );
    assert_eq!(
        named_modules(
            "use super::{slot::parse, take};\nuse super::super::x;",
            "super::"
        ),
        ["slot", "take"].map(String::from).into()
    );
}
