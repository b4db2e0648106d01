//! The state and GDPR HTTP APIs under attack: fuzzed from their own OpenAPI
//! documents by schemathesis (PyPI, installed into .venv by scripts/setup),
//! and every endpoint sent oversized and malformed headers and bodies.
//! Client input gets a 4xx, never a 5xx, and neither service goes down.
//!
//! The fuzz budget is `MESHGUARD_FUZZ_SECONDS` per API (default 30).

use meshguard_harness::gdpr::{Gdpr, GdprServer};
use meshguard_harness::paths;
use meshguard_harness::state::StateService;
use meshguard_harness::Redis;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

struct Services {
    _redis: Redis,
    state: StateService,
    _gdpr: Gdpr,
    gdpr_server: GdprServer,
}

fn start() -> Services {
    let redis = Redis::start();
    let state = StateService::start(&redis);
    let gdpr = Gdpr::new(&redis.url(), &state.url(), &state.admin_token);
    let gdpr_server = gdpr.serve(&[]);
    Services {
        _redis: redis,
        state,
        _gdpr: gdpr,
        gdpr_server,
    }
}

/// What one API answered to a fuzz run, by status class.
#[derive(Debug, Default)]
struct Figures {
    requests: usize,
    by_class: BTreeMap<u16, usize>,
    server_errors: Vec<String>,
}

impl Figures {
    fn class(&self, class: u16) -> usize {
        self.by_class.get(&class).copied().unwrap_or(0)
    }
}

/// Counts the responses of a schemathesis HAR report.
fn read_har(path: &Path) -> Figures {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("schemathesis wrote no report {}: {e}", path.display()));
    let har: Value = serde_json::from_str(&text).expect("HAR report is JSON");
    let mut figures = Figures::default();
    for entry in har["log"]["entries"].as_array().into_iter().flatten() {
        let status = entry["response"]["status"].as_u64().unwrap_or(0) as u16;
        figures.requests += 1;
        *figures.by_class.entry(status / 100).or_default() += 1;
        if status >= 500 || status == 0 {
            figures.server_errors.push(format!(
                "{status} {} {}",
                entry["request"]["method"].as_str().unwrap_or("?"),
                entry["request"]["url"].as_str().unwrap_or("?")
            ));
        }
    }
    figures
}

fn fuzz(name: &str, base: &str, token: &str, dir: &Path) -> Figures {
    let seconds = std::env::var("MESHGUARD_FUZZ_SECONDS").unwrap_or_else(|_| "30".into());
    let har = dir.join(format!("{name}.har"));
    let schemathesis = paths::workspace_root().join(".venv/bin/schemathesis");
    assert!(
        schemathesis.is_file(),
        "{} missing: run scripts/setup",
        schemathesis.display()
    );
    let output = Command::new(schemathesis)
        .arg("run")
        .arg(format!("{base}/v1/openapi.json"))
        .args(["--url", base])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "not_a_server_error"])
        .args(["--max-time", &seconds])
        // One worker: CPython 3.11 can fail compiling in parallel threads
        // (hypothesis, "AST constructor recursion depth mismatch").
        .args(["--workers", "1"])
        .args(["--request-timeout", "10"])
        .args(["--report", "har"])
        .arg("--report-har-path")
        .arg(&har)
        .args(["--output-sanitize", "true"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run schemathesis");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let figures = read_har(&har);
    // schemathesis's own summary (phases, operations, seed) for the log.
    let summary: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    println!("{}", summary[summary.len().saturating_sub(25)..].join("\n"));
    println!(
        "fuzz {name}: {} requests, {} 2xx, {} 4xx, {} 5xx",
        figures.requests,
        figures.class(2),
        figures.class(4),
        figures.class(5)
    );
    assert!(
        figures.server_errors.is_empty(),
        "{name}: server errors {:#?}\n{text}",
        figures.server_errors
    );
    assert!(
        output.status.success(),
        "{name}: schemathesis failed:\n{text}"
    );
    assert!(
        figures.requests >= 100,
        "{name}: only {} requests were tried:\n{text}",
        figures.requests
    );
    figures
}

fn healthy(port: u16) -> bool {
    matches!(
        exchange(
            port,
            b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        ),
        Some(200)
    )
}

#[test]
fn state_and_gdpr_apis_fuzzed_from_their_openapi_documents_answer_no_5xx() {
    let services = start();
    let dir = tempfile::tempdir().expect("temp dir");
    let state = fuzz(
        "meshguard-state",
        &services.state.url(),
        &services.state.admin_token,
        dir.path(),
    );
    let gdpr = fuzz(
        "meshguard-gdpr",
        &services.gdpr_server.url(),
        &services.gdpr_server.admin_token,
        dir.path(),
    );
    assert!(
        state.class(4) > 0 && gdpr.class(4) > 0,
        "bad input was tried"
    );
    assert!(healthy(services.state.port), "meshguard-state still up");
    assert!(
        healthy(services.gdpr_server.port),
        "meshguard-gdpr still up"
    );
}

/// Writes `request` (ignoring a server that stops reading early) and
/// returns the status of the response, `None` when the connection closed
/// without one.
fn exchange(port: u16, request: &[u8]) -> Option<u16> {
    exchange_text(port, request).map(|(status, _)| status)
}

/// The status and the text read with it (head and what came of the body).
fn exchange_text(port: u16, request: &[u8]) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .ok()?;
    let _ = stream.write_all(request);
    let _ = stream.flush();
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let done = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => true,
            Ok(n) => {
                raw.extend_from_slice(&chunk[..n]);
                false
            }
        };
        // connection: close: the whole answer once the server closes.
        if done || raw.len() > 64 * 1024 {
            let text = String::from_utf8_lossy(&raw).to_string();
            let status = text.lines().next()?.split(' ').nth(1)?.parse().ok()?;
            return Some((status, text));
        }
    }
}

/// Every operation of an OpenAPI document, path parameters filled in, and
/// whether it needs a credential.
fn operations(doc: &Value) -> Vec<(String, String, bool)> {
    operations_with(doc, "1")
}

/// Every operation, each path parameter set to `param`.
fn operations_with(doc: &Value, param: &str) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        if param != "1" && !path.contains('{') {
            continue;
        }
        let concrete = path
            .split('/')
            .map(|s| if s.starts_with('{') { param } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for (method, operation) in item.as_object().into_iter().flatten() {
            if ["get", "post", "put", "delete"].contains(&method.as_str()) {
                let secured = operation["security"]
                    .as_array()
                    .is_some_and(|s| !s.is_empty());
                out.push((method.to_uppercase(), concrete.clone(), secured));
            }
        }
    }
    out
}

struct Attack {
    name: &'static str,
    /// Builds the raw request for `method path` with this bearer token.
    build: fn(&str, &str, &str) -> Vec<u8>,
    /// Whether a 4xx is required for this method of an operation that
    /// needs (or not) a credential; otherwise anything but a 5xx will do.
    must_reject: fn(&str, bool) -> bool,
}

fn head(method: &str, path: &str, token: &str, extra: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {token}\r\n{extra}connection: close\r\n"
    )
}

fn with_body(method: &str, path: &str, token: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = head(
        method,
        path,
        token,
        &format!(
            "content-type: {content_type}\r\ncontent-length: {}\r\n",
            body.len()
        ),
    )
    .into_bytes();
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn always(_: &str, _: bool) -> bool {
    true
}

fn takes_a_body(method: &str, _: bool) -> bool {
    method == "POST" || method == "PUT"
}

fn attacks() -> Vec<Attack> {
    vec![
        Attack {
            name: "a 1 MiB header value",
            build: |m, p, t| {
                let big = "a".repeat(1 << 20);
                format!("{}x-big: {big}\r\n\r\n", head(m, p, t, "")).into_bytes()
            },
            must_reject: always,
        },
        Attack {
            name: "500 headers",
            build: |m, p, t| {
                let many: String = (0..500).map(|i| format!("x-h{i}: v\r\n")).collect();
                format!("{}{many}\r\n", head(m, p, t, "")).into_bytes()
            },
            must_reject: always,
        },
        Attack {
            name: "a control byte in a header value",
            build: |m, p, t| {
                let mut out = head(m, p, t, "").into_bytes();
                out.extend_from_slice(b"x-bad: a\x01b\r\n\r\n");
                out
            },
            must_reject: always,
        },
        Attack {
            name: "a header line without a colon",
            build: |m, p, t| format!("{}not a header\r\n\r\n", head(m, p, t, "")).into_bytes(),
            must_reject: always,
        },
        Attack {
            name: "a space in a header name",
            build: |m, p, t| format!("{}bad name: v\r\n\r\n", head(m, p, t, "")).into_bytes(),
            must_reject: always,
        },
        Attack {
            name: "a non-UTF-8 authorization header",
            build: |m, p, _| {
                let mut out =
                    format!("{m} {p} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n").into_bytes();
                out.extend_from_slice(b"authorization: Bearer \xff\xfe\xc3\r\n\r\n");
                out
            },
            // Open endpoints (health, metrics, the document) ignore it.
            must_reject: |_, secured| secured,
        },
        Attack {
            name: "two content-lengths that disagree",
            build: |m, p, t| {
                format!(
                    "{}content-type: application/json\r\ncontent-length: 2\r\ncontent-length: 5\r\n\r\n{{}}",
                    head(m, p, t, "")
                )
                .into_bytes()
            },
            must_reject: always,
        },
        Attack {
            name: "a negative content-length",
            build: |m, p, t| {
                format!("{}content-length: -1\r\n\r\n", head(m, p, t, "")).into_bytes()
            },
            must_reject: always,
        },
        Attack {
            name: "malformed chunked encoding",
            build: |m, p, t| {
                format!(
                    "{}content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n",
                    head(m, p, t, "")
                )
                .into_bytes()
            },
            must_reject: takes_a_body,
        },
        Attack {
            name: "a 64 MiB body",
            build: |m, p, t| with_body(m, p, t, "application/json", &vec![b' '; 64 << 20]),
            must_reject: takes_a_body,
        },
        Attack {
            name: "a body that is not JSON",
            build: |m, p, t| with_body(m, p, t, "application/json", b"{not json"),
            must_reject: takes_a_body,
        },
        Attack {
            name: "a JSON body of the wrong shape",
            build: |m, p, t| with_body(m, p, t, "application/json", b"[1, \"two\", null]"),
            must_reject: takes_a_body,
        },
        Attack {
            name: "JSON nested 100000 deep",
            build: |m, p, t| {
                let mut body = "[".repeat(100_000);
                body.push_str(&"]".repeat(100_000));
                with_body(m, p, t, "application/json", body.as_bytes())
            },
            must_reject: takes_a_body,
        },
        Attack {
            name: "a body of invalid UTF-8",
            build: |m, p, t| with_body(m, p, t, "application/json", b"{\"user\": \"\xff\xfe\"}"),
            must_reject: takes_a_body,
        },
        Attack {
            name: "a JSON object with a huge string",
            build: |m, p, t| {
                let body = format!("{{\"user\": \"{}\"}}", "u".repeat(900_000));
                with_body(m, p, t, "application/json", body.as_bytes())
            },
            must_reject: takes_a_body,
        },
        Attack {
            name: "the wrong content-type",
            build: |m, p, t| with_body(m, p, t, "text/plain", b"{}"),
            must_reject: takes_a_body,
        },
        Attack {
            name: "a malformed query string",
            build: |m, p, t| {
                format!(
                    "{}\r\n",
                    head(m, &format!("{p}?%zz=%&&=&history=maybe&overdue=2"), t, "")
                )
                .into_bytes()
            },
            must_reject: |_, _| false,
        },
    ]
}

#[test]
fn oversized_and_malformed_headers_and_bodies_get_4xx_from_every_endpoint() {
    let services = start();
    let apis = [
        (
            "meshguard-state",
            services.state.port,
            services.state.admin_token.clone(),
            include_str!("../../services/state/src/openapi.json"),
        ),
        (
            "meshguard-gdpr",
            services.gdpr_server.port,
            services.gdpr_server.admin_token.clone(),
            include_str!("../../services/gdpr/src/openapi.json"),
        ),
    ];
    let mut failures = Vec::new();
    for (api, port, token, doc) in &apis {
        let doc: Value = serde_json::from_str(doc).expect("OpenAPI document is JSON");
        let (mut tried, mut rejected, mut server_errors) = (0, 0, 0);
        for (method, path, secured) in operations(&doc) {
            for attack in attacks() {
                let request = (attack.build)(&method, &path, token);
                let status = exchange(*port, &request);
                tried += 1;
                match status {
                    Some(s) if (400..500).contains(&s) => rejected += 1,
                    Some(s) if s >= 500 => {
                        server_errors += 1;
                        failures.push(format!("{api} {method} {path}, {}: {s}", attack.name));
                    }
                    other if (attack.must_reject)(&method, secured) => failures.push(format!(
                        "{api} {method} {path}, {}: {other:?}, not a 4xx",
                        attack.name
                    )),
                    _ => {}
                }
            }
        }
        // Path parameters no client should send: never a 5xx.
        let long = "p".repeat(64 * 1024);
        for param in [
            "%ff%fe",
            "%00",
            "..%2f..%2fetc",
            "%2e%2e",
            long.as_str(),
            "%E2%80%AE",
            "*",
        ] {
            for (method, path, _) in operations_with(&doc, param) {
                let request = with_body(&method, &path, token, "application/json", b"{}");
                tried += 1;
                match exchange(*port, &request) {
                    Some(s) if (400..500).contains(&s) => rejected += 1,
                    Some(s) if s < 500 => {}
                    other => {
                        server_errors += usize::from(other.is_some());
                        let shown: String = path.chars().take(80).collect();
                        failures.push(format!("{api} {method} {shown}: {other:?}"));
                    }
                }
            }
        }
        println!("attack {api}: {tried} requests, {rejected} 4xx, {server_errors} 5xx");
        assert!(healthy(*port), "{api} went down");
    }
    assert!(failures.is_empty(), "{:#?}", failures);
}

/// The GDPR document names every route the service has (the fuzz run only
/// reaches what the document lists). meshguard-state's own unit tests check
/// its document the same way.
#[test]
fn the_gdpr_openapi_document_covers_every_route() {
    let doc: Value = serde_json::from_str(include_str!("../../services/gdpr/src/openapi.json"))
        .expect("OpenAPI document is JSON");
    let serve = include_str!("../../services/gdpr/src/serve.rs");
    let mut routed = 0;
    let mut lines = serve.lines().map(str::trim).peekable();
    while let Some(line) = lines.next() {
        // `.route("/path", …)` on one line, or `.route(` then `"/path",`.
        let path = match line.strip_prefix(".route(") {
            Some("") => lines.peek().map(|next| next.trim_end_matches(',')),
            Some(rest) => rest.split(',').next(),
            None => None,
        };
        let Some(path) = path.map(|p| p.trim_matches('"')) else {
            continue;
        };
        assert!(
            doc["paths"][path].is_object(),
            "{path} is routed but not in services/gdpr/src/openapi.json"
        );
        routed += 1;
    }
    assert_eq!(routed, doc["paths"].as_object().map_or(0, |p| p.len()));
}

/// Many operators (or one script) writing at once: SQLite's write lock is
/// waited for, never answered with a 500 ("database is locked", found by
/// the fuzz run). Only a writer still queued when the busy timeout ends,
/// on an overloaded machine, is told to come back: 503 with Retry-After.
#[test]
fn concurrent_gdpr_writes_get_no_500() {
    /// A 503 that carries Retry-After.
    const RETRY_LATER: u16 = 0;
    let services = start();
    let port = services.gdpr_server.port;
    let token = services.gdpr_server.admin_token.clone();
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let token = token.clone();
            std::thread::spawn(move || {
                let body = match i % 3 {
                    0 => format!(r#"{{"kind": "access", "user": "writer-{i}"}}"#),
                    1 => format!(r#"{{"kind": "erasure", "user": "writer-{i}"}}"#),
                    _ => format!(
                        r#"{{"user": "writer-{i}", "category": "sessions", "reason": "litigation {i}"}}"#
                    ),
                };
                // The address verification codes go to (the subject's own record).
                let contact = format!(r#"{{"email": "w{i}@example.org", "source": "crm"}}"#);
                let request = with_body(
                    "POST",
                    &format!("/v1/contacts/writer-{i}"),
                    &token,
                    "application/json",
                    contact.as_bytes(),
                );
                let first = exchange(port, &request);
                if !matches!(first, Some(200..=499)) {
                    return first;
                }
                let path = if i % 3 == 2 { "/v1/holds" } else { "/v1/requests" };
                let request = with_body("POST", path, &token, "application/json", body.as_bytes());
                match exchange_text(port, &request) {
                    // Overload, said as such: the client retries.
                    Some((503, text)) if text.to_ascii_lowercase().contains("retry-after: 1") => {
                        Some(RETRY_LATER)
                    }
                    Some((status, text)) if status >= 500 => {
                        eprintln!("{path}: {text}");
                        Some(status)
                    }
                    other => other.map(|(status, _)| status),
                }
            })
        })
        .collect();
    let statuses: Vec<Option<u16>> = threads
        .into_iter()
        .map(|t| t.join().unwrap_or(None))
        .collect();
    let failed: Vec<_> = statuses
        .iter()
        .filter(|s| !matches!(s, Some(200..=499) | Some(RETRY_LATER)))
        .collect();
    assert!(failed.is_empty(), "{failed:?} of {statuses:?}");
    assert!(
        statuses.iter().any(|s| matches!(s, Some(200..=299))),
        "{statuses:?}"
    );
}
