//! The figures `scripts/bench` prints, one module each, and the round
//! order they share. A figure is a function that measures and returns its
//! Markdown section (`report` has the table and note helpers); the binary
//! parses the command line and calls the figures its area wants. A new
//! figure: a module here, an `Area` variant and one dispatch line in
//! `src/bin/meshguard-bench.rs`.

pub mod accuracy;
pub mod calibrate;
pub mod instructions;
pub mod memory;
pub mod plugins;
pub mod profile;
pub mod propagation;
pub mod state;

use super::options::Options;
use super::report::{summarize, Summary};
use super::variants::Variant;

/// Calls `run` for every configuration, `cli.rounds` times, in the order
/// of `round_order`; `what` names the figure in the progress lines: a
/// progress bar on a terminal, one line per run otherwise (CI logs).
pub fn each_run(
    cli: &Options,
    variants: &[Variant],
    what: &str,
    mut run: impl FnMut(usize, &Variant),
) {
    let bar = indicatif::ProgressBar::new((cli.rounds * variants.len()) as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
        "bench {what} [{{bar:30}}] {{pos}}/{{len}} {{elapsed}} (about {{eta}} left) {{msg}}"
    )) {
        bar.set_style(style.progress_chars("=> "));
    }
    for round in 0..cli.rounds {
        for i in round_order(variants.len(), round) {
            let Some(variant) = variants.get(i) else {
                continue;
            };
            let line = format!("round {}/{}: {}", round + 1, cli.rounds, variant.name);
            if bar.is_hidden() {
                eprintln!("bench {what}: {line}");
            } else {
                bar.set_message(line);
            }
            run(i, variant);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
}

/// The order configurations run in `round`: forward, then backward, so a
/// drift of the machine during a round does not always favour the same
/// ones. Bare Envoy (index 0) is measured at both ends in turn.
pub fn round_order(count: usize, round: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..count).collect();
    if round % 2 == 1 {
        order.reverse();
    }
    order
}

/// `f(a[r], b[r])` over the rounds, summarized: a comparison made within
/// each round, where both ran minutes apart at most.
pub fn paired(a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) -> Summary {
    let values: Vec<f64> = a.iter().zip(b).map(|(a, b)| f(*a, *b)).collect();
    summarize(&values)
}
