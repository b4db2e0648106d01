//! `scripts/bench`: what Meshguard costs, measured on this machine as ratios
//! within one run. Envoy (one worker) is pinned to core 0 and the load
//! generator to core 1; configurations alternate within each round; every
//! figure is a median with min–max over the rounds.
//!
//! This binary is the command line and the dispatch alone: the
//! configurations are `bench::variants`, each figure a module of
//! `bench::figure`, the report's heading and files `bench::writer`.

use clap::{Parser, Subcommand};
use meshguard_harness::bench::figure::{
    accuracy, calibrate, instructions, memory, plugins, profile, propagation, state,
};
use meshguard_harness::bench::options::Options;
use meshguard_harness::bench::writer;

#[derive(Parser)]
#[command(about = "Meshguard benchmarks (see docs/bench.md)")]
struct Cli {
    #[command(subcommand)]
    area: Area,
    #[command(flatten)]
    options: Options,
}

#[derive(Subcommand, Clone, Copy, PartialEq, Eq)]
enum Area {
    /// Envoy CPU µs per request and latency: bare, reference filter, each
    /// plugin, the chain, the native equivalent.
    Plugins,
    /// Rate-limit decisions per second through meshguard-state vs redis-benchmark.
    State,
    /// Revocation and flag-change propagation through Envoy.
    Propagation,
    /// Rate-limit accuracy per mode (admitted vs allowed).
    Accuracy,
    /// Envoy RSS bare vs the chain at 1 and 2 workers; .wasm sizes.
    Memory,
    /// The rate limiter's figures: its CPU cost and accuracy per mode
    /// (at least 30 s of load per mode).
    Ratelimit,
    /// The auth plugin's figures: its CPU cost and propagation over at
    /// least 200 revocations.
    Auth,
    /// Everything above.
    All,
    /// Where the single-module build's own Wasm time goes, by Rust function
    /// (under Node's V8 with a stand-in host; not part of `all`).
    Profile,
    /// What one proxy-wasm host call costs in Envoy: the trivial filter
    /// making it 20 times per request (not part of `all`).
    Calibrate,
    /// Envoy's response cache: hit rate, upstream requests saved, Envoy CPU
    /// and latency with and without it (not part of `all`).
    Cache,
}

/// Whether the chosen area includes `figure`.
fn wants(chosen: Area, figure: Area) -> bool {
    let part_of = match chosen {
        Area::Ratelimit => [Area::Plugins, Area::Accuracy].contains(&figure),
        Area::Auth => [Area::Plugins, Area::Propagation].contains(&figure),
        _ => false,
    };
    chosen == figure || chosen == Area::All || part_of
}

fn main() {
    let Cli { area, mut options } = Cli::parse();
    match area {
        Area::Ratelimit => {
            options.only = vec!["ratelimit".into()];
            options.accuracy_seconds = options.accuracy_seconds.max(30);
        }
        Area::Auth => {
            options.only = vec!["auth".into()];
            options.samples = options.samples.max(200);
        }
        Area::Calibrate => {
            options.cpu_only = true;
            if options.instructions {
                options.rounds = options.rounds.min(1);
            }
        }
        _ => {}
    }
    let mut report = writer::heading(&options);
    let mut figures = writer::figures_json();
    if wants(area, Area::Plugins) && options.instructions {
        report.push_str(&instructions::instructions_figure(&options));
    } else if wants(area, Area::Plugins) {
        let (text, data) = plugins::plugins_figure(&options);
        report.push_str(&text);
        figures["plugins"] = data;
    }
    if wants(area, Area::State) {
        report.push_str(&state::state_figure(&options));
    }
    if wants(area, Area::Propagation) {
        report.push_str(&propagation::propagation_figure(&options));
    }
    if wants(area, Area::Accuracy) {
        report.push_str(&accuracy::accuracy_figure(&options));
    }
    if wants(area, Area::Memory) {
        report.push_str(&memory::memory_figure());
    }
    if area == Area::Profile {
        report.push_str(&profile::profile_figure(
            options.baseline.as_deref(),
            &options.only,
        ));
    }
    if area == Area::Cache {
        report.push_str(&meshguard_harness::bench::cache::figure(
            options.rounds,
            options.connections,
        ));
    }
    if area == Area::Calibrate {
        report.push_str(&calibrate::calibrate_figure(&options));
    }
    writer::save(&report, &figures);
}
