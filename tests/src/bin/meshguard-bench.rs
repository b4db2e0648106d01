//! `scripts/bench`: what Meshguard costs, measured on this machine as ratios
//! within one run. Envoy (one worker) is pinned to core 0 and the load
//! generator to core 1; configurations alternate within each round; every
//! figure is a median with min–max over the rounds.

use clap::{Parser, Subcommand};
use meshguard_harness::bench::load::{self, HeyRun};
use meshguard_harness::bench::measure::{cpu_nanos, pin, rss_kib};
use meshguard_harness::bench::report::{summarize, table};
use meshguard_harness::envoy::{Envoy, EnvoySpec, Plugin};
use meshguard_harness::paths::{built_plugins, workspace_root};
use meshguard_harness::redis::Redis;
use meshguard_harness::state::StateService;
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

const ENVOY_CORE: usize = 0;
const LOAD_CORE: usize = 1;

#[derive(Parser)]
#[command(about = "Meshguard benchmarks (see README, Performance)")]
struct Cli {
    #[command(subcommand)]
    area: Area,
    /// Rounds per figure; each round runs every configuration once.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of load per measurement.
    #[arg(long, default_value_t = 4)]
    seconds: u64,
    /// Connections of the load generator.
    #[arg(long, default_value_t = 8)]
    connections: u32,
    /// Request rate for the latency figures.
    #[arg(long, default_value_t = 2000)]
    rate: u32,
}

#[derive(Subcommand, Clone, Copy, PartialEq, Eq)]
enum Area {
    /// Envoy CPU µs per request and latency: bare, each plugin, the chain.
    Plugins,
    /// Rate-limit decisions per second through meshguard-state vs redis-benchmark.
    State,
    /// Envoy RSS with and without the plugins; .wasm sizes.
    Memory,
    /// Everything above.
    All,
}

/// One Envoy configuration under test and the headers its requests carry.
struct Variant {
    name: String,
    plugins: Vec<Plugin>,
    headers: Vec<String>,
}

fn variants() -> Vec<Variant> {
    let mut variants = vec![Variant {
        name: "bare Envoy".into(),
        plugins: vec![],
        headers: vec![],
    }];
    let built: Vec<String> = built_plugins()
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    if built.iter().any(|n| n == "meshguard_trace") {
        variants.push(Variant {
            name: "trace".into(),
            plugins: vec![Plugin::new("trace", Some(json!({"sampling_ratio": 0.1})))],
            headers: vec![],
        });
    }
    variants
}

fn main() {
    let cli = Cli::parse();
    let mut report = format!(
        "# Meshguard benchmarks\n\n{} on {}; Envoy 1.40 with one worker pinned to core {ENVOY_CORE}, \
         load on core {LOAD_CORE}; {} rounds of {} s, medians (min–max).\n\n",
        chrono_like_now(),
        machine(),
        cli.rounds,
        cli.seconds
    );
    if matches!(cli.area, Area::Plugins | Area::All) {
        report.push_str(&plugins_figure(&cli));
    }
    if matches!(cli.area, Area::State | Area::All) {
        report.push_str(&state_figure(&cli));
    }
    if matches!(cli.area, Area::Memory | Area::All) {
        report.push_str(&memory_figure());
    }
    println!("{report}");
    let dir = workspace_root().join("bench/results");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("latest.md");
    if std::fs::write(&path, &report).is_ok() {
        eprintln!("bench: written to {}", path.display());
    }
}

fn start_pinned(plugins: &[Plugin], concurrency: u32) -> Envoy {
    let mut spec = EnvoySpec::new();
    spec.concurrency = concurrency;
    for plugin in plugins {
        spec = spec.plugin(plugin.clone());
    }
    let envoy = Envoy::start(spec);
    pin(envoy.pid(), ENVOY_CORE);
    envoy
}

fn plugins_figure(cli: &Cli) -> String {
    let variants = variants();
    let mut cpu: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut p50: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut p99: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut rps: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for round in 0..cli.rounds {
        for (i, variant) in variants.iter().enumerate() {
            eprintln!(
                "bench plugins: round {}/{}: {}",
                round + 1,
                cli.rounds,
                variant.name
            );
            let envoy = start_pinned(&variant.plugins, 1);
            let url = format!("http://127.0.0.1:{}/healthz", envoy.port);
            load::wrk(LOAD_CORE, &url, cli.connections, 1, &variant.headers);
            let before = cpu_nanos(envoy.pid());
            let run = load::wrk(
                LOAD_CORE,
                &url,
                cli.connections,
                cli.seconds,
                &variant.headers,
            );
            let spent = cpu_nanos(envoy.pid()).saturating_sub(before);
            if run.errors > 0 {
                eprintln!(
                    "bench: {} answered {} non-2xx responses",
                    variant.name, run.errors
                );
            }
            if run.requests > 0 {
                cpu.entry(i)
                    .or_default()
                    .push(spent as f64 / 1000.0 / run.requests as f64);
                rps.entry(i).or_default().push(run.per_second);
            }
            let latency = load::hey(&HeyRun {
                core: LOAD_CORE,
                url: &url,
                connections: cli.connections,
                seconds: cli.seconds,
                rate: cli.rate,
                headers: &variant.headers,
                method: "GET",
                body: None,
            });
            p50.entry(i).or_default().push(latency.p50_ms);
            p99.entry(i).or_default().push(latency.p99_ms);
        }
    }
    let bare = cpu.get(&0).map(|v| summarize(v).median).unwrap_or(f64::NAN);
    let rows: Vec<Vec<String>> = variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let cpu = summarize(cpu.get(&i).map_or(&[][..], |v| v));
            vec![
                v.name.clone(),
                cpu.show(1),
                format!("{:+.1}", cpu.median - bare),
                format!("{:.2}×", cpu.median / bare),
                summarize(rps.get(&i).map_or(&[][..], |v| v)).show(0),
                summarize(p50.get(&i).map_or(&[][..], |v| v)).show(3),
                summarize(p99.get(&i).map_or(&[][..], |v| v)).show(3),
            ]
        })
        .collect();
    format!(
        "## Envoy CPU per request (direct_response, {} connections)\n\nLatency at {} requests/s.\n\n{}\n",
        cli.connections,
        cli.rate,
        table(
            &["configuration", "CPU µs/request", "Δ vs bare µs", "ratio", "max requests/s", "p50 ms", "p99 ms"],
            &rows
        )
    )
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
    for round in 0..cli.rounds {
        eprintln!("bench state: round {}/{}", round + 1, cli.rounds);
        let run = load::hey(&HeyRun {
            core: LOAD_CORE,
            url: &url,
            connections: 16,
            seconds: cli.seconds,
            rate: 0,
            headers: &secret,
            method: "POST",
            body: Some(body),
        });
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
         meshguard-state runs unpinned beside Redis.\n\n{}\n",
        table(&["path", "decisions/s", "vs service"], &rows)
    )
}

fn memory_figure() -> String {
    let all: Vec<Plugin> = variants().into_iter().flat_map(|v| v.plugins).collect();
    let mut rows = vec![];
    for concurrency in [1, 2] {
        for (name, plugins) in [("bare Envoy", vec![]), ("with the plugins", all.clone())] {
            let envoy = start_pinned(&plugins, concurrency);
            let url = format!("http://127.0.0.1:{}/healthz", envoy.port);
            load::wrk(LOAD_CORE, &url, 8, 1, &[]);
            std::thread::sleep(Duration::from_millis(300));
            rows.push(vec![
                name.to_string(),
                concurrency.to_string(),
                format!("{:.1}", rss_kib(envoy.pid()) as f64 / 1024.0),
            ]);
        }
    }
    let mut out = format!(
        "## Memory\n\nPlugins loaded: {}.\n\n{}\n",
        all.iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        table(&["configuration", "workers", "Envoy RSS MiB"], &rows)
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

fn chrono_like_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
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
