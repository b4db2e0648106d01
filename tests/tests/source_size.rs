//! No Rust source file outside tests grows past what a newcomer can hold:
//! at most [`MAX_CODE_LINES`] lines (comments and blank lines included)
//! before its `#[cfg(test)] mod tests`. A file that grows past it is split
//! by concern into child modules (the `x.rs` + `x/*.rs` layout the crates
//! use), not allowed an exception.
//!
//! Test code does not count: files named `tests.rs`, files under a `tests`
//! directory of a crate (the harness's own library, `tests/src`, does count:
//! `scripts/up` runs it), and everything from a file's `#[cfg(test)] mod tests`.

use meshguard_harness::paths::workspace_root;
use std::path::{Path, PathBuf};

const MAX_CODE_LINES: usize = 500;

/// The workspace's source roots; `target` and hidden directories are skipped.
const ROOTS: [&str; 6] = ["crates", "plugins", "services", "tests", "tools", "bench"];

fn is_test_file(relative: &Path) -> bool {
    let is_tests = |c: &std::path::Component| c.as_os_str() == "tests";
    relative.file_name().is_some_and(|n| n == "tests.rs")
        // The first component is the root itself (`tests/src/...` is the harness).
        || relative.components().skip(1).any(|c| is_tests(&c))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Lines before the file's `#[cfg(test)] mod tests` (the whole file when it
/// has none); a `#[cfg(test)]` on a single item does not end the count.
fn code_lines(text: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .position(|pair| {
            pair[0].trim() == "#[cfg(test)]" && pair[1].trim_start().starts_with("mod tests")
        })
        .unwrap_or(lines.len())
}

#[test]
fn no_source_file_outside_tests_is_over_the_limit() {
    let root = workspace_root();
    let mut files = Vec::new();
    for dir in ROOTS {
        sources(&root.join(dir), &mut files);
    }
    let counted: Vec<(usize, PathBuf)> = files
        .into_iter()
        .filter_map(|path| {
            let relative = path.strip_prefix(&root).ok()?.to_path_buf();
            if is_test_file(&relative) {
                return None;
            }
            let text = std::fs::read_to_string(&path).ok()?;
            Some((code_lines(&text), relative))
        })
        .collect();
    // The walk found the crates (a wrong root would pass with nothing).
    assert!(counted.len() > 100, "only {} files found", counted.len());
    let too_long: Vec<String> = counted
        .iter()
        .filter(|(lines, _)| *lines > MAX_CODE_LINES)
        .map(|(lines, path)| format!("{} ({lines} lines)", path.display()))
        .collect();
    assert!(
        too_long.is_empty(),
        "over {MAX_CODE_LINES} lines before the tests; split by concern:\n{}",
        too_long.join("\n")
    );
}

#[test]
fn the_count_stops_at_the_tests_and_skips_test_files() {
    let text = "fn a() {}\n\n#[cfg(test)]\nmod tests {\n    fn t() {}\n}\n";
    assert_eq!(code_lines(text), 2);
    let helper = "#[cfg(test)]\nfn only_in_tests() {}\nfn b() {}\n#[cfg(test)]\nmod tests;\n";
    assert_eq!(code_lines(helper), 3);
    assert_eq!(code_lines("fn a() {}\nfn b() {}\n"), 2);
    assert!(is_test_file(Path::new("tests/tests/e2e_gdpr.rs")));
    assert!(is_test_file(Path::new("services/state/tests/api.rs")));
    assert!(is_test_file(Path::new(
        "plugins/ratelimit/src/local/shared/tests.rs"
    )));
    assert!(!is_test_file(Path::new("tests/src/mesh.rs")));
    assert!(!is_test_file(Path::new("plugins/auth/src/config.rs")));
}
