//! Instructions per request in each Rust function of a plugin's Wasm: the
//! stand-in host of `wasm_profile` run under callgrind twice (1,000 and
//! 5,000 measured requests after the same warm-up), differenced so that
//! start-up and compilation drop out. Where the sampled profile gives
//! shares of time, this gives exact counts, and instruction- and data-cache
//! misses, that two builds can be compared by.
//!
//! V8 compiles the module's functions into code valgrind has no symbols
//! for, and every call between them goes through the module's jump table,
//! so callgrind charges a function's instructions to the jump-table slot it
//! was entered through. V8's x64 jump table (Node 20's V8) has 5-byte
//! slots, 12 to a 64-byte line, one per function the module defines, in
//! order. The table's start is the 4 KiB-aligned address that maps the
//! hottest slots onto the plugin's own functions.

use crate::bench::wasm_profile::run_stand_in_host;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;

const SLOT_BYTES: u64 = 5;
const LINE_BYTES: u64 = 64;
const SLOTS_PER_LINE: u64 = 12;
/// Measured requests of the two runs, after `WARM_UP` each.
const RUNS: [u32; 2] = [1_000, 5_000];
const WARM_UP: u32 = 1_000;

/// Per request, over the measured requests of the longer run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cost {
    pub instructions: f64,
    pub i1_misses: f64,
    pub d1_misses: f64,
}

pub struct WasmInstructions {
    pub total: Cost,
    /// Demangled function name → cost, largest first.
    pub functions: Vec<(String, Cost)>,
}

/// Counts `wasm` (built with its name section) configured with `config`
/// serving requests that carry `token`.
pub fn measure(wasm: &Path, config: &str, token: &str) -> Result<WasmInstructions, String> {
    let names = function_names(wasm)?;
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let config_file = dir.path().join("config.json");
    std::fs::write(&config_file, config).map_err(|e| format!("write config: {e}"))?;
    // The two runs at once: they share nothing, and each takes a minute.
    let runs: Vec<Result<BTreeMap<String, [u64; 3]>, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = RUNS
            .map(|requests| {
                let (dir, config_file, names) = (dir.path(), &config_file, &names);
                scope.spawn(move || {
                    let out = dir.join(format!("callgrind.{requests}"));
                    run_under_callgrind(wasm, config_file, token, requests, &out)?;
                    let rows = unsymbolized_rows(&out)?;
                    let base = jump_table_start(&rows, names)
                        .ok_or("the jump table was not found in the callgrind profile")?;
                    Ok(by_function(&rows, base, names))
                })
            })
            .into_iter()
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a run panicked".into())))
            .collect()
    });
    let per_run = runs.into_iter().collect::<Result<Vec<_>, String>>()?;
    let (Some(short), Some(long)) = (per_run.first(), per_run.get(1)) else {
        return Err("missing run".into());
    };
    let requests = f64::from(RUNS[1] - RUNS[0]);
    let mut functions: Vec<(String, Cost)> = long
        .iter()
        .map(|(name, long)| {
            let short = short.get(name).copied().unwrap_or_default();
            let per = |l: u64, s: u64| (l as f64 - s as f64) / requests;
            let cost = Cost {
                instructions: per(long[0], short[0]),
                i1_misses: per(long[1], short[1]),
                d1_misses: per(long[2], short[2]),
            };
            (demangle(name), cost)
        })
        .filter(|(_, c)| c.instructions >= 1.0)
        .collect();
    functions.sort_by(|a, b| b.1.instructions.total_cmp(&a.1.instructions));
    let total = functions.iter().fold(Cost::default(), |t, (_, c)| Cost {
        instructions: t.instructions + c.instructions,
        i1_misses: t.i1_misses + c.i1_misses,
        d1_misses: t.d1_misses + c.d1_misses,
    });
    Ok(WasmInstructions { total, functions })
}

fn run_under_callgrind(
    wasm: &Path,
    config_file: &Path,
    token: &str,
    requests: u32,
    out: &Path,
) -> Result<(), String> {
    let mut valgrind = Command::new("valgrind");
    valgrind
        .args(["--tool=callgrind", "--cache-sim=yes"])
        .arg(format!("--callgrind-out-file={}", out.display()))
        .args(["node", "--no-liftoff", "--no-warnings"]);
    run_stand_in_host(valgrind, wasm, config_file, token, requests, WARM_UP).map(drop)
}

/// The function names of the module's name section, and its imports.
fn function_names(wasm: &Path) -> Result<Names, String> {
    let bytes = std::fs::read(wasm).map_err(|e| format!("read {}: {e}", wasm.display()))?;
    let mut names = Names {
        by_index: HashMap::new(),
        imported: 0,
    };
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        match payload.map_err(|e| format!("parse {}: {e}", wasm.display()))? {
            wasmparser::Payload::ImportSection(reader) => {
                for import in reader.into_imports().flatten() {
                    if matches!(
                        import.ty,
                        wasmparser::TypeRef::Func(_) | wasmparser::TypeRef::FuncExact(_)
                    ) {
                        names.imported += 1;
                    }
                }
            }
            wasmparser::Payload::CustomSection(section) => {
                let wasmparser::KnownCustom::Name(reader) = section.as_known() else {
                    continue;
                };
                for name in reader.into_iter().flatten() {
                    if let wasmparser::Name::Function(map) = name {
                        for naming in map.into_iter().flatten() {
                            names.by_index.insert(naming.index, naming.name.to_string());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if names.by_index.is_empty() {
        return Err(format!("{} has no function names", wasm.display()));
    }
    Ok(names)
}

/// (address, [Ir, I1mr, D1mr]) of every function callgrind has no symbol for.
fn unsymbolized_rows(profile: &Path) -> Result<Vec<(u64, [u64; 3])>, String> {
    let output = Command::new("callgrind_annotate")
        .args(["--threshold=100", "--show=Ir,I1mr,D1mr"])
        .arg(profile)
        .output()
        .map_err(|e| format!("run callgrind_annotate: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text.lines().filter_map(parse_row).collect())
}

/// `  1,234 (0.1%)  56 (0.2%)  7 (0.0%)  ???:0x00001234abcd [???]`
fn parse_row(line: &str) -> Option<(u64, [u64; 3])> {
    let rest = line.trim_end().strip_suffix("[???]")?;
    let (counts, location) = rest.rsplit_once("???:0x")?;
    let address = u64::from_str_radix(location.trim(), 16).ok()?;
    let mut numbers = counts
        .split_whitespace()
        .filter(|field| !field.starts_with('(') && !field.ends_with(')'))
        .map(|field| {
            let digits: String = field.chars().filter(char::is_ascii_digit).collect();
            digits.parse::<u64>().unwrap_or(0)
        });
    let cost = [numbers.next()?, numbers.next()?, numbers.next()?];
    Some((address, cost))
}

/// The defined function whose jump-table slot `address` is, if it is one.
fn slot_function(address: u64, base: u64) -> Option<u64> {
    let offset = address.checked_sub(base)?;
    let in_line = offset % LINE_BYTES;
    if !in_line.is_multiple_of(SLOT_BYTES) || in_line / SLOT_BYTES >= SLOTS_PER_LINE {
        return None;
    }
    Some(offset / LINE_BYTES * SLOTS_PER_LINE + in_line / SLOT_BYTES)
}

/// The module's function names, by index.
struct Names {
    by_index: HashMap<u32, String>,
    /// Functions the module imports: the jump table's first slot is the
    /// first function it defines.
    imported: u32,
}

impl Names {
    fn of_slot(&self, address: u64, base: u64) -> Option<&str> {
        let defined = u32::try_from(slot_function(address, base)?).ok()?;
        self.by_index
            .get(&defined.checked_add(self.imported)?)
            .map(String::as_str)
    }
}

fn jump_table_start(rows: &[(u64, [u64; 3])], names: &Names) -> Option<u64> {
    let mut hottest: Vec<&(u64, [u64; 3])> = rows.iter().collect();
    hottest.sort_by_key(|(_, cost)| std::cmp::Reverse(cost[0]));
    hottest.truncate(60);
    let own = |base: u64| {
        hottest
            .iter()
            .filter(|(address, _)| {
                names
                    .of_slot(*address, base)
                    .is_some_and(|n| n.contains("meshguard"))
            })
            .count()
    };
    let mut best: Option<(usize, u64)> = None;
    // With one policy on, the module's slots may rank below the stand-in
    // host's own code: every one of the hottest rows is tried as an anchor.
    for (anchor, _) in hottest.iter().take(20) {
        let lowest = hottest
            .iter()
            .map(|(a, _)| *a)
            .filter(|a| a.abs_diff(*anchor) < 1 << 20)
            .min()?;
        for page in 0..64 {
            let Some(base) = (lowest & !0xfff).checked_sub(page * 0x1000) else {
                break;
            };
            let score = own(base);
            if score > best.map_or(0, |(s, _)| s) {
                best = Some((score, base));
            }
        }
    }
    best.map(|(_, base)| base)
}

fn by_function(rows: &[(u64, [u64; 3])], base: u64, names: &Names) -> BTreeMap<String, [u64; 3]> {
    let mut out: BTreeMap<String, [u64; 3]> = BTreeMap::new();
    for (address, cost) in rows {
        let Some(name) = names.of_slot(*address, base) else {
            continue;
        };
        let sum = out.entry(name.to_string()).or_default();
        for (s, c) in sum.iter_mut().zip(cost) {
            *s += c;
        }
    }
    out
}

fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_without_symbols_are_parsed() {
        let line = " 24,505,919 ( 0.46%)   959,059 ( 1.88%)   137,944 ( 0.40%)  ???:0x000028523d0c0dc0 [???]";
        assert_eq!(
            parse_row(line),
            Some((0x2852_3d0c_0dc0, [24_505_919, 959_059, 137_944]))
        );
        let wide = " 462,482,872 (100.0%) 8 (10.0%) 9 (1.0%)  ???:0x10 [???]";
        assert_eq!(parse_row(wide), Some((0x10, [462_482_872, 8, 9])));
        assert_eq!(
            parse_row("1 (1%) 2 (1%) 3 (1%)  ???:foo [/usr/bin/node]"),
            None
        );
    }

    #[test]
    fn slots_are_five_bytes_twelve_to_a_line() {
        assert_eq!(slot_function(0x1000, 0x1000), Some(0));
        assert_eq!(slot_function(0x1005, 0x1000), Some(1));
        assert_eq!(slot_function(0x1037, 0x1000), Some(11));
        assert_eq!(slot_function(0x103c, 0x1000), None);
        assert_eq!(slot_function(0x1040, 0x1000), Some(12));
        assert_eq!(slot_function(0x1003, 0x1000), None);
        assert_eq!(slot_function(0x0fff, 0x1000), None);
    }
}
