//! Envoy's instructions per request, counted by valgrind's callgrind.
//! CPU time on this shared machine moves by several µs between runs; the
//! instruction count of the same build and request is the same run after
//! run (±0.1%), so it tells two builds apart where CPU time cannot. It
//! counts what Envoy's threads execute in user space (its own code, V8, the
//! plugins' compiled Wasm, libc), not the kernel's work nor cache misses.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Envoy's launcher: callgrind, counting nothing until `count` turns it on,
/// writing its dumps next to `out`.
pub fn launcher(out: &Path) -> Vec<String> {
    vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        // V8 writes the code it compiles: valgrind must notice.
        "--smc-check=all-non-file".into(),
        "--instr-atstart=no".into(),
        // .venv/bin/envoy is a Python script that execs the real binary.
        "--trace-children=yes".into(),
        format!("--callgrind-out-file={}", out.display()),
    ]
}

/// Sends callgrind in `pid` a command; callgrind_control exits 0 even when
/// it finds no such process, so success is read from what it prints.
fn control(pid: u32, args: &[&str]) -> bool {
    Command::new("callgrind_control")
        .args(args)
        .arg(pid.to_string())
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("OK."))
}

/// The instructions Envoy (`pid`, launched with `launcher(out)`) executes
/// while `load` runs; `None` if callgrind could not be driven.
pub fn count(pid: u32, out: &Path, load: impl FnOnce()) -> Option<u64> {
    let before = dumps(out);
    if !(control(pid, &["--instr=on"]) && control(pid, &["--zero"])) {
        return None;
    }
    load();
    let dumped = control(pid, &["--dump"]);
    control(pid, &["--instr=off"]);
    if !dumped {
        return None;
    }
    let dump = dumps(out).into_iter().find(|d| !before.contains(d))?;
    let text = std::fs::read_to_string(dump).ok()?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|n| n.trim().parse().ok())
}

/// The dump files callgrind has written for `out` (`out.<n>` or `out.<pid>.<n>`).
pub fn dumps(out: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (out.parent(), out.file_name()) else {
        return vec![];
    };
    let prefix = format!("{}.", name.to_string_lossy());
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
                })
                .collect()
        })
        .unwrap_or_default()
}
