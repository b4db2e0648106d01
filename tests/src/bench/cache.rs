//! The cache figure (`scripts/bench cache`): read workloads through the
//! single-module chain to the `data` upstream (`GET /api/data/market/<SYM>`,
//! `public, max-age=2`), with Envoy's file-system cache as shipped, with the
//! in-memory backend for comparison, and without a cache, in one run. Each
//! configuration replays the same request sequence from a cold cache.
//!
//! Hit rate here is what never reached the upstream: 1 − the `data`
//! cluster's requests / the client's requests, so a revalidation (a
//! conditional request answered 304) counts as a miss.

use crate::bench::measure::{cpu_nanos, pin};
use crate::bench::report::{percentile, summarize, table, Summary};
use crate::bench::token::{DevKey, ISSUER};
use crate::envoy::{Cache, Envoy, EnvoySpec, Plugin};
use crate::paths::workspace_root;
use crate::python::{UpstreamOptions, Upstreams};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

const ENVOY_CORE: usize = 0;
const LOAD_CORE: usize = 1;
/// Distinct keys of both workloads.
const KEYS: usize = 1_000;
/// Requests of the Zipf workload (without a cache the upstream answers
/// about 150 a second here: each identified quote is a SQLite write).
const ZIPF_REQUESTS: usize = 10_000;
/// The Zipf exponent: the classic 1 (the k-th key is asked 1/k as often as the first).
const ZIPF_S: f64 = 1.0;
/// The repeat workload: `REPEAT_KEYS` keys, each asked this many times in a
/// row of `REPEAT_WINDOW` keys, so 1 request in 20 (5%) is a key's first.
const REPEAT_KEYS: usize = 500;
const REPEATS: usize = 20;
const REPEAT_WINDOW: usize = 50;

/// One cache setting under test.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Setting {
    None,
    FileSystem,
    Memory,
}

impl Setting {
    fn label(self) -> &'static str {
        match self {
            Setting::None => "no cache",
            Setting::FileSystem => "file-system cache (shipped)",
            Setting::Memory => "in-memory cache (comparison only)",
        }
    }
}

const SETTINGS: [Setting; 3] = [Setting::None, Setting::FileSystem, Setting::Memory];

/// What one replay of a sequence measured.
#[derive(Default, Clone)]
struct Run {
    requests: f64,
    upstream: f64,
    revalidated: f64,
    cpu_us: f64,
    p50_ms: f64,
    p99_ms: f64,
    per_second: f64,
    errors: f64,
}

/// The figure's Markdown, `rounds` replays of each workload per setting.
pub fn figure(rounds: usize, connections: u32) -> String {
    let key = DevKey::generate();
    let token = key.mint("bench-user", "enterprise", "bench-cache");
    let upstreams = Upstreams::start(&["data"], UpstreamOptions::default());
    // The client threads on their own core (the upstreams, started before, are not).
    pin(std::process::id(), LOAD_CORE);
    let dir = tempfile::tempdir().expect("temp dir for the cache figure");
    let workloads = [
        (
            format!("Zipf (s = {ZIPF_S}) over {KEYS} keys, {ZIPF_REQUESTS} requests"),
            zipf_sequence(KEYS, ZIPF_REQUESTS, ZIPF_S, 0x5eed_cace),
        ),
        (
            format!(
                "95% repeats within max-age: {REPEAT_KEYS} keys × {REPEATS} requests, \
                 a key's repeats {REPEAT_WINDOW} requests apart"
            ),
            repeat_sequence(REPEAT_KEYS, REPEATS, REPEAT_WINDOW),
        ),
    ];
    let mut text = format!(
        "## Response cache\n\nThe single-module chain (trace, auth, rate limit, flags) in front of \
         the `data` upstream (two uvicorn hosts, unpinned); `GET /api/data/market/<SYM>` answers \
         `public, max-age=2` with an ETag. Each configuration replays the same sequence from a \
         cold cache from the bench's own keep-alive client ({connections} connections, each sending the next request of the sequence when its last is answered; the bench process on core {LOAD_CORE}); Envoy has \
         one worker on core {ENVOY_CORE}; its CPU per request leaves out what it spends idle (measured for 2 s before each replay). Hit rate: requests that never reached the upstream \
         (a revalidation answered 304 is not a hit). Medians over {rounds} rounds (min–max).\n\n"
    );
    for (w, (name, sequence)) in workloads.iter().enumerate() {
        let paths: Vec<String> = sequence
            .iter()
            .map(|k| format!("/api/data/market/{}", symbol(*k)))
            .collect();
        let mut runs: Vec<Vec<Run>> = vec![Vec::new(); SETTINGS.len()];
        for round in 0..rounds {
            for (i, setting) in SETTINGS.iter().enumerate() {
                // A cold cache for every replay.
                let cache_dir = dir.path().join(format!("cache-{w}-{round}-{i}"));
                runs[i].push(replay(
                    &upstreams,
                    &key,
                    &token,
                    *setting,
                    &cache_dir,
                    &paths,
                    connections,
                ));
            }
        }
        text.push_str(&format!("### {name}\n\n"));
        text.push_str(&workload_table(&runs));
        let firsts = sequence
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len();
        let best = 100.0 * (1.0 - firsts as f64 / sequence.len() as f64);
        text.push_str(&format!(
            "\n{firsts} of the {} requests ask for a key the first time: the best hit rate is \
             {best:.1}%.\n\n",
            sequence.len()
        ));
    }
    text
}

fn workload_table(runs: &[Vec<Run>]) -> String {
    let none_cpu: Vec<f64> = runs[0].iter().map(|r| r.cpu_us).collect();
    let rows: Vec<Vec<String>> = SETTINGS
        .iter()
        .zip(runs)
        .map(|(setting, runs)| {
            let s = |f: fn(&Run) -> f64| summarize(&runs.iter().map(f).collect::<Vec<_>>());
            let hit = s(|r| 100.0 * (1.0 - r.upstream / r.requests.max(1.0)));
            let saved = s(|r| r.requests - r.upstream);
            let cpu = s(|r| r.cpu_us);
            let ratio: Vec<f64> = runs
                .iter()
                .zip(&none_cpu)
                .map(|(r, base)| r.cpu_us / base)
                .collect();
            vec![
                setting.label().to_string(),
                hit.show(1),
                show_count(saved),
                show_count(s(|r| r.revalidated)),
                cpu.show(1),
                format!("{:.2}×", summarize(&ratio).median),
                s(|r| r.p50_ms).show(2),
                s(|r| r.p99_ms).show(2),
                show_count(s(|r| r.per_second)),
                show_count(s(|r| r.errors)),
            ]
        })
        .collect();
    table(
        &[
            "configuration",
            "hit rate %",
            "upstream requests saved",
            "revalidations (304)",
            "Envoy CPU µs/request",
            "CPU vs no cache",
            "p50 ms",
            "p99 ms",
            "requests/s",
            "non-2xx",
        ],
        &rows,
    )
}

fn show_count(s: Summary) -> String {
    format!("{:.0} ({:.0}–{:.0})", s.median, s.min, s.max)
}

/// Starts Envoy with `setting`, replays `paths`, and reads what it cost.
#[allow(clippy::too_many_arguments)]
fn replay(
    upstreams: &Upstreams,
    key: &DevKey,
    token: &str,
    setting: Setting,
    cache_dir: &Path,
    paths: &[String],
    connections: u32,
) -> Run {
    let mut spec = upstreams.add_to(EnvoySpec::new()).plugin(chain(key));
    spec.cache = match setting {
        Setting::None => None,
        Setting::FileSystem => Some(Cache::in_dir(cache_dir)),
        Setting::Memory => Some(Cache {
            path: cache_dir.to_path_buf(),
            memory: true,
        }),
    };
    let envoy = Envoy::start(spec);
    pin(envoy.pid(), ENVOY_CORE);
    let upstream_before = stat(&envoy, "cluster.data.upstream_rq_total");
    let revalidated_before = stat(&envoy, "cluster.data.upstream_rq_304");
    // Envoy's own timers (the plugins' ticks, health checks) cost CPU with no
    // request in flight; over a slow run they would count as per-request cost.
    let idle_start = (cpu_nanos(envoy.pid()), Instant::now());
    std::thread::sleep(std::time::Duration::from_secs(2));
    let idle_per_second = cpu_nanos(envoy.pid()).saturating_sub(idle_start.0) as f64
        / idle_start.1.elapsed().as_secs_f64();
    let cpu_before = cpu_nanos(envoy.pid());
    let started = Instant::now();
    let out = replay_paths(envoy.port, paths, connections, token);
    let cpu = (cpu_nanos(envoy.pid()).saturating_sub(cpu_before) as f64
        - idle_per_second * started.elapsed().as_secs_f64())
    .max(0.0);
    let requests = out.requests.max(1) as f64;
    Run {
        requests,
        upstream: (stat(&envoy, "cluster.data.upstream_rq_total") - upstream_before) as f64,
        revalidated: (stat(&envoy, "cluster.data.upstream_rq_304") - revalidated_before) as f64,
        cpu_us: cpu / requests / 1_000.0,
        p50_ms: out.p50_ms,
        p99_ms: out.p99_ms,
        per_second: out.per_second,
        errors: out.errors as f64,
    }
}

fn stat(envoy: &Envoy, name: &str) -> u64 {
    envoy.stats().get(name).copied().unwrap_or(0)
}

/// `meshguard_chain.wasm` with auth on the bench key, a rate limit the load
/// never reaches, trace, and the seed flags without their sync.
fn chain(key: &DevKey) -> Plugin {
    let path = workspace_root().join("envoy/local/flags.json");
    let mut flags: Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| panic!("read {}", path.display()));
    flags["sync"] = Value::Null;
    let unlimited = json!({"per_minute": 60_000_000u64, "per_hour": 3_600_000_000u64});
    Plugin::new(
        "chain",
        Some(json!({
            "trace": {"sampling_ratio": 0.1},
            "auth": {"issuers": [ISSUER], "jwks": key.jwks()},
            "ratelimit": {
                "mode": "local",
                "local_buckets": "shared",
                "default_tier": "enterprise",
                "tiers": {"enterprise": unlimited},
                "global": null,
            },
            "flags": flags,
        })),
    )
}

struct LoadOut {
    requests: u64,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// Sends `paths` in order over `connections` keep-alive connections (each
/// takes the next path when its previous answer is in) and stops at the end:
/// every configuration gets the same sequence, whatever its speed. (wrk stops its
/// thread after a count but then waits out its duration.)
fn replay_paths(port: u16, paths: &[String], connections: u32, token: &str) -> LoadOut {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let results: Vec<(Vec<f64>, u64)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..connections.max(1))
            .map(|_| scope.spawn(|| client(port, paths, &next, token)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies: Vec<f64> = results
        .iter()
        .flat_map(|(l, _)| l.iter().copied())
        .collect();
    latencies.sort_by(f64::total_cmp);
    let errors = results.iter().map(|(_, e)| e).sum();
    LoadOut {
        requests: latencies.len() as u64,
        per_second: latencies.len() as f64 / elapsed.max(1e-9),
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        errors,
    }
}

/// One connection's share: latencies (ms) of its answers and how many were not 200.
fn client(port: u16, paths: &[String], next: &AtomicUsize, token: &str) -> (Vec<f64>, u64) {
    let (mut latencies, mut errors) = (Vec::new(), 0);
    let mut stream: Option<BufReader<TcpStream>> = None;
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let Some(path) = paths.get(index) else { break };
        let request = format!(
            "GET {path} HTTP/1.1\r\nhost: meshguard.test\r\nauthorization: Bearer {token}\r\n\r\n"
        );
        let sent = Instant::now();
        let status = (0..2).find_map(|_| {
            let reader = match stream.take() {
                Some(reader) => reader,
                None => BufReader::new(TcpStream::connect(("127.0.0.1", port)).ok()?),
            };
            exchange(reader, request.as_bytes()).map(|(status, reader)| {
                stream = reader;
                status
            })
        });
        latencies.push(sent.elapsed().as_secs_f64() * 1_000.0);
        if status != Some(200) {
            errors += 1;
        }
    }
    (latencies, errors)
}

/// Writes one request and reads its answer: the status, and the connection
/// if it stays open.
fn exchange(
    mut reader: BufReader<TcpStream>,
    request: &[u8],
) -> Option<(u16, Option<BufReader<TcpStream>>)> {
    reader.get_mut().write_all(request).ok()?;
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let status: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
    let (mut length, mut close) = (0usize, false);
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            close = true;
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some((status, (!close).then_some(reader)))
}

/// Key `k` as a market symbol: `K` and three letters (`KAAA`, `KAAB`, …).
pub fn symbol(k: usize) -> String {
    let mut letters = [b'A'; 3];
    let mut rest = k;
    for letter in letters.iter_mut().rev() {
        *letter = b'A' + (rest % 26) as u8;
        rest /= 26;
    }
    format!("K{}", String::from_utf8_lossy(&letters))
}

/// `length` keys drawn from a Zipf distribution over `keys` with exponent
/// `s`, from a fixed seed: the same sequence on every run.
pub fn zipf_sequence(keys: usize, length: usize, s: f64, seed: u64) -> Vec<usize> {
    let mut cumulative = Vec::with_capacity(keys);
    let mut total = 0.0;
    for rank in 1..=keys {
        total += 1.0 / (rank as f64).powf(s);
        cumulative.push(total);
    }
    let mut state = seed.max(1);
    (0..length)
        .map(|_| {
            // xorshift64*: a fixed, well-spread sequence without a crate.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let unit =
                (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
            let target = unit * total;
            cumulative.partition_point(|&c| c < target).min(keys - 1)
        })
        .collect()
}

/// Every key asked `repeats` times: the keys in windows of `window`, each
/// window asked round-robin `repeats` times, so a key's repeats are `window`
/// requests apart and one request in `repeats` is a key's first.
pub fn repeat_sequence(keys: usize, repeats: usize, window: usize) -> Vec<usize> {
    let mut sequence = Vec::with_capacity(keys * repeats);
    for start in (0..keys).step_by(window.max(1)) {
        let end = (start + window).min(keys);
        for _ in 0..repeats {
            sequence.extend(start..end);
        }
    }
    sequence
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_are_fixed_and_shaped() {
        let a = zipf_sequence(1_000, 20_000, 1.0, 7);
        assert_eq!(a, zipf_sequence(1_000, 20_000, 1.0, 7));
        let first = a.iter().filter(|&&k| k == 0).count();
        let tenth = a.iter().filter(|&&k| k == 9).count();
        // Zipf s = 1: the first key about ten times as often as the tenth.
        assert!(
            (6..=15).contains(&(first / tenth.max(1))),
            "{first} {tenth}"
        );
        assert!(a.iter().all(|&k| k < 1_000));

        let r = repeat_sequence(1_000, 20, 50);
        assert_eq!(r.len(), 20_000);
        let mut seen = std::collections::HashSet::new();
        let firsts = r.iter().filter(|&&k| seen.insert(k)).count();
        assert_eq!(firsts * 20, r.len(), "5% of requests are a key's first");
    }

    #[test]
    fn symbols_are_distinct_market_symbols() {
        let all: std::collections::HashSet<String> = (0..1_000).map(symbol).collect();
        assert_eq!(all.len(), 1_000);
        assert!(all
            .iter()
            .all(|s| s.chars().all(|c| c.is_ascii_uppercase())));
    }
}
