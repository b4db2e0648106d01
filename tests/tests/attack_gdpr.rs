//! Attacks on meshguard-gdpr and on what it promises, against the real
//! binary, Redis, meshguard-state and the Python upstreams:
//! - an erasure that leaves the user behind (the rate limiter's `sub:` keys,
//!   the revocation feed, the state audit stream, keys without a TTL);
//! - an id the upstream route cannot match reported as "no data";
//! - the audit log cut at its head or its tail;
//! - 300 parallel wrong verification codes;
//! - a legal hold added while an erasure waits to resume;
//! - formulas in a CSV export;
//! - files other local users can read;
//! - a request for someone else, filed with the requester's own address.

use meshguard_harness::gdpr::Gdpr;
use meshguard_harness::python::{UpstreamOptions, Upstreams};
use meshguard_harness::state::StateService;
use meshguard_harness::{Redis, Request};
use meshguard_policy::ratelimit::client::bucket_key;
use serde_json::{json, Value};
use std::time::Duration;

fn http(method: &str, url: &str, auth: &str, body: Option<Value>) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();
    let auth = format!("Bearer {auth}");
    let mut response = match (method, body) {
        ("POST", Some(b)) => agent.post(url).header("authorization", &auth).send_json(b),
        ("POST", None) => agent.post(url).header("authorization", &auth).send_empty(),
        ("DELETE", _) => agent.delete(url).header("authorization", &auth).call(),
        _ => agent.get(url).header("authorization", &auth).call(),
    }
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Percent-encodes every byte but the unreserved ones (as the connectors do).
fn encode(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

struct Stack {
    gdpr: Gdpr,
    state: StateService,
    upstreams: Upstreams,
    redis: Redis,
}

impl Stack {
    fn start() -> Stack {
        let redis = Redis::start();
        let state = StateService::start(&redis);
        let upstreams = Upstreams::start(&["ml", "data"], UpstreamOptions::default());
        let gdpr = Gdpr::new(&redis.url(), &state.url(), &state.admin_token);
        let stack = Stack {
            gdpr,
            state,
            upstreams,
            redis,
        };
        stack.connectors(None);
        stack
    }

    fn upstream_url(&self, service: &str) -> String {
        format!(
            "http://127.0.0.1:{}",
            self.upstreams.instance(service, 0).port
        )
    }

    /// ml and data, straight to their first instance; `ml_url` overrides ml's.
    fn connectors(&self, ml_url: Option<&str>) {
        let token_file = self.gdpr.dir.join("upstream.token");
        std::fs::write(&token_file, &self.upstreams.gdpr_token).unwrap();
        let direct = |s: &str| format!("{}/gdpr/users/{{id}}", self.upstream_url(s));
        self.gdpr.set_connectors(json!([
            {"name": "ml", "url": ml_url.map_or_else(|| direct("ml"), String::from),
             "token_file": token_file, "timeout_ms": 10000},
            {"name": "data", "url": direct("data"), "token_file": token_file},
        ]));
    }

    fn state(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = http(
            method,
            &format!("{}{path}", self.state.url()),
            &self.state.admin_token,
            body,
        );
        assert_eq!(status, 200, "{method} {path}: {v}");
        v
    }

    /// Gives `user` data everywhere the mesh keeps it, written the way each
    /// component writes it (the rate limiter checks `sub:<user>`).
    fn populate(&self, user: &str) {
        for (sid, lat) in [("s-1", 52.52), ("s-2", 48.85)] {
            self.state(
                "POST",
                "/v1/sessions",
                Some(
                    json!({"user": user, "session_id": sid, "user_agent": "Firefox/140",
                            "ip": "203.0.113.7", "geo": {"lat": lat, "lon": 2.35}}),
                ),
            );
        }
        // A session revocation: a feed entry, an audit event, an index entry.
        self.state(
            "DELETE",
            &format!("/v1/sessions/{}/s-1", encode(user)),
            None,
        );
        let (status, v) = http(
            "POST",
            &format!("{}/v1/ratelimit/check", self.state.url()),
            &self.state.plugin_secret,
            Some(json!({"key": bucket_key("sub", user), "tier": "free"})),
        );
        assert_eq!(status, 200, "{v}");
        self.gdpr.ok(&[
            "consent",
            "grant",
            &format!("--user={user}"),
            "--purpose",
            "analytics",
            "--notice-version",
            "v3",
            "--method",
            "web-form",
        ]);
        self.ml_record(user);
    }

    fn ml_record(&self, user: &str) {
        let r = self
            .upstreams
            .instance("ml", 0)
            .send(
                &Request::post("/predict", r#"{"features": [1.5, 2.0]}"#)
                    .header("content-type", "application/json")
                    .header("x-auth-sub", user),
            )
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }

    /// The ml upstream's records of `user`, asked with the id encoded.
    fn ml_records(&self, user: &str) -> Vec<Value> {
        let (status, v) = http(
            "GET",
            &format!("{}/gdpr/users/{}", self.upstream_url("ml"), encode(user)),
            &self.upstreams.gdpr_token,
            None,
        );
        assert_eq!(status, 200, "the ml upstream must answer for {user:?}: {v}");
        assert_eq!(v["user_id"], user, "{v}");
        v["records"].as_array().cloned().unwrap_or_default()
    }

    fn redis(&self) -> redis::Connection {
        redis::Client::open(self.redis.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// Every key and every value in Redis as text, one line per key.
    fn dump(&self) -> Vec<(String, String)> {
        let mut con = self.redis();
        let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
        keys.sort();
        let mut out = Vec::new();
        for key in keys {
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut con).unwrap();
            let value = match kind.as_str() {
                "string" => redis::cmd("GET")
                    .arg(&key)
                    .query::<Option<String>>(&mut con)
                    .unwrap()
                    .unwrap_or_default(),
                "hash" => format!(
                    "{:?}",
                    redis::cmd("HGETALL")
                        .arg(&key)
                        .query::<Vec<String>>(&mut con)
                        .unwrap()
                ),
                "set" => format!(
                    "{:?}",
                    redis::cmd("SMEMBERS")
                        .arg(&key)
                        .query::<Vec<String>>(&mut con)
                        .unwrap()
                ),
                "zset" => format!(
                    "{:?}",
                    redis::cmd("ZRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .query::<Vec<String>>(&mut con)
                        .unwrap()
                ),
                "list" => format!(
                    "{:?}",
                    redis::cmd("LRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .query::<Vec<String>>(&mut con)
                        .unwrap()
                ),
                "stream" => format!(
                    "{:?}",
                    redis::cmd("XRANGE")
                        .arg(&key)
                        .arg("-")
                        .arg("+")
                        .query::<Vec<(String, Vec<String>)>>(&mut con)
                        .unwrap()
                ),
                other => panic!("{key}: unexpected type {other}"),
            };
            out.push((key, value));
        }
        out
    }

    fn erase(&self, user: &str) -> Value {
        let id = self.gdpr.verified_request("erasure", user);
        let run = self.gdpr.run(&["erase", &id]);
        assert_eq!(run.status, 0, "erase: {}", run.stderr);
        self.gdpr.ok(&["request", "status", &id])
    }
}

#[test]
fn erasure_leaves_no_key_no_stream_entry_and_no_ttl_less_key_naming_the_user() {
    let stack = Stack::start();
    let (user, other) = ("alice-7f3", "bob-7f3");
    stack.populate(user);
    stack.populate(other);
    let limited = bucket_key("sub", user);

    // Every key naming the user expires on its own, except the consents
    // mirror, which is deleted with the user.
    let mut con = stack.redis();
    let named: Vec<String> = stack
        .dump()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.contains(user))
        .collect();
    assert!(
        named
            .iter()
            .any(|k| k.contains(&format!("{{u:{limited}}}:rl:"))),
        "the rate limiter's buckets: {named:?}"
    );
    assert!(named.iter().any(|k| k.ends_with(":index")), "{named:?}");
    for key in &named {
        let ttl: i64 = redis::cmd("PTTL").arg(key).query(&mut con).unwrap();
        if key.ends_with(":consents") {
            continue;
        }
        assert!(ttl > 0, "{key} lives forever (PTTL {ttl})");
    }
    // The index the rate limiter writes is the one erasure reads.
    let index: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("mg:{{u:{limited}}}:index"))
        .query(&mut con)
        .unwrap();
    assert!(
        index.iter().any(|e| e.contains(":rl:")) && index.iter().any(|e| e.ends_with(":sessions")),
        "one index per user: {index:?}"
    );
    let cursor_before = stack.state("GET", "/v1/revocations/feed?since=0", None)["cursor"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    drop(con);

    let done = stack.erase(user);
    assert_eq!(done["status"], "completed", "{done}");

    // Nothing in Redis names the user, in clear or in the rate limiter's
    // form: not a key name, not a value, not a stream entry. The one
    // exception is the not-before cutoff that keeps the user's tokens
    // refused (a field of mg:{rev}:users, retained until `sweep`).
    for (key, value) in stack.dump() {
        assert!(
            !key.contains(user),
            "key {key} names the erased user after erasure"
        );
        let mut value = value;
        if key == "mg:{rev}:users" {
            let needle = format!("\"{user}\", ");
            assert!(value.contains(&needle), "the cutoff is kept: {value}");
            value = value.replace(&needle, "");
        }
        assert!(
            !value.contains(user) && !value.contains(&limited),
            "{key} still names the erased user: {value}"
        );
    }
    // The other user is untouched.
    assert!(stack
        .dump()
        .iter()
        .any(|(k, _)| k.contains(&bucket_key("sub", other))));
    assert_eq!(stack.ml_records(user), Vec::<Value>::new());
    assert_eq!(stack.ml_records(other).len(), 1);

    // A proxy whose cursor lies before the removed feed entries reloads a
    // snapshot, which still carries the cutoff: the erasure revoked the
    // user's tokens and scrubbing the feed did not bring them back.
    let feed = stack.state(
        "GET",
        &format!("/v1/revocations/feed?since={cursor_before}"),
        None,
    );
    assert_eq!(feed["type"], "snapshot", "{feed}");
    assert!(
        feed["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["sub"] == user),
        "{feed}"
    );
    assert!(stack.gdpr.ok(&["audit", "verify"])["ok"] == true);
}

#[test]
fn an_id_the_route_cannot_match_is_no_answer_and_a_slash_reaches_the_upstream() {
    let stack = Stack::start();
    let user = "team/carol";
    stack.ml_record(user);
    assert_eq!(stack.ml_records(user).len(), 1);
    let done = stack.erase(user);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        stack.ml_records(user),
        Vec::<Value>::new(),
        "reported erased while the records stay"
    );

    // A connector whose route does not match answers 404: that is no
    // statement about the user, so the erasure fails instead of completing.
    let user = "dave-404";
    stack.ml_record(user);
    stack.connectors(Some(&format!(
        "{}/no-such-route/{{id}}",
        stack.upstream_url("ml")
    )));
    let id = stack.gdpr.verified_request("erasure", user);
    let run = stack.gdpr.run(&["erase", &id]);
    assert_ne!(run.status, 0, "{}", run.stdout);
    assert!(run.stderr.contains("404"), "{}", run.stderr);
    assert_eq!(
        stack.gdpr.ok(&["request", "status", &id])["status"],
        "failed"
    );
    let export_id = stack.gdpr.verified_request("access", user);
    let export = stack.gdpr.run(&["export", &export_id]);
    assert_ne!(
        export.status, 0,
        "an export missing ml's records: {}",
        export.stdout
    );
    assert_eq!(stack.ml_records(user).len(), 1);
}

#[test]
fn a_hold_added_while_an_erasure_waits_to_resume_is_honoured() {
    let stack = Stack::start();
    let user = "erin-hold";
    stack.populate(user);
    // ml unreachable: the erasure fails at its connector step.
    stack.connectors(Some("http://127.0.0.1:9/gdpr/users/{id}"));
    let id = stack.gdpr.verified_request("erasure", user);
    let run = stack.gdpr.run(&["erase", &id]);
    assert_ne!(run.status, 0);
    assert_eq!(
        stack.gdpr.ok(&["request", "status", &id])["status"],
        "failed"
    );

    stack.gdpr.ok(&[
        "hold",
        "add",
        "--user",
        user,
        "--category",
        "upstream.ml",
        "--reason",
        "Art. 17(3)(e): claim 2026-7",
    ]);
    stack.connectors(None);
    let resumed = stack.gdpr.ok(&["erase", &id]);
    assert_eq!(resumed["request"]["status"], "completed", "{resumed}");
    let ml = resumed["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "connector:ml")
        .cloned()
        .unwrap();
    assert_eq!(ml["status"], "held", "{ml}");
    assert_eq!(stack.ml_records(user).len(), 1, "the held records stay");
}

#[test]
fn csv_exports_start_no_formula() {
    let stack = Stack::start();
    for user in [
        "=HYPERLINK(\"http://evil.example\",\"x\")",
        "@SUM(1+1)",
        "+1-2",
        "-3+4",
    ] {
        stack.populate(user);
        let id = stack.gdpr.verified_request("access", user);
        let exported = stack.gdpr.ok(&["export", &id, "--format", "csv"]);
        let path = exported["path"]
            .as_str()
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| panic!("no path in {exported}"));
        let bytes = std::fs::read(&path).unwrap();
        let mut reader = csv::Reader::from_reader(bytes.as_slice());
        let mut cells = 0;
        for row in reader.records() {
            for cell in row.unwrap().iter() {
                cells += 1;
                assert!(
                    !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                    "a spreadsheet would run {cell:?}"
                );
            }
        }
        assert!(cells > 20);
        // And the package still reads back to the same subject.
        let inspected = stack.gdpr.ok(&["inspect-package", &path.to_string_lossy()]);
        assert_eq!(inspected["subject"], user);
    }
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn the_database_key_outbox_and_packages_are_private() {
    let stack = Stack::start();
    let user = "frank-perm";
    stack.populate(user);
    let id = stack.gdpr.verified_request("access", user);
    let exported = stack.gdpr.ok(&["export", &id]);
    let package = std::path::PathBuf::from(exported["path"].as_str().unwrap());
    let dir = &stack.gdpr.dir;
    let mut files = vec![stack.gdpr.db_path(), stack.gdpr.key_path(), package.clone()];
    for suffix in ["-wal", "-shm"] {
        let p = dir.join(format!("gdpr.db{suffix}"));
        if p.exists() {
            files.push(p);
        }
    }
    files.extend(
        std::fs::read_dir(stack.gdpr.outbox())
            .unwrap()
            .map(|e| e.unwrap().path()),
    );
    for f in &files {
        assert_eq!(mode(f), 0o600, "{} is mode {:o}", f.display(), mode(f));
    }
    for d in [package.parent().unwrap(), stack.gdpr.outbox().as_path()] {
        assert_eq!(mode(d), 0o700, "{} is mode {:o}", d.display(), mode(d));
    }
}

/// A meshguard-gdpr with `n` audit entries (`hold add`, no Redis needed).
fn logged(n: usize) -> Gdpr {
    let g = Gdpr::new("redis://127.0.0.1:1/", "http://127.0.0.1:1", "unused");
    for i in 0..n {
        g.ok(&[
            "hold",
            "add",
            "--user",
            &format!("u{i}"),
            "--category",
            "sessions",
            "--reason",
            "Art. 17(3)(b)",
        ]);
    }
    assert_eq!(g.ok(&["audit", "verify"])["ok"], true);
    g
}

fn sql(g: &Gdpr, statements: &str) {
    let conn = rusqlite::Connection::open(g.db_path()).unwrap();
    conn.execute_batch(statements).unwrap();
}

fn verify_fails(g: &Gdpr, what: &str) {
    let run = g.run(&["audit", "verify"]);
    assert_ne!(
        run.status, 0,
        "{what} passed `audit verify`: {}",
        run.stdout
    );
}

#[test]
fn cutting_the_audit_log_at_either_end_fails_verify() {
    // The tail after the last checkpoint.
    let g = logged(40);
    sql(&g, "DELETE FROM audit WHERE seq > 32;");
    verify_fails(&g, "the tail cut back to the last checkpoint");

    // The tail and the checkpoint inside it.
    let g = logged(40);
    sql(
        &g,
        "DELETE FROM audit WHERE seq > 20; DELETE FROM checkpoints WHERE seq > 20;",
    );
    verify_fails(&g, "the tail cut with its checkpoint");

    // The head, with an anchor made up to start the chain after the cut.
    let g = logged(40);
    sql(
        &g,
        "INSERT INTO anchor (one, seq, hash) SELECT 1, seq, hash FROM audit WHERE seq = 10;
         DELETE FROM audit WHERE seq <= 10;",
    );
    verify_fails(&g, "the head cut behind a forged anchor");

    // The head up to and with the first checkpoint.
    let g = logged(40);
    sql(
        &g,
        "INSERT INTO anchor (one, seq, hash) SELECT 1, seq, hash FROM audit WHERE seq = 32;
         DELETE FROM audit WHERE seq <= 32; DELETE FROM checkpoints WHERE seq <= 32;",
    );
    verify_fails(&g, "the head cut with its checkpoint");
}

#[test]
fn three_hundred_parallel_wrong_codes_lock_after_five() {
    let g = Gdpr::new("redis://127.0.0.1:1/", "http://127.0.0.1:1", "unused");
    let server = g.serve(&[]);
    g.ok(&[
        "contact",
        "set",
        "--user",
        "grace",
        "--email",
        "grace@example.org",
        "--source",
        "account 9",
    ]);
    let created = g.ok(&["request", "create", "--kind", "access", "--user", "grace"]);
    let id = created["id"].as_str().unwrap().to_string();
    let code = g.code_for(&id);
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let url = format!("{}/v1/requests/{id}/verify", server.url());
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..30)
            .map(|_| {
                let (url, wrong, token) = (&url, &wrong, &server.admin_token);
                scope.spawn(move || {
                    (0..10)
                        .map(|_| http("POST", url, token, Some(json!({"code": wrong}))).0)
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(statuses.len(), 300);
    assert!(
        statuses.iter().all(|s| *s == 400 || *s == 409),
        "{statuses:?}"
    );
    // Exactly five guesses were weighed: four "wrong, attempts left", one
    // "wrong, now locked"; every other was refused as locked.
    let failures = g
        .ok(&["audit", "show"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "verification.failed" || e["action"] == "verification.locked")
        .count();
    assert_eq!(failures, 5, "wrong codes counted: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 400).count(), 4);
    // Even the right code is refused now.
    let (status, v) = http(
        "POST",
        &url,
        &server.admin_token,
        Some(json!({"code": code})),
    );
    assert_eq!(status, 409, "{v}");
}

#[test]
fn an_operator_request_goes_to_the_subjects_own_address() {
    let g = Gdpr::new("redis://127.0.0.1:1/", "http://127.0.0.1:1", "unused");
    // The requester cannot name the address the code goes to.
    let typed = g.fails(&[
        "request",
        "create",
        "--kind",
        "erasure",
        "--user",
        "heidi",
        "--email",
        "attacker@example.org",
    ]);
    assert!(typed.contains("--email"), "{typed}");
    // Without an address on the subject's record there is nothing to verify with.
    let none = g.fails(&["request", "create", "--kind", "erasure", "--user", "heidi"]);
    assert!(none.contains("no contact address on record"), "{none}");
    g.ok(&[
        "contact",
        "set",
        "--user",
        "heidi",
        "--email",
        "heidi@example.org",
        "--source",
        "account 31, address verified at sign-up",
    ]);
    let created = g.ok(&["request", "create", "--kind", "erasure", "--user", "heidi"]);
    let id = created["id"].as_str().unwrap();
    let mail = std::fs::read_dir(g.outbox())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .find(|m| m.contains(id))
        .unwrap();
    assert!(mail.contains("To: heidi@example.org"), "{mail}");
}

#[test]
fn the_self_service_path_takes_the_subject_from_the_proxy_only() {
    let g = Gdpr::new("redis://127.0.0.1:1/", "http://127.0.0.1:1", "unused");
    let port = meshguard_harness::ports::free_port();
    let listen = format!("127.0.0.1:{port}");
    let _server = g.serve(&["--self-listen", &listen]);
    let send = |request: Request| {
        let mut r = Err(std::io::Error::other("not tried"));
        for _ in 0..50 {
            r = request.send(port);
            if r.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        r.unwrap()
    };
    // No verified subject: refused.
    let anonymous = send(
        Request::post("/privacy/requests", r#"{"kind": "access"}"#)
            .header("content-type", "application/json"),
    );
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    // The subject the auth plugin verified files for themselves, verified at once.
    let filed = send(
        Request::post("/privacy/requests", r#"{"kind": "access"}"#)
            .header("content-type", "application/json")
            .header("x-auth-sub", "ivan"),
    );
    assert_eq!(filed.status, 201, "{}", filed.text());
    let request = filed.json();
    assert_eq!(request["status"], "verified");
    let id = request["id"].as_str().unwrap();
    // Someone else cannot see it (not found, not forbidden: no oracle).
    let other =
        send(Request::get(&format!("/privacy/requests/{id}")).header("x-auth-sub", "mallory"));
    assert_eq!(other.status, 404, "{}", other.text());
    let own = send(Request::get(&format!("/privacy/requests/{id}")).header("x-auth-sub", "ivan"));
    assert_eq!(own.status, 200, "{}", own.text());
    // The subject records their own address; an operator-filed request
    // about them then mails the code there.
    let put = |sub: Option<&str>| {
        let mut r = Request::post("/privacy/contact", r#"{"email": "ivan@example.org"}"#)
            .header("content-type", "application/json");
        r.method = "PUT".into();
        if let Some(sub) = sub {
            r = r.header("x-auth-sub", sub);
        }
        send(r)
    };
    assert_eq!(put(None).status, 401);
    let set = put(Some("ivan"));
    assert_eq!(set.status, 200, "{}", set.text());
    let created = g.ok(&["request", "create", "--kind", "erasure", "--user", "ivan"]);
    assert_eq!(created["email"], "ivan@example.org");
    // A client-chosen `user` field is refused, not used.
    let smuggled = send(
        Request::post(
            "/privacy/requests",
            r#"{"kind": "access", "user": "victim"}"#,
        )
        .header("content-type", "application/json")
        .header("x-auth-sub", "ivan"),
    );
    assert_eq!(smuggled.status, 400, "{}", smuggled.text());
}
