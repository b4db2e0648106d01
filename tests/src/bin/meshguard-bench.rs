//! `scripts/bench`: what Meshguard costs, measured on this machine as ratios
//! within one run. Envoy (one worker) is pinned to core 0 and the load
//! generator to core 1; configurations alternate within each round; every
//! figure is a median with min–max over the rounds.

use clap::{Parser, Subcommand};
use meshguard_harness::bench::load::{self, HeyRun};
use meshguard_harness::bench::measure::{cpu_nanos, pin, rss_kib};
use meshguard_harness::bench::report::{percentile, summarize, table, Summary};
use meshguard_harness::bench::token::{DevKey, ISSUER};
use meshguard_harness::bench::{
    accuracy, instructions, native, propagation, wasm_instructions, wasm_profile,
};
use meshguard_harness::envoy::{Envoy, EnvoySpec, Plugin};
use meshguard_harness::http::Request;
use meshguard_harness::paths::{built_plugins, workspace_root};
use meshguard_harness::redis::Redis;
use meshguard_harness::state::{StateOptions, StateService};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

const ENVOY_CORE: usize = 0;
const NATIVE_LABEL: &str = "native: jwt_authn + local_ratelimit + header_mutation";
const CHAIN_LABEL: &str = "Meshguard chain (4 plugins)";
const SINGLE_LABEL: &str = "Meshguard chain, single module";
const SINGLE_WITHOUT_RATELIMIT_LABEL: &str = "Meshguard chain, single module without ratelimit";
const NATIVE_SAME_HEADERS_LABEL: &str =
    "native, also writing the single module's other 9 request and 2 response headers";
const HYBRID_LABEL: &str = "ratelimit (hybrid, 10,000-token leases)";
const RATELIMIT_LABEL: &str = "ratelimit (local)";
const RATELIMIT_FLOOR_LABEL: &str = "ratelimit's host calls alone (reference filter, no logic)";
/// The host calls `meshguard_ratelimit.wasm` makes per request in local and
/// hybrid mode (one header-map read, the clock, `RateLimit-Policy` and
/// `RateLimit`), for the reference filter to make with nothing around them.
const RATELIMIT_HOST_CALLS: &str = "request_header_map x1, clock x1, response_header_add x2";
const RATELIMIT_PEER_LABEL: &str = "ratelimit (local, keyed on the peer)";
const RATELIMIT_PEER_FLOOR_LABEL: &str =
    "ratelimit's host calls alone, keyed on the peer (reference filter, no logic)";
/// The same when the limiter keys on the peer alone: the `source.address`
/// property instead of the header map.
const RATELIMIT_PEER_HOST_CALLS: &str = "property x1, clock x1, response_header_add x2";
const LOAD_CORE: usize = 1;

#[derive(Parser)]
#[command(about = "Meshguard benchmarks (see docs/bench.md)")]
struct Cli {
    #[command(subcommand)]
    area: Area,
    /// Rounds per figure; each round runs every configuration once.
    #[arg(long, default_value_t = 3, global = true)]
    rounds: usize,
    /// Seconds of load per measurement.
    #[arg(long, default_value_t = 3, global = true)]
    seconds: u64,
    /// Connections of the load generator.
    #[arg(long, default_value_t = 8, global = true)]
    connections: u32,
    /// Request rate for the latency figures.
    #[arg(long, default_value_t = 2000, global = true)]
    rate: u32,
    /// Changes timed per propagation figure.
    #[arg(long, default_value_t = 20, global = true)]
    samples: usize,
    /// Seconds of load per rate-limit mode in the accuracy figure.
    #[arg(long, default_value_t = 8, global = true)]
    accuracy_seconds: u64,
    /// The trivial reference filter (.wasm); scripts/bench builds it.
    #[arg(long, global = true)]
    reference: Option<PathBuf>,
    /// A directory of earlier `meshguard_<name>.wasm` builds, measured as
    /// "<name> (baseline)" next to the current ones (before/after in one run).
    #[arg(long, global = true)]
    baseline: Option<PathBuf>,
    /// Plugin figure: measure CPU only, skipping the latency runs (quicker
    /// before/after comparisons with more rounds).
    #[arg(long, global = true)]
    cpu_only: bool,
    /// Plugin figure: count Envoy's instructions per request under valgrind
    /// (callgrind) instead of timing its CPU: the same figure run after run,
    /// for comparing builds on a noisy machine.
    #[arg(long, global = true)]
    instructions: bool,
    /// With `--instructions`: also simulate the caches and branch
    /// predictors (callgrind's model), and report misses per request and
    /// callgrind's cycle estimate.
    #[arg(long, global = true)]
    cache_sim: bool,
    /// Requests per configuration counted with `--instructions`.
    #[arg(long, default_value_t = 2000, global = true)]
    requests: u64,
    /// With `--instructions`: keep each configuration's callgrind dump in
    /// this directory (for `callgrind_annotate`).
    #[arg(long, global = true)]
    callgrind_dir: Option<PathBuf>,
    /// Only the plugin-figure configurations whose name contains one of
    /// these (comma-separated); bare Envoy is always measured. For
    /// `profile`: only these policies of the single module (e.g. `ratelimit`).
    #[arg(long, global = true, value_delimiter = ',')]
    only: Vec<String>,
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
}

impl Cli {
    fn wants(&self, area: Area) -> bool {
        let part_of = match self.area {
            Area::Ratelimit => [Area::Plugins, Area::Accuracy].contains(&area),
            Area::Auth => [Area::Plugins, Area::Propagation].contains(&area),
            _ => false,
        };
        self.area == area || self.area == Area::All || part_of
    }
}

/// One Envoy configuration under test.
struct Variant {
    name: String,
    plugins: Vec<Plugin>,
    native: Vec<String>,
    /// The port of the meshguard-state the plugins call, if they do.
    state_port: Option<u16>,
}

/// The meshguard-state (and its Redis) that the hybrid rate limiter leases
/// from: one for the whole figure, off the measured cores' hot path (the
/// plugin calls it only to renew leases).
struct LeaseBackend {
    state: StateService,
    _redis: Redis,
    _dir: tempfile::TempDir,
}

impl LeaseBackend {
    fn start() -> LeaseBackend {
        let dir = tempfile::tempdir().expect("temp dir for the limits file");
        let limits_file = dir.path().join("limits.json");
        let limits =
            json!({"default_tier": "enterprise", "tiers": {"enterprise": never_limited()}});
        std::fs::write(&limits_file, limits.to_string()).expect("write limits");
        let redis = Redis::start();
        let args = vec![
            "--limits-file".into(),
            limits_file.to_string_lossy().into_owned(),
        ];
        let state = StateService::start_with(
            &redis.url(),
            StateOptions {
                args,
                ..StateOptions::default()
            },
        );
        LeaseBackend {
            state,
            _redis: redis,
            _dir: dir,
        }
    }
}

/// Everything the variants share: the HS256 key, a token, the headers every
/// request carries (the same bytes for every configuration).
struct Fixture {
    key: DevKey,
    headers: Vec<String>,
}

impl Fixture {
    fn new() -> Fixture {
        let key = DevKey::generate();
        let token = key.mint("bench-user", "enterprise", "bench-token");
        Fixture {
            headers: vec![
                format!("authorization: Bearer {token}"),
                "x-auth-sub: bench-user".into(),
                "x-auth-tier: enterprise".into(),
            ],
            key,
        }
    }

    fn trace(&self) -> Plugin {
        Plugin::new("trace", Some(json!({"sampling_ratio": 0.1})))
    }

    fn auth(&self) -> Plugin {
        // /healthz is public by default; here it must verify the token.
        let config = json!({"issuers": [ISSUER], "jwks": self.key.jwks(), "public_routes": []});
        Plugin::new("auth", Some(config))
    }

    fn ratelimit(&self) -> Plugin {
        ratelimit_local("shared")
    }

    /// `ratelimit` with each worker keeping its own buckets (no shared data).
    fn ratelimit_per_worker(&self) -> Plugin {
        ratelimit_local("worker")
    }

    /// `ratelimit` keyed on the peer address alone: no request header read.
    fn ratelimit_by_peer(&self) -> Plugin {
        let mut config = ratelimit_local_config("shared");
        config["identity"] = json!({"trust_auth_headers": false});
        Plugin::new("ratelimit", Some(config))
    }

    fn flags(&self) -> Plugin {
        let path = workspace_root().join("envoy/local/flags.json");
        let mut config: Value = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| panic!("read {}", path.display()));
        config["sync"] = Value::Null;
        Plugin::new("flags", Some(config))
    }

    fn chain(&self) -> Vec<Plugin> {
        vec![self.trace(), self.auth(), self.ratelimit(), self.flags()]
    }

    /// `meshguard_chain.wasm` configured as the four plugins of `chain`.
    fn single_module(&self) -> Plugin {
        let mut config = serde_json::Map::new();
        for plugin in self.chain() {
            // No configuration: that policy's defaults (the section absent).
            let section = plugin.config.and_then(|c| serde_json::from_str(&c).ok());
            if let Some(section) = section {
                config.insert(plugin.name, section);
            }
        }
        Plugin::new("chain", Some(Value::Object(config)))
    }

    /// The single module without its rate limiter: the difference to
    /// `single_module` is what rate limiting costs inside it.
    fn single_module_without_ratelimit(&self) -> Plugin {
        let mut plugin = self.single_module();
        let mut config: Value = plugin
            .config
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default();
        config["ratelimit"] = Value::Null; // null turns a policy off
        plugin.config = Some(config.to_string());
        plugin
    }
}

/// A tier the load never exhausts (the most a tier may allow).
fn never_limited() -> Value {
    json!({"per_minute": 60_000_000u64, "per_hour": 3_600_000_000u64})
}

/// The rate limiter in local mode with a limit the load never reaches.
fn ratelimit_local(buckets: &str) -> Plugin {
    Plugin::new("ratelimit", Some(ratelimit_local_config(buckets)))
}

fn ratelimit_local_config(buckets: &str) -> Value {
    json!({
        "mode": "local",
        "local_buckets": buckets,
        "default_tier": "enterprise",
        "tiers": {"enterprise": never_limited()},
        "global": null,
    })
}

/// The rate limiter in hybrid mode: requests spend leased tokens; the
/// tick renews leases (10,000 tokens each) with meshguard-state.
fn ratelimit_hybrid(secret: &str) -> Plugin {
    let config = json!({
        "mode": "hybrid",
        "default_tier": "enterprise",
        "tiers": {"enterprise": never_limited()},
        "global": null,
        "state": {"secret": secret, "timeout_ms": 1000},
        "hybrid": {"lease_tokens": 10_000, "refresh_ms": 200},
    });
    Plugin::new("ratelimit", Some(config))
}

fn is_built(name: &str) -> bool {
    built_plugins().iter().any(|p| {
        p.file_stem()
            .is_some_and(|s| s == format!("meshguard_{name}").as_str())
    })
}

fn reference_wasm(cli: &Cli) -> PathBuf {
    cli.reference.clone().unwrap_or_else(|| {
        workspace_root()
            .join("target/bench-reference/wasm32-wasip1/release/meshguard_bench_reference.wasm")
    })
}

fn variants(
    cli: &Cli,
    fixture: &Fixture,
    backend: Option<&LeaseBackend>,
    notes: &mut Vec<String>,
) -> Vec<Variant> {
    let variant = |name: &str, plugins: Vec<Plugin>| Variant {
        name: name.into(),
        plugins,
        native: vec![],
        state_port: None,
    };
    let mut out = vec![variant("bare Envoy", vec![])];
    let reference = reference_wasm(cli);
    if reference.exists() {
        let filter = |config: Option<&str>| Plugin {
            name: "reference".into(),
            path: reference.clone(),
            config: config.map(String::from),
        };
        out.push(variant(
            "trivial Rust filter (+1 header)",
            vec![filter(None)],
        ));
        out.push(variant(
            RATELIMIT_FLOOR_LABEL,
            vec![filter(Some(RATELIMIT_HOST_CALLS))],
        ));
        out.push(variant(
            RATELIMIT_PEER_FLOOR_LABEL,
            vec![filter(Some(RATELIMIT_PEER_HOST_CALLS))],
        ));
    } else {
        notes.push(format!(
            "reference filter not built ({}): scripts/bench builds it",
            reference.display()
        ));
    }
    let mut all_built = true;
    for (name, label, plugin) in [
        ("trace", "trace", Fixture::trace as fn(&Fixture) -> Plugin),
        ("auth", "auth (HS256 token)", Fixture::auth),
        ("ratelimit", RATELIMIT_LABEL, Fixture::ratelimit),
        (
            "ratelimit",
            "ratelimit (local, per-worker buckets)",
            Fixture::ratelimit_per_worker,
        ),
        (
            "ratelimit",
            RATELIMIT_PEER_LABEL,
            Fixture::ratelimit_by_peer,
        ),
        ("flags", "flags (8 seed flags)", Fixture::flags),
    ] {
        if !is_built(name) {
            notes.push(format!("meshguard_{name}.wasm not built: left out"));
            all_built = false;
            continue;
        }
        out.push(variant(label, vec![plugin(fixture)]));
        if let Some(dir) = &cli.baseline {
            let before = dir.join(format!("meshguard_{name}.wasm"));
            if before.exists() {
                let mut p = plugin(fixture);
                p.path = before;
                out.push(variant(&format!("{label} (baseline)"), vec![p]));
            }
        }
    }
    if all_built {
        out.push(variant(CHAIN_LABEL, fixture.chain()));
    }
    if is_built("chain") {
        let label = SINGLE_LABEL;
        out.push(variant(label, vec![fixture.single_module()]));
        if let Some(dir) = &cli.baseline {
            let before = dir.join("meshguard_chain.wasm");
            if before.exists() {
                let mut p = fixture.single_module();
                p.path = before;
                out.push(variant(&format!("{label} (baseline)"), vec![p]));
            }
        }
        out.push(variant(
            SINGLE_WITHOUT_RATELIMIT_LABEL,
            vec![fixture.single_module_without_ratelimit()],
        ));
    } else {
        notes.push("meshguard_chain.wasm not built: left out".into());
    }
    if let (Some(backend), true) = (backend, is_built("ratelimit")) {
        let mut v = variant(
            HYBRID_LABEL,
            vec![ratelimit_hybrid(&backend.state.plugin_secret)],
        );
        v.state_port = Some(backend.state.port);
        out.push(v);
    }
    out.push(Variant {
        name: NATIVE_LABEL.into(),
        plugins: vec![],
        native: native::filters(&fixture.key.jwks(), ISSUER),
        state_port: None,
    });
    out.push(Variant {
        name: NATIVE_SAME_HEADERS_LABEL.into(),
        plugins: vec![],
        native: native::filters_writing_single_module_headers(&fixture.key.jwks(), ISSUER),
        state_port: None,
    });
    out
}

fn main() {
    let mut cli = Cli::parse();
    match cli.area {
        Area::Ratelimit => {
            cli.only = vec!["ratelimit".into()];
            cli.accuracy_seconds = cli.accuracy_seconds.max(30);
        }
        Area::Auth => {
            cli.only = vec!["auth".into()];
            cli.samples = cli.samples.max(200);
        }
        Area::Calibrate => {
            cli.cpu_only = true;
            if cli.instructions {
                cli.rounds = cli.rounds.min(1);
            }
        }
        _ => {}
    }
    let profile = std::env::var("MESHGUARD_PROFILE").unwrap_or_else(|_| "debug".into());
    let mut report = format!(
        "# Meshguard benchmarks\n\n{} on {}; Envoy {} with one worker pinned to core {ENVOY_CORE}, \
         load on core {LOAD_CORE}; {} rounds of {} s, medians (min–max); services built with the \
         `{profile}` profile.\n\n",
        now_utc(),
        machine(),
        envoy_version(),
        cli.rounds,
        cli.seconds
    );
    if profile != "release" {
        report.push_str("**Not a release build of the services: run scripts/bench.**\n\n");
    }
    let mut figures = json!({"date": now_utc(), "machine": machine()});
    if cli.wants(Area::Plugins) && cli.instructions {
        report.push_str(&instructions_figure(&cli));
    } else if cli.wants(Area::Plugins) {
        let (text, data) = plugins_figure(&cli);
        report.push_str(&text);
        figures["plugins"] = data;
    }
    if cli.wants(Area::State) {
        report.push_str(&state_figure(&cli));
    }
    if cli.wants(Area::Propagation) {
        report.push_str(&propagation_figure(&cli));
    }
    if cli.wants(Area::Accuracy) {
        report.push_str(&accuracy_figure(&cli));
    }
    if cli.wants(Area::Memory) {
        report.push_str(&memory_figure());
    }
    if cli.area == Area::Profile {
        report.push_str(&profile_figure(cli.baseline.as_deref(), &cli.only));
    }
    if cli.area == Area::Calibrate {
        report.push_str(&calibrate_figure(&cli));
    }
    println!("{report}");
    let dir = workspace_root().join("bench/results");
    let _ = std::fs::create_dir_all(&dir);
    write(&dir.join("latest.md"), report.as_bytes());
    if figures.get("plugins").is_some() {
        write(&dir.join("latest.json"), figures.to_string().as_bytes());
    }
}

fn write(path: &Path, bytes: &[u8]) {
    match std::fs::write(path, bytes) {
        Ok(()) => eprintln!("bench: written to {}", path.display()),
        Err(e) => eprintln!("bench: cannot write {}: {e}", path.display()),
    }
}

fn start_pinned(variant: &Variant, concurrency: u32) -> Envoy {
    let mut spec = EnvoySpec::new();
    spec.concurrency = concurrency;
    spec.native_filters = variant.native.clone();
    for plugin in &variant.plugins {
        spec = spec.plugin(plugin.clone());
    }
    if let Some(port) = variant.state_port {
        spec = spec.cluster("meshguard_state", port);
    }
    let envoy = Envoy::start(spec);
    pin(envoy.pid(), ENVOY_CORE);
    envoy
}

/// One request with the fixture's headers: its status.
fn probe(envoy: &Envoy, headers: &[String]) -> u16 {
    let request = headers.iter().fold(Request::get("/healthz"), |r, h| {
        let (name, value) = h.split_once(": ").unwrap_or((h, ""));
        r.header(name, value)
    });
    request.send(envoy.port).map_or(0, |r| r.status)
}

#[derive(Default)]
struct Samples {
    cpu: Vec<f64>,
    rps: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    failed: u64,
}

/// The plugin-figure configurations `--only` selects (bare Envoy always
/// first), and the meshguard-state the hybrid one leases from, which must
/// outlive the measurements.
fn selected_variants(
    cli: &Cli,
    fixture: &Fixture,
    notes: &mut Vec<String>,
) -> (Vec<Variant>, Option<LeaseBackend>) {
    let hybrid_wanted =
        cli.only.is_empty() || cli.only.iter().any(|o| HYBRID_LABEL.contains(o.as_str()));
    let backend = hybrid_wanted.then(LeaseBackend::start);
    let mut variants = variants(cli, fixture, backend.as_ref(), notes);
    if !cli.only.is_empty() {
        let mut index = 0;
        variants.retain(|v| {
            index += 1;
            index == 1 || cli.only.iter().any(|o| v.name.contains(o.as_str()))
        });
    }
    (variants, backend)
}

/// Envoy's instructions per request for every configuration, counted by
/// callgrind (`bench::instructions`) over `cli.requests` requests after a
/// warm-up: one Envoy per configuration and round, run under valgrind.
fn instructions_figure(cli: &Cli) -> String {
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
fn count_instructions(
    cli: &Cli,
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
        let warm = load::hey_count(&url, 4, 200, &fixture.headers);
        let mut statuses = vec![];
        let counted = instructions::count(envoy.pid(), &out, || {
            statuses = load::hey_count(&url, 4, cli.requests, &fixture.headers);
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
type PerRequest = BTreeMap<String, f64>;

const CYCLES: &str = "estimated cycles";

/// One event's per-request figure, by configuration and round (NaN where
/// callgrind could not be driven or did not count it).
fn event_rounds(events: &[Vec<PerRequest>], name: &str) -> Vec<Vec<f64>> {
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
fn cache_table(variants: &[Variant], events: &[Vec<PerRequest>]) -> String {
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
fn keep_dumps(out: &Path, keep: &Path, configuration: &str) {
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

/// Every configuration measured `cli.rounds` times, each time on a fresh
/// Envoy, in alternating order.
fn measure(
    cli: &Cli,
    fixture: &Fixture,
    variants: &[Variant],
    notes: &mut Vec<String>,
) -> BTreeMap<usize, Samples> {
    let mut samples: BTreeMap<usize, Samples> = BTreeMap::new();
    each_run(cli, variants, "plugins", |i, variant| {
        let s = samples.entry(i).or_default();
        // A fresh Envoy for every measurement: two Envoy processes of
        // the same build can differ by about 2 µs per request for the
        // whole of their lives, so a process is measured once.
        let envoy = start_pinned(variant, 1);
        let status = probe(&envoy, &fixture.headers);
        if status != 200 {
            notes.push(format!("{}: answered {status}, not 200", variant.name));
        }
        let url = format!("http://127.0.0.1:{}/healthz", envoy.port);
        load::wrk(LOAD_CORE, &url, cli.connections, 1, &fixture.headers);
        let before = cpu_nanos(envoy.pid());
        let run = load::wrk(
            LOAD_CORE,
            &url,
            cli.connections,
            cli.seconds,
            &fixture.headers,
        );
        let spent = cpu_nanos(envoy.pid()).saturating_sub(before);
        s.failed += run.errors;
        // One entry per round (NaN when nothing was served), so the
        // rounds of two configurations line up for paired comparisons.
        s.cpu.push(if run.requests > 0 {
            spent as f64 / 1000.0 / run.requests as f64
        } else {
            f64::NAN
        });
        if run.requests > 0 {
            s.rps.push(run.per_second);
        }
        if cli.cpu_only {
            return;
        }
        let latency = load::hey(&HeyRun {
            core: LOAD_CORE,
            url: &url,
            connections: cli.connections,
            seconds: cli.seconds,
            rate: cli.rate,
            headers: &fixture.headers,
            method: "GET",
            body: None,
        });
        s.failed += latency.unexpected(&[200]);
        s.p50.push(latency.p50_ms);
        s.p99.push(latency.p99_ms);
    });
    samples
}

fn plugins_figure(cli: &Cli) -> (String, Value) {
    let fixture = Fixture::new();
    let mut notes = vec![];
    let (variants, _backend) = selected_variants(cli, &fixture, &mut notes);
    let samples = measure(cli, &fixture, &variants, &mut notes);
    let cpu = |i: usize| summarize(samples.get(&i).map_or(&[][..], |s| &s.cpu));
    let bare = cpu(0).median;
    let per_round = |i: usize| samples.get(&i).map_or(&[][..], |s| &s.cpu[..]);
    let native_added = variants
        .iter()
        .position(|v| !v.native.is_empty())
        .map_or(f64::NAN, |i| cpu(i).median - bare);
    let mut rows = vec![];
    let mut data = vec![];
    for (i, v) in variants.iter().enumerate() {
        let Some(s) = samples.get(&i) else { continue };
        let c = cpu(i);
        let added = c.median - bare;
        rows.push(vec![
            v.name.clone(),
            c.show(1),
            format!("{added:+.1}"),
            format!("{:.2}×", c.median / bare),
            if i == 0 {
                "–".into()
            } else {
                ratio_cell(added / native_added)
            },
            summarize(&s.rps).show(0),
            latency(&s.p50),
            latency(&s.p99),
            s.failed.to_string(),
        ]);
        data.push(json!({
            "name": v.name,
            "cpu_us": summary_json(c),
            "added_us": added,
            "cpu_us_per_round": s.cpu,
        }));
    }
    let mut text = format!(
        "## Envoy CPU per request\n\n`GET /healthz` (direct_response) with the same headers for every \
         configuration (an HS256 bearer token, `x-auth-sub`, `x-auth-tier`); Envoy's CPU time over \
         requests served at full speed with {} connections (`wrk`); latency at {} requests/s (`hey`). \
         \"vs native\" is the added CPU over bare Envoy divided by the native equivalent's.\n\n{}\n",
        cli.connections,
        cli.rate,
        table(
            &[
                "configuration",
                "CPU µs/request",
                "added µs",
                "vs bare",
                "added vs native",
                "max requests/s",
                "p50 ms",
                "p99 ms",
                "non-200",
            ],
            &rows
        )
    );
    let index_of = |label: &str| {
        let i = variants.iter().position(|v| v.name == label)?;
        samples.contains_key(&i).then_some(i)
    };
    if let (Some(with), Some(without)) = (
        index_of(SINGLE_LABEL),
        index_of(SINGLE_WITHOUT_RATELIMIT_LABEL),
    ) {
        notes.push(format!(
            "rate limiting inside the single module (local, shared buckets): {} µs per request \
             (the single module with and without its ratelimit section, round by round)",
            paired(per_round(with), per_round(without), |a, b| a - b).show_signed(1)
        ));
    }
    let floors = [
        (RATELIMIT_FLOOR_LABEL, RATELIMIT_LABEL),
        (RATELIMIT_FLOOR_LABEL, HYBRID_LABEL),
        (RATELIMIT_PEER_FLOOR_LABEL, RATELIMIT_PEER_LABEL),
    ];
    for (floor_label, label) in floors {
        if let Some(floor) = index_of(floor_label) {
            if let Some(i) = index_of(label) {
                notes.push(format!(
                    "{label} over its host calls alone (the reference filter making them): {} µs \
                     per request, round by round; the host calls alone add {} µs",
                    paired(per_round(i), per_round(floor), |a, b| a - b).show_signed(1),
                    paired(per_round(floor), per_round(0), |a, b| a - b).show_signed(1)
                ));
            }
        }
    }
    if let (Some(native), Some(single), Some(chain)) = (
        index_of(NATIVE_LABEL),
        index_of(SINGLE_LABEL),
        index_of(CHAIN_LABEL),
    ) {
        // Other tenants of a shared machine only ever add time: each row's
        // fastest round is its least disturbed one.
        let fastest = |i: usize| cpu(i).min - cpu(0).min;
        notes.push(format!(
            "from each row's fastest round (the least disturbed): single module {:.2}×, \
             chain {:.2}× the native set's added CPU",
            fastest(single) / fastest(native),
            fastest(chain) / fastest(native)
        ));
    }
    for (i, v) in variants.iter().enumerate() {
        let Some(before) = v.name.strip_suffix(" (baseline)").and_then(index_of) else {
            continue;
        };
        notes.push(format!(
            "{}: {} µs per request against its baseline build, round by round",
            variants[before].name,
            paired(per_round(before), per_round(i), |a, b| a - b).show_signed(1)
        ));
    }
    push_notes(&mut text, notes);
    (text, Value::Array(data))
}

/// Calls `run` for every configuration, `cli.rounds` times, in the order
/// of `round_order`; `what` names the figure in the progress lines.
fn each_run(cli: &Cli, variants: &[Variant], what: &str, mut run: impl FnMut(usize, &Variant)) {
    for round in 0..cli.rounds {
        for i in round_order(variants.len(), round) {
            let Some(variant) = variants.get(i) else {
                continue;
            };
            eprintln!(
                "bench {what}: round {}/{}: {}",
                round + 1,
                cli.rounds,
                variant.name
            );
            run(i, variant);
        }
    }
}

/// The order configurations run in `round`: forward, then backward, so a
/// drift of the machine during a round does not always favour the same
/// ones. Bare Envoy (index 0) is measured at both ends in turn.
fn round_order(count: usize, round: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..count).collect();
    if round % 2 == 1 {
        order.reverse();
    }
    order
}

/// `f(a[r], b[r])` over the rounds, summarized: a comparison made within
/// each round, where both ran minutes apart at most.
fn paired(a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) -> Summary {
    let values: Vec<f64> = a.iter().zip(b).map(|(a, b)| f(*a, *b)).collect();
    summarize(&values)
}

/// The single-module build, unstripped (`scripts/bench profile` builds it).
fn profile_wasm() -> PathBuf {
    workspace_root().join("target/wasm-profile/wasm32-wasip1/wasm/meshguard_chain.wasm")
}

/// The profile of the single-module build; with `baseline` (a directory
/// holding an unstripped `meshguard_chain.wasm`), that build's Wasm time too.
/// With `only` (policy names), the module runs those policies alone.
fn profile_figure(baseline: Option<&Path>, only: &[String]) -> String {
    const REQUESTS: u32 = 100_000;
    let wasm = profile_wasm();
    if !wasm.exists() {
        return format!(
            "## Wasm profile\n\n{} is not built: run scripts/bench profile.\n\n",
            wasm.display()
        );
    }
    let fixture = Fixture::new();
    let token = fixture.headers[0].trim_start_matches("authorization: Bearer ");
    let config = policies_only(fixture.single_module(), only)
        .config
        .unwrap_or_default();
    let profile = match wasm_profile::profile(&wasm, &config, token, REQUESTS) {
        Ok(p) => p,
        Err(e) => return format!("## Wasm profile\n\nnot measured: {e}\n\n"),
    };
    let before = baseline.map(|dir| {
        let wasm = dir.join("meshguard_chain.wasm");
        match wasm_profile::profile(&wasm, &config, token, REQUESTS) {
            Ok(p) => format!(
                " The baseline build ({}): {:.2} µs per request; {}.",
                wasm.display(),
                p.wasm_us_per_request,
                p.host_calls
            ),
            Err(e) => format!(
                " The baseline build ({}) was not measured: {e}.",
                wasm.display()
            ),
        }
    });
    let rows: Vec<Vec<String>> = profile
        .functions
        .iter()
        .take(25)
        .map(|(name, share)| {
            vec![
                format!("`{name}`"),
                format!("{:.1} %", share * 100.0),
                format!("{:.2}", share * profile.wasm_us_per_request),
            ]
        })
        .collect();
    let sampled = format!(
        "## Wasm profile of the single-module chain\n\nThe benchmark's request replayed {REQUESTS} times \
         under Node's V8 (`--no-liftoff`, as in Envoy) with the stand-in host of \
         `bench/wasm-profile/host.mjs`; V8's sampling profiler, self time of each Rust function \
         inside the request callbacks. Wasm time: **{:.2} µs per request** (the profiler adds some; \
         compare builds, not machines). {}.{}\n\n{}\n",
        profile.wasm_us_per_request,
        profile.host_calls,
        before.unwrap_or_default(),
        table(&["function", "share of Wasm time", "µs/request"], &rows)
    );
    sampled + &instructions_by_function(&wasm, &config, token)
}

/// The single module with every policy not named in `only` turned off
/// (its section null); all of them when `only` is empty.
fn policies_only(mut module: Plugin, only: &[String]) -> Plugin {
    if only.is_empty() {
        return module;
    }
    let mut config: Value = module
        .config
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    for policy in ["trace", "auth", "ratelimit", "flags"] {
        if !only.iter().any(|o| o == policy) {
            config[policy] = Value::Null;
        }
    }
    module.config = Some(config.to_string());
    module
}

/// The single module's Wasm instructions per request by function
/// (`wasm_instructions`).
fn instructions_by_function(wasm: &Path, config: &str, token: &str) -> String {
    let heading = "## Wasm instructions per request by function";
    let counted = match wasm_instructions::measure(wasm, config, token) {
        Ok(c) => c,
        Err(e) => return format!("{heading}\n\nnot measured: {e}\n\n"),
    };
    let row = |name: String, c: &wasm_instructions::Cost| {
        vec![
            name,
            format!("{:.0}", c.instructions),
            format!("{:.1}", c.i1_misses),
            format!("{:.1}", c.d1_misses),
        ]
    };
    let mut rows = vec![row(
        "**all of the module's functions**".into(),
        &counted.total,
    )];
    rows.extend(
        counted
            .functions
            .iter()
            .take(30)
            .map(|(name, c)| row(format!("`{name}`"), c)),
    );
    format!(
        "{heading}\n\nThe same request under Node's V8 and callgrind, two runs (1,000 and 5,000 \
         requests) differenced; each function's own instructions and cache misses per request, \
         charged through V8's jump table (see `tests/src/bench/wasm_instructions.rs`).\n\n{}\n",
        table(
            &["function", "instructions", "I1 misses", "D1 misses"],
            &rows
        )
    )
}

/// The host calls `scripts/bench calibrate` prices (the reference filter's
/// names for them) and what each does.
const CALIBRATED_CALLS: [(&str, &str); 10] = [
    (
        "request_header_present",
        "read a request header the request carries",
    ),
    (
        "request_header_absent",
        "read a request header the request lacks",
    ),
    ("request_header_map", "read the whole request header map"),
    ("request_header_add", "add a request header"),
    ("response_header_add", "add a response header"),
    ("clock", "read the clock"),
    ("shared_data_get", "read a shared-data value"),
    ("shared_data_set", "write a shared-data value"),
    ("property", "read the `source.address` property"),
    ("counter", "increment a counter"),
];
const CALIBRATION_REPEAT: usize = 20;

/// What one host call costs: the trivial filter making it
/// `CALIBRATION_REPEAT` times per request, against the plain trivial filter
/// of the same round. These are marginal costs (the repeats run with warm
/// caches); a plugin's first call of a kind in a request costs more.
fn calibrate_figure(cli: &Cli) -> String {
    let reference = reference_wasm(cli);
    if !reference.exists() {
        return format!(
            "## Host-call costs\n\n{} is not built: run scripts/bench calibrate.\n\n",
            reference.display()
        );
    }
    let fixture = Fixture::new();
    let filter = |config: Option<String>| Plugin {
        name: "reference".into(),
        path: reference.clone(),
        config,
    };
    let variant = |name: String, plugins: Vec<Plugin>| Variant {
        name,
        plugins,
        native: vec![],
        state_port: None,
    };
    let mut variants = vec![
        variant("bare Envoy".into(), vec![]),
        variant("trivial Rust filter (+1 header)".into(), vec![filter(None)]),
    ];
    for (call, _) in CALIBRATED_CALLS {
        // A configured filter makes only the calls listed: the plain
        // filter's one header write comes first, so the two differ by the
        // repeated call alone.
        let config = format!("request_header_add x1, {call} x{CALIBRATION_REPEAT}");
        variants.push(variant(config.clone(), vec![filter(Some(config))]));
    }
    let mut notes = vec![];
    let rounds: Vec<Vec<f64>> = if cli.instructions {
        event_rounds(
            &count_instructions(cli, &fixture, &variants, &mut notes),
            "Ir",
        )
    } else {
        let samples = measure(cli, &fixture, &variants, &mut notes);
        (0..variants.len())
            .map(|i| samples.get(&i).map(|s| s.cpu.clone()).unwrap_or_default())
            .collect()
    };
    let per_round = |i: usize| rounds.get(i).map_or(&[][..], |r| &r[..]);
    let repeat = CALIBRATION_REPEAT as f64;
    let (unit, decimals) = if cli.instructions {
        ("instructions", 0)
    } else {
        ("CPU µs", 2)
    };
    let filter_cost = paired(per_round(1), per_round(0), |a, b| a - b);
    let mut rows = vec![vec![
        "the trivial filter itself (module, one request-header write)".into(),
        summarize(per_round(1)).show(decimals.min(1)),
        format!(
            "{} (against bare Envoy)",
            filter_cost.show_signed(decimals.min(1))
        ),
    ]];
    for (i, (_, what)) in CALIBRATED_CALLS.iter().enumerate() {
        let index = i + 2;
        let one = paired(per_round(index), per_round(1), |a, b| (a - b) / repeat);
        rows.push(vec![
            (*what).to_string(),
            summarize(per_round(index)).show(decimals.min(1)),
            one.show_signed(decimals),
        ]);
    }
    let mut text = format!(
        "## Host-call costs ({unit})\n\nThe trivial filter making one host call {CALIBRATION_REPEAT} \
         times per request, against the plain trivial filter in the same round (the difference \
         divided by {CALIBRATION_REPEAT}; median and range over the rounds). Marginal costs: the \
         repeats run with warm caches, so a plugin's first call of a kind costs more.\n\n{}\n",
        table(
            &[
                "host call",
                &format!("{unit}/request with {CALIBRATION_REPEAT} calls"),
                &format!("{unit} per call"),
            ],
            &rows
        )
    );
    push_notes(&mut text, notes);
    text
}

/// The figure's notes as a list under its table.
fn push_notes(text: &mut String, mut notes: Vec<String>) {
    notes.dedup();
    for note in notes {
        let _ = writeln!(text, "- {note}");
    }
    text.push('\n');
}

/// A "vs native" cell: "–" when the native set was not measured (`--only`).
fn ratio_cell(ratio: f64) -> String {
    if ratio.is_finite() {
        format!("{ratio:.2}×")
    } else {
        "–".into()
    }
}

/// A latency cell: "–" when the latency runs were skipped (`--cpu-only`).
fn latency(samples: &[f64]) -> String {
    if samples.is_empty() {
        "–".into()
    } else {
        summarize(samples).show(3)
    }
}

fn summary_json(s: Summary) -> Value {
    json!({"median": s.median, "min": s.min, "max": s.max})
}

fn state_figure(cli: &Cli) -> String {
    let redis = Redis::start();
    pin(redis.pid(), ENVOY_CORE);
    let state = StateService::start(&redis);
    let script_path = workspace_root().join("services/state/src/store/lua/ratelimit.lua");
    let script = std::fs::read_to_string(&script_path).unwrap_or_default();
    let sha = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "SCRIPT", "LOAD", &script])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    // One enterprise key plus the global bucket, as the service evaluates it.
    let evalsha: Vec<String> = [
        "EVALSHA",
        &sha,
        "4",
        "mg:{u:bench}:rl:minute",
        "mg:{u:bench}:rl:hour",
        "mg:{rl:global}:tat",
        "mg:{u:bench}:index",
        "check",
        "1",
        "0",
        "2",
        "3",
        "0",
        "120000",
        "60000000",
        "360000",
        "3600000000",
        "100",
        "1000000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let url = format!("http://127.0.0.1:{}/v1/ratelimit/check", state.port);
    let secret = vec![format!("x-meshguard-secret: {}", state.plugin_secret)];
    let body = r#"{"key":"bench","tier":"enterprise"}"#;
    let (mut service, mut plain, mut piped) = (vec![], vec![], vec![]);
    let (mut answered, mut unexpected) = (0u64, 0u64);
    for round in 0..cli.rounds {
        eprintln!("bench state: round {}/{}", round + 1, cli.rounds);
        let run = load::wrk_post(LOAD_CORE, &url, 16, cli.seconds, &secret, body);
        answered += run.statuses.iter().map(|(_, n)| n).sum::<u64>();
        unexpected += run.unexpected(&[200, 429]);
        service.push(run.per_second);
        plain.push(load::redis_benchmark(
            LOAD_CORE, redis.port, 16, 1, 100_000, &evalsha,
        ));
        piped.push(load::redis_benchmark(
            LOAD_CORE, redis.port, 16, 16, 300_000, &evalsha,
        ));
    }
    let (s, p, q) = (summarize(&service), summarize(&plain), summarize(&piped));
    let rows = vec![
        vec![
            "meshguard-state `POST /v1/ratelimit/check` (16 connections)".into(),
            s.show(0),
            "1.00×".into(),
        ],
        vec![
            "redis-benchmark EVALSHA, unpipelined (16 clients)".into(),
            p.show(0),
            format!("{:.2}×", p.median / s.median),
        ],
        vec![
            "redis-benchmark EVALSHA, pipeline 16".into(),
            q.show(0),
            format!("{:.2}×", q.median / s.median),
        ],
    ];
    format!(
        "## Rate-limit decisions per second (same Lua script, Redis pinned to core {ENVOY_CORE})\n\n\
         meshguard-state runs unpinned beside Redis; `wrk` (POST script) on core {LOAD_CORE}. The service reaches \
         {:.0}% of redis-benchmark's unpipelined rate (target: at least 50%). {answered} service \
         responses, {unexpected} of them neither 200 nor 429.\n\n{}\n",
        100.0 * s.median / p.median,
        table(&["path", "decisions/s", "vs service"], &rows)
    )
}

fn propagation_figure(cli: &Cli) -> String {
    let result = propagation::measure(cli.samples);
    let row = |what: &str, values: &[f64], target: f64| {
        let (p50, p99) = (percentile(values, 50.0), percentile(values, 99.0));
        vec![
            what.to_string(),
            values.len().to_string(),
            format!("{:.0}", p50 * 1000.0),
            format!("{:.0}", p99 * 1000.0),
            format!(
                "{:.0}",
                values.iter().copied().fold(f64::NAN, f64::max) * 1000.0
            ),
            format!(
                "< {target:.0} ms: {}",
                if p99 * 1000.0 < target {
                    "met"
                } else {
                    "missed"
                }
            ),
        ]
    };
    let rows = vec![
        row(
            "token revoked → Envoy answers 401 (auth, feed poll 250 ms)",
            &result.revocation,
            1000.0,
        ),
        row(
            "flag PUT → upstream sees the new variant (flags, snapshot poll 1000 ms)",
            &result.flag,
            2000.0,
        ),
    ];
    format!(
        "## Propagation through meshguard-state\n\nFrom the admin API call's start to the first \
         request through Envoy (one worker) that shows the change, polled every 2 ms; starts spread \
         over the sync periods. {} changes not seen within 10 s.\n\n{}\n",
        result.misses,
        table(
            &["change", "samples", "p50 ms", "p99 ms", "max ms", "target"],
            &rows
        )
    )
}

fn accuracy_figure(cli: &Cli) -> String {
    let rows: Vec<Vec<String>> = accuracy::measure(cli.accuracy_seconds, LOAD_CORE)
        .into_iter()
        .map(|a| {
            vec![
                a.mode.to_string(),
                a.envoys.to_string(),
                a.requests.to_string(),
                a.admitted.to_string(),
                format!("{:.0}", a.allowed),
                format!("{:+.1}%", (a.admitted as f64 / a.allowed - 1.0) * 100.0),
                a.fallbacks.to_string(),
            ]
        })
        .collect();
    format!(
        "## Rate-limit accuracy per mode\n\nOne key limited to {}/min with burst {}; 64 connections \
         (`wrk`) for {} s, split over the Envoys; allowed = burst + rate × elapsed. Envoys run \
         one worker each, unpinned.\n\n{}\n",
        accuracy::PER_MINUTE,
        accuracy::BURST,
        cli.accuracy_seconds,
        table(
            &[
                "mode",
                "Envoys",
                "requests",
                "admitted",
                "allowed",
                "error",
                "fallbacks"
            ],
            &rows
        )
    )
}

fn memory_figure() -> String {
    let fixture = Fixture::new();
    let chain = Variant {
        name: CHAIN_LABEL.into(),
        plugins: fixture.chain(),
        native: vec![],
        state_port: None,
    };
    let bare = Variant {
        name: "bare Envoy".into(),
        plugins: vec![],
        native: vec![],
        state_port: None,
    };
    let mut rows = vec![];
    for concurrency in [1, 2] {
        let mut bare_mib = f64::NAN;
        for variant in [&bare, &chain] {
            if !variant.plugins.iter().all(|p| p.path.exists()) {
                continue;
            }
            let envoy = start_pinned(variant, concurrency);
            let url = format!("http://127.0.0.1:{}/healthz", envoy.port);
            // Enough connections that every worker serves requests.
            load::wrk(LOAD_CORE, &url, 8, 1, &fixture.headers);
            std::thread::sleep(Duration::from_millis(300));
            let mib = rss_kib(envoy.pid()) as f64 / 1024.0;
            if variant.plugins.is_empty() {
                bare_mib = mib;
            }
            rows.push(vec![
                variant.name.clone(),
                concurrency.to_string(),
                format!("{mib:.1}"),
                format!("{:+.1}", mib - bare_mib),
            ]);
        }
    }
    let mut out = format!(
        "## Memory\n\nEnvoy RSS after 1 s of load.\n\n{}\n",
        table(
            &["configuration", "workers", "Envoy RSS MiB", "vs bare MiB"],
            &rows
        )
    );
    let sizes: Vec<Vec<String>> = built_plugins()
        .iter()
        .map(|p| {
            let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            vec![
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                format!("{:.0}", size as f64 / 1024.0),
            ]
        })
        .collect();
    let _ = writeln!(out, "{}", table(&[".wasm", "KiB"], &sizes));
    out
}

fn now_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn envoy_version() -> String {
    std::process::Command::new(meshguard_harness::paths::envoy_binary())
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let (_, version) = text.split_once("version: ")?;
            version.split('/').nth(1).map(str::to_string)
        })
        .unwrap_or_else(|| "(unknown version)".into())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores ({cpu})")
}
