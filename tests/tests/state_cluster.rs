//! meshguard-state on a three-node Redis Cluster: per-user scripts stay in one
//! slot (`{u:<id>}` hash tags), and the global bucket, in another slot, is
//! decided in two phases that never admit more than the limit.

mod state_support;

use meshguard_harness::ports::free_port;
use meshguard_harness::state::{StateOptions, StateService};
use meshguard_harness::Process;
use serde_json::json;
use state_support::{Api, As};
use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

struct Cluster {
    ports: Vec<u16>,
    _nodes: Vec<Process>,
    _dir: tempfile::TempDir,
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("cluster dir");
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for &port in &ports {
            // The cluster bus defaults to port + 10000, which may be taken or
            // fall in the kernel's ephemeral range: it gets a free port too.
            let bus = free_port();
            let node_dir = dir.path().join(port.to_string());
            std::fs::create_dir_all(&node_dir).unwrap();
            let mut cmd = Command::new("redis-server");
            cmd.args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--dir",
                &node_dir.to_string_lossy(),
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                &bus.to_string(),
                "--cluster-config-file",
                "nodes.conf",
                "--appendonly",
                "no",
                "--save",
                "",
            ]);
            let mut node = Process::spawn(&format!("redis-{port}"), cmd, &node_dir);
            node.wait_until(Duration::from_secs(10), "answering PING", || {
                redis_cli(port, &["ping"]).trim() == "PONG"
            });
            nodes.push(node);
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in &ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let mut ok = false;
        for _ in 0..100 {
            if ports
                .iter()
                .all(|&p| redis_cli(p, &["cluster", "info"]).contains("cluster_state:ok"))
            {
                ok = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(ok, "cluster never became ok");
        Cluster {
            ports,
            _nodes: nodes,
            _dir: dir,
        }
    }

    fn urls(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[test]
fn the_service_works_on_a_redis_cluster() {
    let cluster = Cluster::start();
    let mut limits = tempfile::NamedTempFile::new().unwrap();
    limits
        .write_all(
            json!({
                "tiers": {"free": {"per_minute": 10, "per_hour": 100},
                          "roomy": {"per_minute": 1000, "per_hour": 100000}},
                "global": {"tokens": 30, "per_seconds": 60}
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
    let service = StateService::start_with(
        &cluster.urls(),
        StateOptions {
            args: vec![
                "--redis-cluster".into(),
                "--limits-file".into(),
                limits.path().to_string_lossy().into_owned(),
            ],
            ..StateOptions::default()
        },
    );
    let api = Arc::new(Api::new(service.url()));
    let plugin = service.plugin_secret.clone();
    let admin = As::Token(&service.admin_token);

    // Per-key limits exact under concurrency, keys spread over the slots.
    let handles: Vec<_> = (0..16)
        .map(|t| {
            let api = Arc::clone(&api);
            let plugin = plugin.clone();
            std::thread::spawn(move || {
                let mut admitted = 0;
                for i in 0..6 {
                    let r = api
                        .post(
                            "/v1/ratelimit/check",
                            As::Token(&plugin),
                            &json!({"key": format!("user-{}", (t + i) % 8), "tier": "roomy"}),
                        )
                        .ok();
                    if r["allowed"] == true {
                        admitted += 1;
                    }
                }
                admitted
            })
        })
        .collect();
    let admitted: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    // 96 requests over 8 keys with 1000/min each: only the global 30/min binds.
    assert!((30..=31).contains(&admitted), "admitted {admitted}");
    let r = api
        .post(
            "/v1/ratelimit/check",
            As::Token(&plugin),
            &json!({"key": "fresh", "tier": "roomy"}),
        )
        .ok();
    assert_eq!(r["allowed"], false);
    let minute = &r["buckets"][0];
    assert_eq!(minute["name"], "minute");
    assert_eq!(
        minute["remaining"], 1000,
        "a refused request keeps the key's tokens"
    );

    // A lease on a cluster is capped by the global bucket too.
    let lease = api
        .post(
            "/v1/ratelimit/lease",
            As::Token(&plugin),
            &json!({"key": "leaser", "tokens": 5, "tier": "roomy"}),
        )
        .ok();
    assert!(lease["granted"].as_u64().unwrap() <= 1, "{lease}");

    // Sessions, revocations and flags each live in one slot.
    for i in 1..=6 {
        api.post(
            "/v1/sessions",
            admin,
            &json!({"user": "zoe", "session_id": format!("s{i}")}),
        )
        .ok();
    }
    let list = api.get("/v1/sessions/zoe", admin).ok();
    assert_eq!(list["sessions"].as_array().unwrap().len(), 5);
    let feed = api
        .get("/v1/revocations/feed?since=0", As::Token(&plugin))
        .ok();
    assert_eq!(feed["sessions"][0]["session_id"], "s1");
    api.put(
        "/v1/flags/f",
        admin,
        &json!({"variants": {"on": true, "off": false}, "default_variant": "off"}),
    )
    .ok();
    let snap = api.get("/v1/flags/snapshot", As::Token(&plugin)).ok();
    assert_eq!(snap["version"], 1);
    let index = api.get("/v1/users/zoe/index", admin).ok();
    assert!(!index["keys"].as_array().unwrap().is_empty());

    // The proxies' consent lookup asks about users of many slots at once
    // (meshguard-gdpr writes each user's hash; `-c` follows the redirects).
    let users: Vec<String> = (0..20).map(|i| format!("consenting-{i}")).collect();
    for user in &users {
        let key = meshguard_api::keys::consents(user);
        let written = redis_cli(
            cluster.ports[0],
            &["-c", "hset", &key, "analytics", r#"{"granted":true}"#],
        );
        assert_eq!(written.trim(), "1", "{key}: {written}");
    }
    let answer = api
        .post(
            "/v1/consents/lookup",
            As::Token(&plugin),
            &json!({"users": users}),
        )
        .ok();
    for user in &users {
        assert_eq!(
            answer["consents"][user],
            json!(["analytics"]),
            "{user}: {answer}"
        );
    }
}
