//! Load generators run as external, pinned processes: `wrk` for maximum
//! throughput, `hey` for latency at a fixed rate, `redis-benchmark` for Redis.

use std::process::Command;

/// One `wrk` run: requests completed and non-2xx/3xx responses.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    pub requests: u64,
    pub per_second: f64,
    pub errors: u64,
}

fn pinned(core: usize, program: &str) -> Command {
    let mut command = Command::new("taskset");
    command.args(["-c", &core.to_string(), program]);
    command
}

/// `wrk` with one thread and `connections` connections for `seconds`, and
/// optionally a Lua script: its standard output.
fn run_wrk(
    core: usize,
    url: &str,
    (connections, seconds): (u32, u64),
    headers: &[String],
    script: Option<&std::path::Path>,
) -> String {
    let mut command = pinned(core, "wrk");
    command.args([
        "-t1",
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "--timeout",
        "5s",
    ]);
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    run_load(command, "wrk", headers, url)
}

/// Runs a load generator (`tool`) with `-H` for each of `headers` against
/// `url`: its standard output.
fn run_load(mut command: Command, tool: &str, headers: &[String], url: &str) -> String {
    for header in headers {
        command.args(["-H", header]);
    }
    let output = command
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("run {tool} (scripts/bench installs it): {e}"));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The number after `label` on wrk's line that starts with it.
fn wrk_figure<T: std::str::FromStr>(text: &str, label: &str, word: usize) -> Option<T> {
    let line = text.lines().find(|l| l.trim_start().starts_with(label))?;
    line.split_whitespace().nth(word)?.parse().ok()
}

/// `wrk` with one thread and `connections` connections for `seconds`.
pub fn wrk(
    core: usize,
    url: &str,
    connections: u32,
    seconds: u64,
    headers: &[String],
) -> Throughput {
    let text = run_wrk(core, url, (connections, seconds), headers, None);
    Throughput {
        requests: text
            .lines()
            .find(|l| l.contains("requests in"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0),
        per_second: wrk_figure(&text, "Requests/sec:", 1).unwrap_or(0.0),
        errors: wrk_figure(&text, "Non-2xx or 3xx responses:", 4).unwrap_or(0),
    }
}

/// A `wrk` run of POSTs: throughput and responses by status.
#[derive(Debug, Clone)]
pub struct PostRun {
    pub per_second: f64,
    pub statuses: Vec<(u16, u64)>,
}

impl PostRun {
    /// Responses whose status is not one of `expected`.
    pub fn unexpected(&self, expected: &[u16]) -> u64 {
        unexpected(&self.statuses, expected)
    }
}

/// Counts statuses in wrk's one thread and prints them at the end
/// (`done` runs in another Lua state: it reads the thread's table).
const COUNT_STATUSES: &str = r#"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
function response(status, headers, body) counts[status] = (counts[status] or 0) + 1 end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("counts")) do
      io.write(string.format("status %d %d\n", status, n))
    end
  end
end
"#;

/// `wrk` (one thread, `connections` connections) POSTing `body` as JSON for
/// `seconds`: as light a load generator as `redis-benchmark` is for Redis,
/// so that on a small machine the figure measures the service, not the client.
pub fn wrk_post(
    core: usize,
    url: &str,
    connections: u32,
    seconds: u64,
    headers: &[String],
    body: &str,
) -> PostRun {
    let lua = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut script = format!(
        "wrk.method = \"POST\"\nwrk.body = \"{}\"\nwrk.headers[\"content-type\"] = \"application/json\"\n",
        lua(body)
    );
    script.push_str(COUNT_STATUSES);
    let file = tempfile::Builder::new()
        .suffix(".lua")
        .tempfile()
        .expect("temporary wrk script");
    std::fs::write(file.path(), script).expect("write the wrk script");
    let text = run_wrk(
        core,
        url,
        (connections, seconds),
        headers,
        Some(file.path()),
    );
    let per_second = wrk_figure(&text, "Requests/sec:", 1).unwrap_or(0.0);
    let statuses = text
        .lines()
        .filter_map(|l| {
            let mut words = l.strip_prefix("status ")?.split_whitespace();
            Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
        })
        .collect();
    PostRun {
        per_second,
        statuses,
    }
}

fn unexpected(statuses: &[(u16, u64)], expected: &[u16]) -> u64 {
    statuses
        .iter()
        .filter(|(status, _)| !expected.contains(status))
        .map(|(_, n)| n)
        .sum()
}

/// Latency percentiles (ms) from `hey` at a fixed total rate.
#[derive(Debug, Clone)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub per_second: f64,
    /// Responses by status (`hey`'s status code distribution).
    pub statuses: Vec<(u16, u64)>,
}

impl Latency {
    /// Responses whose status is not one of `expected`.
    pub fn unexpected(&self, expected: &[u16]) -> u64 {
        unexpected(&self.statuses, expected)
    }
}

pub struct HeyRun<'a> {
    pub core: usize,
    pub url: &'a str,
    pub connections: u32,
    pub seconds: u64,
    /// Total requests per second; 0 for as fast as possible.
    pub rate: u32,
    pub headers: &'a [String],
    pub method: &'a str,
    pub body: Option<&'a str>,
}

pub fn hey(run: &HeyRun) -> Latency {
    let mut command = pinned(run.core, "hey");
    command.args([
        "-z",
        &format!("{}s", run.seconds),
        "-c",
        &run.connections.to_string(),
        "-m",
        run.method,
    ]);
    if run.rate > 0 {
        let per_worker = (run.rate as f64 / run.connections as f64).max(1.0);
        command.args(["-q", &format!("{per_worker:.0}")]);
    }
    if let Some(body) = run.body {
        command.args(["-T", "application/json", "-d", body]);
    }
    let text = run_load(command, "hey", run.headers, run.url);
    let percentile = |p: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{p}% in")))
            .and_then(|l| l.split_whitespace().nth(2)?.parse::<f64>().ok())
            .map_or(f64::NAN, |secs| secs * 1000.0)
    };
    let per_second = text
        .lines()
        .find(|l| l.trim_start().starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    Latency {
        p50_ms: percentile("50"),
        p99_ms: percentile("99"),
        per_second,
        statuses: hey_statuses(&text),
    }
}

/// The status counts of hey's report (`  [200]\t1234 responses`).
fn hey_statuses(text: &str) -> Vec<(u16, u64)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.trim_start().strip_prefix('[')?;
            let (status, count) = rest.split_once(']')?;
            Some((
                status.parse().ok()?,
                count.split_whitespace().next()?.parse().ok()?,
            ))
        })
        .collect()
}

/// `hey` sending exactly `requests` GET requests over `connections`
/// connections, as fast as it can: the status counts.
pub fn hey_count(
    url: &str,
    connections: u32,
    requests: u64,
    headers: &[String],
) -> Vec<(u16, u64)> {
    let mut command = Command::new("hey");
    command.args(["-n", &requests.to_string(), "-c", &connections.to_string()]);
    hey_statuses(&run_load(command, "hey", headers, url))
}

/// Requests per second `redis-benchmark` reports for one command.
pub fn redis_benchmark(
    core: usize,
    port: u16,
    clients: u32,
    pipeline: u32,
    requests: u32,
    command: &[String],
) -> f64 {
    let mut cmd = pinned(core, "redis-benchmark");
    cmd.args([
        "-p",
        &port.to_string(),
        "-c",
        &clients.to_string(),
        "-n",
        &requests.to_string(),
        "-P",
        &pipeline.to_string(),
        "-q",
    ]);
    let output = cmd.args(command).output().expect("run redis-benchmark");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    // With -q, progress lines end in \r and the result comes last.
    text.split(['\r', '\n'])
        .filter_map(|l| {
            let (_, rest) = l.rsplit_once(": ")?;
            rest.split_whitespace().next()?.parse::<f64>().ok()
        })
        .next_back()
        .unwrap_or(0.0)
}
