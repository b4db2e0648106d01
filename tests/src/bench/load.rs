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

/// `wrk` with one thread and `connections` connections for `seconds`.
pub fn wrk(
    core: usize,
    url: &str,
    connections: u32,
    seconds: u64,
    headers: &[String],
) -> Throughput {
    let mut command = pinned(core, "wrk");
    command.args([
        "-t1",
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "--timeout",
        "5s",
    ]);
    for header in headers {
        command.args(["-H", header]);
    }
    let output = command
        .arg(url)
        .output()
        .expect("run wrk (scripts/bench installs it)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let per_second = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    let errors = text
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses:"))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or(0);
    Throughput {
        requests,
        per_second,
        errors,
    }
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
        self.statuses
            .iter()
            .filter(|(s, _)| !expected.contains(s))
            .map(|(_, n)| n)
            .sum()
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
    for header in run.headers {
        command.args(["-H", header]);
    }
    if let Some(body) = run.body {
        command.args(["-T", "application/json", "-d", body]);
    }
    let output = command
        .arg(run.url)
        .output()
        .expect("run hey (scripts/bench installs it)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
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
    // `  [200]\t1234 responses`
    let statuses = text
        .lines()
        .filter_map(|l| {
            let rest = l.trim_start().strip_prefix('[')?;
            let (status, count) = rest.split_once(']')?;
            Some((
                status.parse().ok()?,
                count.split_whitespace().next()?.parse().ok()?,
            ))
        })
        .collect();
    Latency {
        p50_ms: percentile("50"),
        p99_ms: percentile("99"),
        per_second,
        statuses,
    }
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
