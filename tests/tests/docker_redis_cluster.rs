//! meshguard-state in cluster mode on a Redis Cluster in containers (three
//! masters with a replica each, envoy/compose/redis-cluster.yaml): a master
//! killed under load, its replica promoted, and the rate-limit decisions go on.
//! The figure: failed requests (no answer or a 5xx) and wrongly admitted ones
//! (a free-tier user admitted past its 10 a minute) during the failover.
//!
//! Run by scripts/test's Docker step:
//!   cargo test -p meshguard-harness --test docker_redis_cluster -- --ignored --nocapture

use meshguard_harness::docker::{docker_ok, Compose, ComposeOptions};
use meshguard_harness::Request;
use std::time::{Duration, Instant};

/// Free tier: 10 tokens a minute (envoy/local/ratelimit.json); /api/data costs 1.
const FREE_PER_MINUTE: usize = 10;
const USERS: usize = 30;
const REQUESTS_PER_USER: usize = 14;

/// `redis-cli ARGS` in the redis-2 container (`docker exec`: quicker than
/// compose's exec, which matters while timing the failover).
fn redis_cli(id: &str, args: &[&str]) -> String {
    let mut all = vec!["exec", id, "redis-cli"];
    all.extend_from_slice(args);
    docker_ok(&all)
}

#[test]
#[ignore = "needs Docker and scripts/images; scripts/test runs it"]
fn a_master_killed_under_load_is_replaced_and_limits_hold() {
    let stack = Compose::up(
        "rediscluster",
        ComposeOptions {
            overlays: vec!["envoy/compose/redis-cluster.yaml".into()],
            ..ComposeOptions::default()
        },
    );
    let node2 = stack.container("redis-2");
    assert!(redis_cli(&node2, &["-h", "redis-1", "cluster", "info"]).contains("cluster_state:ok"));
    let masters_before = redis_cli(&node2, &["cluster", "nodes"])
        .lines()
        .filter(|l| l.contains("master") && !l.contains("fail"))
        .count();
    assert_eq!(masters_before, 3, "three masters");

    let minter = stack.minter();
    let tokens: Vec<String> = (0..USERS)
        .map(|i| minter.mint(&format!("cluster-user-{i}"), "free"))
        .collect();
    let port = stack.port;
    let start = Instant::now();
    // User i starts at i × 300 ms and sends its requests 150 ms apart, so
    // fresh users make their first decisions before, during and after the
    // failover. Each returns when it started and ended, and its answers.
    let users: Vec<_> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, token)| {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300 * i as u64));
                let began = start.elapsed();
                let request = Request::get("/api/data/market/ABC")
                    .header("authorization", &format!("Bearer {token}"));
                let statuses = (0..REQUESTS_PER_USER)
                    .map(|_| {
                        let status = request.send(port).map(|r| r.status).unwrap_or(0);
                        std::thread::sleep(Duration::from_millis(150));
                        status
                    })
                    .collect::<Vec<u16>>();
                (began, start.elapsed(), statuses)
            })
        })
        .collect();

    std::thread::sleep(Duration::from_secs(3));
    let master = stack.container("redis-1");
    let master_ip = docker_ok(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &master,
    ]);
    let killed_at = start.elapsed();
    docker_ok(&["kill", &master]);
    // Promoted: the cluster has marked the killed master failed (after
    // cluster-node-timeout, 2 s), three live masters serve every slot again.
    let promoted = loop {
        let nodes = redis_cli(&node2, &["cluster", "nodes"]);
        let killed_failed = nodes.lines().any(|l| {
            l.contains(&format!("{master_ip}:6379")) && l.contains(",fail") && !l.contains("fail?")
        });
        let live_masters = nodes
            .lines()
            .filter(|l| l.contains("master") && !l.contains("fail"))
            .count();
        if killed_failed
            && live_masters == 3
            && redis_cli(&node2, &["cluster", "info"]).contains("cluster_state:ok")
        {
            break start.elapsed() - killed_at;
        }
        assert!(
            start.elapsed() - killed_at < Duration::from_secs(30),
            "no replica promoted within 30 s:\n{nodes}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    // After the failover, fresh users are limited exactly again once
    // meshguard-state's cluster client has the new topology.
    let mut attempt = 0;
    let exact_again = loop {
        let late = minter.mint(&format!("cluster-late-{attempt}"), "free");
        let request =
            Request::get("/api/data/market/ABC").header("authorization", &format!("Bearer {late}"));
        let statuses: Vec<u16> = (0..FREE_PER_MINUTE + 2)
            .map(|_| request.send(port).map(|r| r.status).unwrap_or(0))
            .collect();
        if statuses.iter().filter(|s| **s == 200).count() == FREE_PER_MINUTE {
            break start.elapsed() - killed_at;
        }
        assert!(
            start.elapsed() - killed_at < Duration::from_secs(60),
            "limits not exact 60 s after the kill: {statuses:?}"
        );
        attempt += 1;
        std::thread::sleep(Duration::from_millis(500));
    };
    let recovered_at = killed_at + exact_again;
    let results: Vec<(Duration, Duration, Vec<u16>)> = users
        .into_iter()
        .map(|u| u.join().expect("user thread"))
        .collect();
    let sent: usize = results.iter().map(|r| r.2.len()).sum();
    let failed = results
        .iter()
        .flat_map(|r| r.2.iter())
        .filter(|s| **s == 0 || **s >= 500)
        .count();
    // Users whose requests overlapped the failover (from the kill until
    // decisions were exact again), and the others.
    let (during, outside): (Vec<_>, Vec<_>) = results
        .iter()
        .partition(|(began, ended, _)| *began < recovered_at && *ended > killed_at);
    let admitted = |users: &[&(Duration, Duration, Vec<u16>)]| -> Vec<usize> {
        users
            .iter()
            .map(|r| r.2.iter().filter(|s| **s == 200).count())
            .collect()
    };
    let extra = |admitted: &[usize]| -> usize {
        admitted
            .iter()
            .map(|a| a.saturating_sub(FREE_PER_MINUTE))
            .sum()
    };
    let (admitted_during, admitted_outside) = (admitted(&during), admitted(&outside));
    println!(
        "FIGURE redis cluster failover: replica promoted {} ms after the kill, rate limits \
         exact again after {} ms; sent {sent}, failed {failed}; wrongly admitted {} for the {} \
         users active during the failover, {} for the {} others",
        promoted.as_millis(),
        exact_again.as_millis(),
        extra(&admitted_during),
        during.len(),
        extra(&admitted_outside),
        outside.len()
    );
    assert_eq!(failed, 0, "requests failed during the failover");
    assert!(!during.is_empty(), "no user was active during the failover");
    // While meshguard-state cannot reach the slot, the plugin decides on its
    // local buckets: a user may get at most one local allowance more.
    assert!(
        admitted_during
            .iter()
            .chain(&admitted_outside)
            .all(|a| *a <= 2 * FREE_PER_MINUTE),
        "a user admitted past twice the limit: {admitted_during:?} {admitted_outside:?}"
    );
}
