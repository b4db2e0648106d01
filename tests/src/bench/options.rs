//! The knobs every figure reads (`scripts/bench --help`): the binary's
//! command line flattens them under its area subcommand.

use std::path::PathBuf;

#[derive(clap::Args, Clone, Debug)]
pub struct Options {
    /// Rounds per figure; each round runs every configuration once.
    #[arg(long, default_value_t = 3, global = true)]
    pub rounds: usize,
    /// Seconds of load per measurement.
    #[arg(long, default_value_t = 3, global = true)]
    pub seconds: u64,
    /// Connections of the load generator.
    #[arg(long, default_value_t = 8, global = true)]
    pub connections: u32,
    /// Request rate for the latency figures.
    #[arg(long, default_value_t = 2000, global = true)]
    pub rate: u32,
    /// Changes timed per propagation figure.
    #[arg(long, default_value_t = 20, global = true)]
    pub samples: usize,
    /// Seconds of load per rate-limit mode in the accuracy figure.
    #[arg(long, default_value_t = 8, global = true)]
    pub accuracy_seconds: u64,
    /// The trivial reference filter (.wasm); scripts/bench builds it.
    #[arg(long, global = true)]
    pub reference: Option<PathBuf>,
    /// A directory of earlier `meshguard_<name>.wasm` builds, measured as
    /// "<name> (baseline)" next to the current ones (before/after in one run).
    #[arg(long, global = true)]
    pub baseline: Option<PathBuf>,
    /// Plugin figure: measure CPU only, skipping the latency runs (quicker
    /// before/after comparisons with more rounds).
    #[arg(long, global = true)]
    pub cpu_only: bool,
    /// Plugin figure: count Envoy's instructions per request under valgrind
    /// (callgrind) instead of timing its CPU: the same figure run after run,
    /// for comparing builds on a noisy machine.
    #[arg(long, global = true)]
    pub instructions: bool,
    /// With `--instructions`: also simulate the caches and branch
    /// predictors (callgrind's model), and report misses per request and
    /// callgrind's cycle estimate.
    #[arg(long, global = true)]
    pub cache_sim: bool,
    /// Requests per configuration counted with `--instructions`.
    #[arg(long, default_value_t = 2000, global = true)]
    pub requests: u64,
    /// With `--instructions`: keep each configuration's callgrind dump in
    /// this directory (for `callgrind_annotate`).
    #[arg(long, global = true)]
    pub callgrind_dir: Option<PathBuf>,
    /// Only the plugin-figure configurations whose name contains one of
    /// these (comma-separated); bare Envoy is always measured. For
    /// `profile`: only these policies of the single module (e.g. `ratelimit`).
    #[arg(long, global = true, value_delimiter = ',')]
    pub only: Vec<String>,
}
