//! Envoy's instructions per request, counted by valgrind's callgrind.
//! CPU time on this shared machine moves by several µs between runs; the
//! instruction count of the same build and request is the same run after
//! run (±0.1%), so it tells two builds apart where CPU time cannot. It
//! counts what Envoy's threads execute in user space (its own code, V8, the
//! plugins' compiled Wasm, libc), not the kernel's work. With `cache_sim`,
//! callgrind also simulates the caches and branch predictors (slower, and
//! a model of a CPU rather than this one): what instructions leave out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Envoy's launcher: callgrind, counting nothing until `count` turns it on,
/// writing its dumps next to `out`.
pub fn launcher(out: &Path, cache_sim: bool) -> Vec<String> {
    let mut args = vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        // V8 writes the code it compiles: valgrind must notice.
        "--smc-check=all-non-file".into(),
        "--instr-atstart=no".into(),
        // .venv/bin/envoy is a Python script that execs the real binary.
        "--trace-children=yes".into(),
        format!("--callgrind-out-file={}", out.display()),
    ];
    if cache_sim {
        args.push("--cache-sim=yes".into());
        args.push("--branch-sim=yes".into());
    }
    args
}

/// Callgrind's event totals by name: `Ir` (instructions), and with the
/// simulation `I1mr`, `D1mr`, `D1mw` (first-level misses), `ILmr`, `DLmr`,
/// `DLmw` (last-level misses), `Bcm`, `Bim` (mispredicted branches).
pub type Events = BTreeMap<String, u64>;

/// Callgrind's cycle estimate (its documentation's weights): each
/// first-level miss or mispredicted branch as 10 instructions, each
/// last-level miss as 100.
pub fn estimated_cycles(e: &Events) -> u64 {
    let sum = |names: &[&str]| names.iter().filter_map(|n| e.get(*n)).sum::<u64>();
    sum(&["Ir"])
        + 10 * sum(&["I1mr", "D1mr", "D1mw", "Bcm", "Bim"])
        + 100 * sum(&["ILmr", "DLmr", "DLmw"])
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

/// The events (instructions, and misses when simulated) of Envoy (`pid`,
/// launched with `launcher(out, _)`) while `load` runs; `None` if callgrind
/// could not be driven.
pub fn count(pid: u32, out: &Path, load: impl FnOnce()) -> Option<Events> {
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
    parse_totals(&text)
}

fn parse_totals(dump: &str) -> Option<Events> {
    let names = dump.lines().find_map(|l| l.strip_prefix("events:"))?;
    let totals = dump.lines().find_map(|l| {
        l.strip_prefix("totals:")
            .or_else(|| l.strip_prefix("summary:"))
    })?;
    let values: Vec<u64> = totals
        .split_whitespace()
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    let events: Events = names
        .split_whitespace()
        .map(String::from)
        .zip(values)
        .collect();
    events.contains_key("Ir").then_some(events)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_read_by_event_name() {
        let dump = "version: 1\nevents: Ir I1mr Bcm\nfn=main\n1 5 0 1\nsummary: 1000 20 3\n";
        let events = parse_totals(dump).unwrap();
        assert_eq!(events["Ir"], 1000);
        assert_eq!(events["I1mr"], 20);
        assert_eq!(estimated_cycles(&events), 1000 + 10 * 23);
        assert_eq!(parse_totals("events: Ir\nsummary: x\n"), None);
        assert_eq!(parse_totals("events: Ir\n"), None);
    }
}
