//! meshguard-gdpr against the real pieces: Redis, meshguard-state, the
//! Python upstreams behind Envoy. A user's sessions, revocations, counters,
//! consents and upstream records are exported in JSON, CSV and XML (parsed
//! back field by field) and erased (read back: gone), with resume after a
//! kill, legal holds and an HMAC proof.

use meshguard_harness::gdpr::Gdpr;
use meshguard_harness::ports::free_port;
use meshguard_harness::python::{UpstreamOptions, Upstreams};
use meshguard_harness::state::StateService;
use meshguard_harness::{Envoy, EnvoySpec, Redis, Request};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::TcpListener;
use std::time::{Duration, Instant};

struct Stack {
    gdpr: Gdpr,
    /// Envoy's GDPR data path listener.
    gdpr_path: u16,
    envoy: Envoy,
    state: StateService,
    upstreams: Upstreams,
    redis: Redis,
}

fn http(method: &str, url: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let auth = format!("Bearer {token}");
    let mut response = match (method, body) {
        ("POST", Some(b)) => agent.post(url).header("authorization", &auth).send_json(b),
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

impl Stack {
    fn start() -> Stack {
        let redis = Redis::start();
        let state = StateService::start(&redis);
        let upstreams = Upstreams::start(&["ml", "data"], UpstreamOptions::default());
        // The upstreams' data-subject endpoints are on Envoy's GDPR data
        // path listener only, never on the public one.
        let mut spec = upstreams.add_to(EnvoySpec::new());
        let gdpr_path = free_port();
        spec.gdpr_listener_port = Some(gdpr_path);
        let envoy = Envoy::start(spec);
        let gdpr = Gdpr::new(&redis.url(), &state.url(), &state.admin_token);
        let stack = Stack {
            gdpr,
            gdpr_path,
            envoy,
            state,
            upstreams,
            redis,
        };
        stack.connectors(None);
        stack
    }

    /// Both connectors through Envoy; `ml_url` overrides ml's URL.
    fn connectors(&self, ml_url: Option<&str>) {
        let token_file = self.gdpr.dir.join("upstream.token");
        std::fs::write(&token_file, &self.upstreams.gdpr_token).unwrap();
        let through_envoy = |service: &str| {
            format!(
                "http://127.0.0.1:{}/api/{service}/gdpr/users/{{id}}",
                self.gdpr_path_port()
            )
        };
        self.gdpr.set_connectors(json!([
            {"name": "ml", "url": ml_url.map_or_else(|| through_envoy("ml"), String::from),
             "token_file": token_file, "timeout_ms": 60000,
             "purposes": ["fraud-resistant scoring"], "retention": "90 days"},
            {"name": "data", "url": through_envoy("data"), "token_file": token_file},
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

    /// Gives `user` data everywhere the policy layer and the upstreams keep it.
    fn populate(&self, user: &str) {
        for (sid, lat) in [("s-1", 52.52), ("s-2", 52.53)] {
            self.state("POST", "/v1/sessions", Some(json!({
                "user": user, "session_id": sid, "device_id": "laptop-7", "user_agent": "Firefox/140",
                "ip": "203.0.113.7", "geo": {"lat": lat, "lon": 13.40}})));
        }
        self.state("DELETE", &format!("/v1/sessions/{user}/s-1"), None);
        let (status, v) = http(
            "POST",
            &format!("{}/v1/ratelimit/check", self.state.url()),
            &self.state.plugin_secret,
            Some(json!({"key": format!("sub:{user}"), "tier": "free"})),
        );
        assert_eq!(status, 200, "{v}");
        self.gdpr.ok(&[
            "consent",
            "grant",
            "--user",
            user,
            "--purpose",
            "analytics",
            "--notice-version",
            "v3",
            "--method",
            "web-form",
        ]);
        self.gdpr.ok(&[
            "consent",
            "grant",
            "--user",
            user,
            "--purpose",
            "marketing",
            "--notice-version",
            "v3",
            "--method",
            "web-form",
        ]);
        self.gdpr.ok(&[
            "consent",
            "withdraw",
            "--user",
            user,
            "--purpose",
            "marketing",
            "--notice-version",
            "v3",
            "--method",
            "email",
        ]);
        let r = self.envoy.send(
            &Request::post("/api/ml/predict", r#"{"features": [1.5, 2.0]}"#)
                .header("content-type", "application/json")
                .header("x-auth-sub", user),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let r = self
            .envoy
            .send(&Request::get("/api/data/market/ACME").header("x-auth-sub", user));
        assert_eq!(r.status, 200, "{}", r.text());
    }

    fn upstream_records(&self, service: &str, user: &str) -> Vec<Value> {
        let r = Request::get(&format!("/api/{service}/gdpr/users/{user}"))
            .header(
                "authorization",
                &format!("Bearer {}", self.upstreams.gdpr_token),
            )
            .send(self.gdpr_path_port())
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["records"].as_array().cloned().unwrap_or_default()
    }

    fn gdpr_path_port(&self) -> u16 {
        self.gdpr_path
    }

    fn redis(&self) -> redis::Connection {
        redis::Client::open(self.redis.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    fn user_keys(&self, user: &str) -> Vec<String> {
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("mg:{{u:sub:{user}}}:*"))
            .query(&mut self.redis())
            .unwrap();
        keys.sort();
        keys
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    source: String,
    category: String,
    location: String,
    field: String,
    value: String,
}

struct Parsed {
    subject: String,
    categories: BTreeSet<String>,
    purposes_per_category: Vec<(String, usize)>,
    rights: usize,
    records: BTreeSet<Row>,
}

fn parse_json(bytes: &[u8]) -> Parsed {
    let v: Value = serde_json::from_slice(bytes).unwrap();
    let s = |x: &Value| x.as_str().unwrap().to_string();
    Parsed {
        subject: s(&v["subject"]),
        categories: v["categories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| s(&c["category"]))
            .collect(),
        purposes_per_category: v["categories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (s(&c["category"]), c["purposes"].as_array().unwrap().len()))
            .collect(),
        rights: v["rights"].as_array().unwrap().len(),
        records: v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| Row {
                source: s(&r["source"]),
                category: s(&r["category"]),
                location: s(&r["location"]),
                field: s(&r["field"]),
                value: s(&r["value"]),
            })
            .collect(),
    }
}

fn parse_csv(bytes: &[u8]) -> Parsed {
    let mut reader = csv::Reader::from_reader(bytes);
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        ["section", "source", "category", "location", "field", "value"]
    );
    let mut p = Parsed {
        subject: String::new(),
        categories: BTreeSet::new(),
        purposes_per_category: Vec::new(),
        rights: 0,
        records: BTreeSet::new(),
    };
    for row in reader.records() {
        let row = row.unwrap();
        // A leading `'` keeps a spreadsheet from running a cell as a formula.
        let c = |i: usize| {
            let v = row.get(i).unwrap();
            v.strip_prefix('\'').unwrap_or(v).to_string()
        };
        match row.get(0).unwrap() {
            "package" if &row[4] == "subject" => p.subject = c(5),
            "category" => {
                if p.categories.insert(c(2)) {
                    p.purposes_per_category.push((c(2), 0));
                }
                if &row[4] == "purpose" {
                    p.purposes_per_category.last_mut().unwrap().1 += 1;
                }
            }
            "right" => p.rights += 1,
            "record" => {
                p.records.insert(Row {
                    source: c(1),
                    category: c(2),
                    location: c(3),
                    field: c(4),
                    value: c(5),
                });
            }
            _ => {}
        }
    }
    p
}

fn parse_xml(bytes: &[u8]) -> Parsed {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut p = Parsed {
        subject: String::new(),
        categories: BTreeSet::new(),
        purposes_per_category: Vec::new(),
        rights: 0,
        records: BTreeSet::new(),
    };
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut json_encoded = false;
    let mut row: Vec<String> = Vec::new();
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).unwrap() {
            Event::Start(e) => {
                json_encoded = e
                    .attributes()
                    .flatten()
                    .any(|a| a.key.as_ref() == b"encoding" && a.value.as_ref() == b"json");
                path.push(String::from_utf8(e.name().as_ref().to_vec()).unwrap());
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.unescape().unwrap()),
            Event::End(_) => {
                let name = path.pop().unwrap();
                let parent = path.last().cloned().unwrap_or_default();
                let value = if json_encoded {
                    serde_json::from_str::<String>(&text).unwrap()
                } else {
                    text.clone()
                };
                json_encoded = false;
                match (parent.as_str(), name.as_str()) {
                    ("export", "subject") => p.subject = value,
                    ("category", "name") => {
                        p.categories.insert(value.clone());
                        p.purposes_per_category.push((value, 0));
                    }
                    ("category", "purpose") => p.purposes_per_category.last_mut().unwrap().1 += 1,
                    ("rights", "right") => p.rights += 1,
                    ("record", _) => row.push(value),
                    ("records", "record") => {
                        let [source, category, location, field, value]: [String; 5] =
                            std::mem::take(&mut row).try_into().unwrap();
                        p.records.insert(Row {
                            source,
                            category,
                            location,
                            field,
                            value,
                        });
                    }
                    _ => {}
                }
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    p
}

fn find<'a>(p: &'a Parsed, location: &str, field: &str) -> &'a Row {
    p.records
        .iter()
        .find(|r| r.location == location && r.field == field)
        .unwrap_or_else(|| panic!("no record {location} / {field:?} in {:#?}", p.records))
}

#[test]
fn a_complete_export_in_json_csv_and_xml() {
    let stack = Stack::start();
    let user = "alice-export";
    stack.populate(user);
    let id = stack.gdpr.verified_request("access", user);
    let mut parsed = Vec::new();
    for (format, parse) in [
        ("json", parse_json as fn(&[u8]) -> Parsed),
        ("csv", parse_csv),
        ("xml", parse_xml),
    ] {
        let out = stack.gdpr.ok(&["export", &id, "--format", format]);
        assert!(out["link"].as_str().unwrap().contains("/v1/packages/"));
        let bytes = std::fs::read(out["path"].as_str().unwrap()).unwrap();
        parsed.push((format, parse(&bytes)));
    }
    let (_, json_pkg) = &parsed[0];
    for (format, p) in &parsed {
        assert_eq!(p.subject, user, "{format}");
        assert_eq!(
            p.records, json_pkg.records,
            "{format}: records differ from JSON"
        );
        assert_eq!(p.categories, json_pkg.categories, "{format}");
        assert_eq!(p.rights, 8, "{format}");
        for (category, purposes) in &p.purposes_per_category {
            assert!(*purposes > 0, "{format}: {category} has no purposes");
        }
    }
    let p = json_pkg;
    let want: BTreeSet<String> = [
        "consents",
        "location",
        "rate_limits",
        "revocations",
        "sessions",
        "upstream.data",
        "upstream.ml",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(p.categories, want);
    // Sessions: the live one with its device, IP and place; the ended one is gone.
    let live: Value = serde_json::from_str(
        &find(p, &format!("mg:{{u:sub:{user}}}:session-records"), "s-2").value,
    )
    .unwrap();
    assert_eq!(live["ip"], "203.0.113.7");
    assert_eq!(live["device_id"], "laptop-7");
    assert_eq!(live["user_agent"], "Firefox/140");
    assert_eq!(
        find(p, &format!("mg:{{u:sub:{user}}}:last-location"), "lat").value,
        "52.53"
    );
    // The ended session's revocation.
    let revoked = find(p, "mg:{rev}:sessions", &format!("{user}\ns-1"));
    assert_eq!(revoked.category, "revocations");
    assert!(revoked.value.parse::<f64>().unwrap() > 1.0e9);
    // Counters.
    assert!(p
        .records
        .iter()
        .any(|r| r.category == "rate_limits"
            && r.location == format!("mg:{{u:sub:{user}}}:rl:minute")));
    // Consents: current choices with notice version and method.
    let analytics: Value =
        serde_json::from_str(&find(p, &format!("mg:{{u:sub:{user}}}:consents"), "analytics").value)
            .unwrap();
    assert_eq!(
        (
            analytics["granted"].as_bool(),
            analytics["notice_version"].as_str(),
            analytics["method"].as_str()
        ),
        (Some(true), Some("v3"), Some("web-form"))
    );
    let marketing: Value =
        serde_json::from_str(&find(p, &format!("mg:{{u:sub:{user}}}:consents"), "marketing").value)
            .unwrap();
    assert_eq!(
        (marketing["granted"].as_bool(), marketing["method"].as_str()),
        (Some(false), Some("email"))
    );
    // Upstream records, through Envoy.
    let ml = p
        .records
        .iter()
        .filter(|r| r.source == "upstream:ml")
        .collect::<Vec<_>>();
    assert!(
        ml.iter()
            .any(|r| r.field == "/records/0/kind" && r.value == "prediction"),
        "{ml:#?}"
    );
    assert!(
        ml.iter()
            .any(|r| r.field == "/records/0/data/features/0" && r.value == "1.5"),
        "{ml:#?}"
    );
    assert!(p.records.iter().any(|r| r.source == "upstream:data"
        && r.field == "/records/0/data/symbol"
        && r.value == "ACME"));
    // The request is answered; the audit log holds it without the identifier.
    assert_eq!(
        stack.gdpr.ok(&["request", "status", &id])["status"],
        "completed"
    );
    let log = stack.gdpr.ok(&["audit", "show"]).to_string();
    assert!(log.contains("export.completed") && !log.contains(user));
    assert_eq!(stack.gdpr.ok(&["audit", "verify"])["ok"], true);
}

/// Accepts connections and never answers: a connector that hangs.
fn hanging_server() -> u16 {
    let port = free_port();
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    port
}

#[test]
fn erasure_revokes_first_removes_everything_resumes_after_a_kill_and_proves_it() {
    let stack = Stack::start();
    let user = "alice-erase-7f3e";
    stack.populate(user);
    assert!(!stack.user_keys(user).is_empty());
    assert_eq!(stack.upstream_records("ml", user).len(), 1);
    let id = stack.gdpr.verified_request("erasure", user);
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();

    // First run: ml hangs, so the process is killed after the Redis steps.
    stack.connectors(Some(&format!(
        "http://127.0.0.1:{}/gdpr/users/{{id}}",
        hanging_server()
    )));
    let mut child = stack
        .gdpr
        .spawn(&["erase", &id, "--token-max-lifetime-s", "0"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let steps = stack.gdpr.ok(&["steps", &id]);
        let steps = steps.as_array().unwrap();
        let ml = steps.iter().position(|s| s["step"] == "connector:ml");
        if let Some(ml) = ml {
            if steps[..ml].iter().all(|s| s["status"] != "pending") {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "erasure never reached the connector: {steps:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let steps = stack.gdpr.ok(&["steps", &id]);
    assert_eq!(steps[0]["step"], "revoke", "tokens are revoked first");
    assert_eq!(steps[0]["status"], "done");
    assert!(steps
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["status"] == "pending"));
    assert_eq!(
        stack.gdpr.ok(&["request", "status", &id])["status"],
        "in_progress"
    );
    // Redis steps ran before the kill: only the index is left, listing the
    // cutoff that is kept on purpose.
    assert_eq!(
        stack.user_keys(user),
        vec![format!("mg:{{u:sub:{user}}}:index")]
    );
    let left: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("mg:{{u:sub:{user}}}:index"))
        .query(&mut stack.redis())
        .unwrap();
    assert_eq!(left, vec![format!("mg:{{rev}}:users#{user}")]);
    assert_eq!(
        stack.upstream_records("ml", user).len(),
        1,
        "ml not reached yet"
    );

    // Second run, with ml reachable: resumes and completes.
    stack.connectors(None);
    let done = stack
        .gdpr
        .ok(&["erase", &id, "--token-max-lifetime-s", "0"]);
    assert_eq!(done["request"]["status"], "completed");
    assert_eq!(done["already_completed"], false);

    // Read everything back: gone.
    assert_eq!(stack.user_keys(user), Vec::<String>::new());
    let mut con = stack.redis();
    let revoked_sessions: Vec<String> = redis::cmd("ZRANGE")
        .arg("mg:{rev}:sessions")
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    assert!(
        !revoked_sessions.iter().any(|m| m.starts_with(user)),
        "{revoked_sessions:?}"
    );
    assert!(stack.upstream_records("ml", user).is_empty());
    assert!(stack.upstream_records("data", user).is_empty());
    assert_eq!(
        stack
            .gdpr
            .ok(&["consent", "show", "--user", user, "--history"]),
        json!([])
    );
    let index = stack.state("GET", &format!("/v1/users/{user}/index"), None);
    assert_eq!(index["keys"], json!([]));

    // Tokens: the not-before cutoff is in force through the state service's
    // feed (what the auth plugin applies), and kept until `sweep`.
    let feed = http(
        "GET",
        &format!("{}/v1/revocations/feed?since=0", stack.state.url()),
        &stack.state.plugin_secret,
        None,
    )
    .1;
    let cutoff = feed["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["sub"] == user)
        .expect("cutoff in the snapshot");
    assert!(cutoff["not_before"].as_u64().unwrap() >= t0);

    // The lasting record: an HMAC, never the identifier.
    let status = stack.gdpr.ok(&["request", "status", &id]);
    assert_eq!(status["subject"], Value::Null);
    assert_eq!(status["email"], Value::Null);
    assert_eq!(status["proof"]["subject_hmac"], status["subject_mac"]);
    assert_eq!(status["proof"]["proof_hmac"].as_str().unwrap().len(), 64);
    let proofs = stack.gdpr.ok(&["proof", "--user", user]);
    assert_eq!(proofs[0]["valid"], true);
    assert_eq!(
        stack.gdpr.ok(&["proof", "--user", "someone-else"]),
        json!([])
    );

    // Idempotent.
    let again = stack.gdpr.ok(&["erase", &id]);
    assert_eq!(again["already_completed"], true);

    // Sweep removes the cutoff once its tokens have expired (lifetime 0 here).
    let swept = stack.gdpr.ok(&["sweep"]);
    assert_eq!(swept["removed_cutoffs"], 1);
    let cutoffs: Vec<String> = redis::cmd("HKEYS")
        .arg("mg:{rev}:users")
        .query(&mut con)
        .unwrap();
    assert!(!cutoffs.contains(&user.to_string()));

    assert_eq!(stack.gdpr.ok(&["audit", "verify"])["ok"], true);
    // Nothing in the companion's database names the person any more.
    drop(con);
    let db = std::fs::read(stack.gdpr.db_path()).unwrap();
    assert!(
        !db.windows(user.len()).any(|w| w == user.as_bytes()),
        "the database still holds the identifier"
    );
}

#[test]
fn a_legal_hold_blocks_erasure_of_its_category() {
    let stack = Stack::start();
    let user = "bob-held";
    stack.populate(user);
    stack.gdpr.ok(&[
        "hold",
        "add",
        "--user",
        user,
        "--category",
        "sessions",
        "--reason",
        "Art. 17(3)(e): pending fraud claim 2025-114",
    ]);
    stack.gdpr.ok(&[
        "hold",
        "add",
        "--user",
        user,
        "--category",
        "upstream.ml",
        "--reason",
        "Art. 17(3)(b): tax records",
    ]);
    let id = stack.gdpr.verified_request("erasure", user);
    let done = stack.gdpr.ok(&["erase", &id]);
    assert_eq!(done["request"]["status"], "completed");
    // Held: sessions (with the ended-session marks, when the state service
    // keeps them) and ml records stay.
    let mut left = stack.user_keys(user);
    left.retain(|k| !k.ends_with(":sessions-ended"));
    assert_eq!(
        left,
        vec![
            format!("mg:{{u:sub:{user}}}:index"),
            format!("mg:{{u:sub:{user}}}:session-records"),
            format!("mg:{{u:sub:{user}}}:sessions")
        ]
    );
    assert_eq!(stack.upstream_records("ml", user).len(), 1);
    // Not held: gone.
    assert!(stack.upstream_records("data", user).is_empty());
    let held: Vec<&Value> = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "held")
        .collect();
    assert!(
        held.iter()
            .all(|s| s["category"] == "sessions" || s["category"] == "upstream.ml"),
        "{held:?}"
    );
    assert!(held
        .iter()
        .any(|s| s["detail"]["reason"] == "Art. 17(3)(e): pending fraud claim 2025-114"));
    let proof = &done["request"]["proof"];
    assert_eq!(proof["held"].as_array().unwrap().len(), held.len());
}
