//! Envoy's instructions per request under callgrind for every
//! configuration (`--instructions`), and callgrind's cache and branch model
//! (`--cache-sim`).

use super::each_run;
use crate::bench::instructions;
use crate::bench::load;
use crate::bench::options::Options;
use crate::bench::report::{push_notes, ratio_cell, summarize, table};
use crate::bench::variants::{selected_variants, Fixture, Variant};
use crate::envoy::{Envoy, EnvoySpec};
use std::collections::BTreeMap;
use std::path::Path;

/// Envoy's instructions per request for every configuration, counted by
/// callgrind (`bench::instructions`) over `cli.requests` requests after a
/// warm-up: one Envoy per configuration and round, run under valgrind.
pub fn instructions_figure(cli: &Options) -> String {
    let fixture = Fixture::new();
    let mut notes = vec![];
    let (variants, _backend) = selected_variants(cli, &fixture, &mut notes);
    let events = count_instructions(cli, &fixture, &variants, &mut notes);
    let counts = event_rounds(&events, "Ir");
    let median = |i: usize| summarize(&counts[i]).median;
    let bare = median(0);
    let native_added = variants
        .iter()
        .position(|v| !v.native.is_empty())
        .map_or(f64::NAN, |i| median(i) - bare);
    let rows: Vec<Vec<String>> = variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let added = median(i) - bare;
            vec![
                v.name.clone(),
                format!("{:.0}", median(i)),
                format!("{added:+.0}"),
                format!("{:.2}×", median(i) / bare),
                if i == 0 {
                    "–".into()
                } else {
                    ratio_cell(added / native_added)
                },
            ]
        })
        .collect();
    let mut text = format!(
        "## Envoy instructions per request (callgrind)\n\nThe same request as the CPU figure; Envoy \
         (one worker) under valgrind's callgrind, which counts the instructions its threads \
         execute in user space over {} requests after 200 of warm-up (`hey`, 4 connections). \
         Repeatable to about 0.1% run after run; it leaves out the kernel's work and cache \
         misses, so it ranks builds rather than predicting µs.\n\n{}\n",
        cli.requests,
        table(
            &[
                "configuration",
                "instructions/request",
                "added",
                "vs bare",
                "added vs native",
            ],
            &rows
        )
    );
    if cli.cache_sim {
        text.push_str(&cache_table(&variants, &events));
    }
    push_notes(&mut text, notes);
    text
}

/// Envoy's instructions per request for every configuration and round
/// (`bench::instructions`): one Envoy under callgrind per configuration and
/// round, `cli.requests` requests counted after 200 of warm-up.
pub fn count_instructions(
    cli: &Options,
    fixture: &Fixture,
    variants: &[Variant],
    notes: &mut Vec<String>,
) -> Vec<Vec<PerRequest>> {
    let mut counts: Vec<Vec<PerRequest>> = vec![vec![]; variants.len()];
    each_run(cli, variants, "instructions", |i, variant| {
        let dir = tempfile::tempdir().expect("temp dir for callgrind");
        let out = dir.path().join("callgrind.out");
        let mut spec = EnvoySpec::new();
        spec.native_filters = variant.native.clone();
        spec.launcher = instructions::launcher(&out, cli.cache_sim);
        for plugin in &variant.plugins {
            spec = spec.plugin(plugin.clone());
        }
        if let Some(port) = variant.state_port {
            spec = spec.cluster("meshguard_state", port);
        }
        let envoy = Envoy::start(spec);
        let url = format!("http://127.0.0.1:{}/healthz", envoy.port);
        let warm = load::hey_count(&url, 4, 200, variant.headers(fixture));
        let mut statuses = vec![];
        let counted = instructions::count(envoy.pid(), &out, || {
            statuses = load::hey_count(&url, 4, cli.requests, variant.headers(fixture));
        });
        let ok: u64 = statuses
            .iter()
            .chain(&warm)
            .filter(|(status, _)| *status == 200)
            .map(|(_, n)| n)
            .sum();
        if ok != cli.requests + 200 {
            notes.push(format!(
                "{}: {ok} of {} requests answered 200",
                variant.name,
                cli.requests + 200
            ));
        }
        if let Some(keep) = &cli.callgrind_dir {
            keep_dumps(&out, keep, &variant.name);
        }
        match counted {
            Some(events) => counts[i].push(
                events
                    .iter()
                    .map(|(name, n)| (name.clone(), *n as f64 / cli.requests as f64))
                    .chain([(
                        CYCLES.to_string(),
                        instructions::estimated_cycles(&events) as f64 / cli.requests as f64,
                    )])
                    .collect(),
            ),
            None => {
                counts[i].push(PerRequest::new());
                notes.push(format!("{}: callgrind could not be driven", variant.name));
            }
        }
    });
    counts
}

/// Callgrind's events per request in one run of one configuration, and
/// its cycle estimate under `CYCLES`.
pub type PerRequest = BTreeMap<String, f64>;

pub const CYCLES: &str = "estimated cycles";

/// One event's per-request figure, by configuration and round (NaN where
/// callgrind could not be driven or did not count it).
pub fn event_rounds(events: &[Vec<PerRequest>], name: &str) -> Vec<Vec<f64>> {
    events
        .iter()
        .map(|rounds| {
            rounds
                .iter()
                .map(|e| e.get(name).copied().unwrap_or(f64::NAN))
                .collect()
        })
        .collect()
}

/// Misses, mispredictions and callgrind's cycle estimate per request, added
/// over bare Envoy (`--cache-sim`).
pub fn cache_table(variants: &[Variant], events: &[Vec<PerRequest>]) -> String {
    let added = |names: &[&str], i: usize| -> f64 {
        let total = |v: usize| -> f64 {
            names
                .iter()
                .map(|n| summarize(&event_rounds(events, n)[v]).median)
                .sum()
        };
        total(i) - total(0)
    };
    let cycles = |i: usize| added(&[CYCLES], i);
    let native = variants
        .iter()
        .position(|v| !v.native.is_empty())
        .map_or(f64::NAN, cycles);
    let rows: Vec<Vec<String>> = variants
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, v)| {
            vec![
                v.name.clone(),
                format!("{:+.0}", added(&["I1mr"], i)),
                format!("{:+.0}", added(&["D1mr", "D1mw"], i)),
                format!("{:+.0}", added(&["ILmr", "DLmr", "DLmw"], i)),
                format!("{:+.0}", added(&["Bcm", "Bim"], i)),
                format!("{:+.0}", cycles(i)),
                ratio_cell(cycles(i) / native),
            ]
        })
        .collect();
    format!(
        "\n### Cache and branch simulation (`--cache-sim`)\n\nPer request, added over bare \
         Envoy: callgrind's model of the first-level instruction and data caches, the last \
         level, and the branch predictors, and its cycle estimate (instructions + 10 × each \
         first-level miss or mispredicted branch + 100 × each last-level miss). A model, not \
         this CPU: it shows where time goes that instructions do not count.\n\n{}\n",
        table(
            &[
                "configuration",
                "I1 misses",
                "D1 misses",
                "LL misses",
                "mispredicted branches",
                "estimated cycles",
                "added vs native",
            ],
            &rows
        )
    )
}

/// Copies the callgrind dumps next to `out` into `keep`, named after the
/// configuration (`bare-envoy.callgrind.1`, ...).
pub fn keep_dumps(out: &Path, keep: &Path, configuration: &str) {
    let slug: String = configuration
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let _ = std::fs::create_dir_all(keep);
    for dump in instructions::dumps(out) {
        let suffix = dump.extension().map(|e| e.to_string_lossy().into_owned());
        let name = format!("{slug}.callgrind.{}", suffix.unwrap_or_default());
        if let Err(e) = std::fs::copy(&dump, keep.join(&name)) {
            eprintln!("bench: cannot keep {}: {e}", dump.display());
        }
    }
}
