//! A process's CPU time and memory, read from /proc, and core pinning.

use std::process::Command;

/// CPU time (user + system) of every thread of `pid`, in nanoseconds,
/// from the scheduler's per-thread accounting (`/proc/<pid>/task/*/schedstat`).
pub fn cpu_nanos(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Resident memory of `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Pins every thread of `pid` to `core`.
pub fn pin(pid: u32, core: usize) {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", &core.to_string(), &pid.to_string()])
        .output();
    if !status.is_ok_and(|s| s.status.success()) {
        eprintln!("bench: could not pin pid {pid} to core {core}; figures will be noisier");
    }
}
