//! Attacks on the proxy as shipped (SECURITY.md): the public listener of the
//! stack `scripts/up` runs, with the template's hardening.
//!
//! - a path rule (auth `required_scopes`, ratelimit `costs`) cannot be skipped
//!   by spelling the path differently: percent-escapes, dot segments, doubled
//!   slashes, escaped slashes, backslashes;
//! - a header with underscores (`x_auth_sub`) never reaches an upstream;
//! - a body over the limit is refused with 413 by Envoy and, reached
//!   directly, by the upstream before it reads it all; the upstream stays up;
//! - oversized, malformed and invalid-UTF-8 headers get a 4xx (or are served
//!   normally), never a 5xx, and the Wasm VM never fails;
//! - request smuggling (CL+TE, obfuscated or doubled framing) is refused and
//!   the smuggled request never answered;
//! - hop-by-hop nomination cannot strip the identity auth sets;
//! - headers sent slowly are cut off.

use meshguard_harness::http::send_raw;
use meshguard_harness::mesh::{Mesh, MeshOptions};
use meshguard_harness::{Request, Response};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const TRAIN: &str = "/api/ml/train";

/// The ways of writing `/api/ml/train` a client could try, each of which an
/// upstream that decodes and resolves its path would serve as `/train`.
const SPELLINGS: [&str; 12] = [
    "/api/ml/%74rain",
    "/api/ml/%74%72%61%69%6E",
    "/api/%6Dl/train",
    "/api/x/../ml/train",
    "/api/ml/./train",
    "/api/ml/x/%2e%2e/train",
    "/api/ml/%2E/train",
    "//api//ml//train",
    "/api/ml//train",
    "/api/ml/train/.",
    "/api/ml/x/../../ml/train",
    "/api/ml\\x\\..\\train",
];

/// Spellings with an escaped slash or backslash: redirected to the decoded path.
const ESCAPED_SLASHES: [&str; 4] = [
    "/api/ml%2Ftrain",
    "/api/ml/x%2F..%2Ftrain",
    "/api/ml/x/..%2ftrain",
    "/api/ml%5Ctrain",
];

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// What the ratelimit response header says is left of the minute window.
fn minute_remaining(response: &Response) -> Option<u64> {
    let header = response.header("ratelimit")?;
    let minute = header
        .split(',')
        .find(|item| item.trim().starts_with("\"minute\""))?;
    minute
        .split(';')
        .find_map(|p| p.trim().strip_prefix("r="))
        .and_then(|r| r.parse().ok())
}

fn reached_upstream(response: &Response) -> bool {
    response.header("x-upstream-instance").is_some()
}

/// `required_scopes` and `costs` on `/api/ml/train` hold for every spelling.
#[test]
fn path_rules_hold_for_every_spelling_of_the_path() {
    let mesh = Mesh::start(MeshOptions {
        config_patch: json!({
            "auth": {"required_scopes": [{"prefix": TRAIN, "scopes": ["ml:train"]}]},
            "ratelimit": {"costs": [{"prefix": "/api/ml/", "cost": 5}, {"prefix": TRAIN, "cost": 7}]},
        }),
        ..MeshOptions::for_test()
    });
    let post = |path: &str, token: &str| {
        mesh.send(
            &Request::post(path, r#"{"rows": [[1, 2, 3]], "labels": [1]}"#)
                .header("authorization", &bearer(token))
                .header("content-type", "application/json"),
        )
    };

    // The rules as written: without the scope 403; with it, the upstream
    // answers and the route costs 7 of the free tier's 10.
    let unscoped = mesh.mint_token("no-scope", "premium", json!({}));
    let canonical = post(TRAIN, &unscoped);
    assert_eq!(canonical.status, 403, "{}", canonical.text());
    let scoped = mesh.mint_token("canonical", "free", json!({"scope": "ml:train"}));
    let canonical = post(TRAIN, &scoped);
    assert!(reached_upstream(&canonical), "{}", canonical.text());
    assert_eq!(
        minute_remaining(&canonical),
        Some(3),
        "{:?}",
        canonical.headers
    );

    let mut failures = Vec::new();
    for (i, path) in SPELLINGS.iter().enumerate() {
        let refused = post(path, &unscoped);
        if refused.status != 403 || reached_upstream(&refused) {
            failures.push(format!(
                "{path} without the scope: {} {}",
                refused.status,
                refused.text()
            ));
        }
        // A fresh user each time: its first request shows the whole charge.
        let token = mesh.mint_token(
            &format!("spelling-{i}"),
            "free",
            json!({"scope": "ml:train"}),
        );
        let served = post(path, &token);
        if !reached_upstream(&served) || minute_remaining(&served) != Some(3) {
            failures.push(format!(
                "{path} with the scope: {} remaining {:?} (7 charged leaves 3)",
                served.status,
                minute_remaining(&served)
            ));
        }
    }
    for path in ESCAPED_SLASHES {
        let response = post(path, &unscoped);
        let location = response.header("location").unwrap_or_default().to_string();
        if !(300..400).contains(&response.status)
            || !location.ends_with(TRAIN)
            || reached_upstream(&response)
        {
            failures.push(format!(
                "{path}: {} location {location:?} (a redirect to {TRAIN})",
                response.status
            ));
        }
    }
    // The upstreams' data-subject endpoints stay closed to clients however
    // the path is spelled (the public listener answers 404 itself).
    for path in [
        "/api/ml/%67dpr/users/alice",
        "/api/ml//gdpr/users/alice",
        "/api/ml/x/../gdpr/users/alice",
        "/api/ml/./gdpr/users/alice",
        "//api/ml/gdpr/users/alice",
    ] {
        let response = mesh.send(&Request::get(path).header("authorization", &bearer(&unscoped)));
        if response.status != 404 || reached_upstream(&response) {
            failures.push(format!("{path}: {} {}", response.status, response.text()));
        }
    }
    // A public or exempt path in front of a protected one is no way around
    // auth or the rate limiter.
    let response = mesh.send(&Request::get("/healthz/../api/ml/"));
    if response.status != 401 || reached_upstream(&response) {
        failures.push(format!(
            "/healthz/../api/ml/ without a token: {}",
            response.status
        ));
    }
    let token = mesh.mint_token("via-healthz", "free", json!({}));
    let response = mesh.get_as("/healthz/../api/ml/", &token);
    if !reached_upstream(&response) || minute_remaining(&response) != Some(5) {
        failures.push(format!(
            "/healthz/../api/ml/: {} remaining {:?} (5 charged leaves 5)",
            response.status,
            minute_remaining(&response)
        ));
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// `x_auth_sub` is `x-auth-sub` to CGI/WSGI-style servers: refused at the edge.
fn headers_with_underscores_never_reach_an_upstream(mesh: &Mesh) {
    let token = mesh.mint_token("alice", "premium", json!({}));
    let ok = mesh.get_as("/api/ml/", &token);
    assert_eq!(ok.status, 200, "{}", ok.text());
    for name in [
        "x_auth_sub",
        "X_Auth_Sub",
        "x_auth_tier",
        "x_feature_ml_v2",
        "x-auth_sub",
    ] {
        let response = mesh.send(
            &Request::get("/api/ml/")
                .header("authorization", &bearer(&token))
                .header(name, "admin"),
        );
        assert_eq!(response.status, 400, "{name}: {}", response.text());
        assert!(!reached_upstream(&response), "{name} reached the upstream");
    }
    // Anonymous on a public route too.
    let response = mesh.send(&Request::get("/healthz").header("x_auth_sub", "admin"));
    assert_eq!(response.status, 400);
}

/// Writes `head`, then `body_len` bytes in 64 KiB chunks (chunked framing
/// when `chunked`), stopping when the peer answers or resets; returns the
/// answer and how many body bytes went out.
fn upload(port: u16, head: &str, body_len: usize, chunked: bool) -> (Option<Response>, usize) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(1)))
        .expect("timeout");
    stream.write_all(head.as_bytes()).expect("write head");
    let chunk = vec![b'a'; 64 * 1024];
    let mut sent = 0;
    let mut raw = Vec::new();
    let mut buffer = [0u8; 4096];
    while sent < body_len {
        let frame = if chunked {
            let mut f = format!("{:x}\r\n", chunk.len()).into_bytes();
            f.extend_from_slice(&chunk);
            f.extend_from_slice(b"\r\n");
            f
        } else {
            chunk.clone()
        };
        if stream.write_all(&frame).is_err() {
            break;
        }
        sent += chunk.len();
        if let Ok(n) = stream.read(&mut buffer) {
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buffer[..n]);
            break;
        }
    }
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    while let Ok(n) = stream.read(&mut buffer) {
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buffer[..n]);
        if raw.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    (parse_head(&raw), sent)
}

/// The status line and headers of a response (the body is not needed).
fn parse_head(raw: &[u8]) -> Option<Response> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    parsed.parse(raw).ok()?;
    Some(Response {
        status: parsed.code?,
        headers: parsed
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
        body: Vec::new(),
    })
}

#[test]
fn bodies_over_the_limit_are_refused_and_the_upstream_stays_up() {
    const MIB: usize = 1 << 20;
    let mesh = Mesh::start(MeshOptions::for_test());
    let token = mesh.mint_token("uploader", "enterprise", json!({}));

    // Through Envoy: a declared 2 MiB body, in one write with its headers.
    let big = Request::post("/api/ml/predict", vec![b'a'; 2 * MIB])
        .header("authorization", &bearer(&token));
    let response = mesh.send(&big);
    assert_eq!(response.status, 413, "{}", response.text());
    assert!(!reached_upstream(&response));
    // A chunked body that never ends: refused once past the limit.
    let head = format!(
        "POST /api/ml/predict HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
         transfer-encoding: chunked\r\n\r\n"
    );
    let (response, sent) = upload(mesh.listener_port(), &head, 64 * MIB, true);
    let response = response.expect("an answer to the endless body");
    assert_eq!(response.status, 413);
    assert!(!reached_upstream(&response));
    assert!(sent < 16 * MIB, "Envoy read {sent} bytes before refusing");
    // A body just under the limit still passes.
    let features: Vec<f64> = vec![0.5; 3];
    let fine = mesh.send(
        &Request::post(
            "/api/ml/predict",
            json!({ "features": features }).to_string(),
        )
        .header("authorization", &bearer(&token))
        .header("content-type", "application/json"),
    );
    assert_eq!(fine.status, 200, "{}", fine.text());

    // Straight to an upstream host, as anything on its network could: a
    // content-length of 1 GiB is refused before its body is sent...
    let host = mesh.upstreams.instance("ml", 0).port;
    let started = Instant::now();
    let (response, sent) = upload(
        host,
        "POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: 1073741824\r\n\r\n",
        64 * MIB,
        false,
    );
    let response = response.expect("an answer to the 1 GiB body");
    assert_eq!(response.status, 413);
    assert!(
        sent < 16 * MIB,
        "the upstream read {sent} bytes before refusing"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // ...and a chunked one as soon as it passes the limit.
    let (response, sent) = upload(
        host,
        "POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\n\r\n",
        64 * MIB,
        true,
    );
    assert_eq!(response.expect("an answer to the endless body").status, 413);
    assert!(
        sent < 16 * MIB,
        "the upstream read {sent} bytes before refusing"
    );
    // Two content-lengths: the framing is in doubt, refused.
    let doubled = send_raw(
        host,
        b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ncontent-length: 20\r\n\r\n{}",
    )
    .expect("an answer");
    assert_eq!(doubled.status, 400);
    let health = send_raw(host, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").expect("health");
    assert_eq!(health.status, 200, "the upstream went down");
    let fine = mesh.send(
        &Request::post("/api/ml/predict", r#"{"features": [1, 2, 3]}"#)
            .header("authorization", &bearer(&token))
            .header("content-type", "application/json"),
    );
    assert_eq!(fine.status, 200, "{}", fine.text());
}

/// The Wasm VM's health: created VMs (a crashed VM is replaced) and reloads.
fn vm_health(mesh: &Mesh) -> Vec<(String, u64)> {
    mesh.envoy
        .stats()
        .into_iter()
        .filter(|(name, _)| {
            name.starts_with("wasm.envoy.wasm.runtime.") && name.ends_with(".created")
                || name.starts_with("wasm.meshguard_") && name.contains("vm_reload")
        })
        .collect()
}

/// Every raw request gets an answer that is not a 5xx; refusals never
/// reach an upstream; the plugins serve normally afterwards.
fn malformed_and_oversized_headers_get_4xx_and_the_plugins_keep_serving(mesh: &Mesh) {
    let token = mesh.mint_token("alice", "premium", json!({}));
    let auth = format!("authorization: Bearer {token}\r\n");
    let before = vm_health(mesh);
    assert!(!before.is_empty(), "no Wasm VM stats");

    let get = |extra: &[u8]| {
        let mut raw = b"GET /api/ml/ HTTP/1.1\r\nhost: x\r\n".to_vec();
        raw.extend_from_slice(extra);
        raw.extend_from_slice(b"connection: close\r\n\r\n");
        raw
    };
    let many: String = (0..150).map(|i| format!("x-h{i}: v\r\n")).collect();
    let huge = format!("x-big: {}\r\n", "a".repeat(70_000));
    let huge_token = format!("authorization: Bearer {}\r\n", "a".repeat(50_000));
    let long_path = format!(
        "GET /api/ml/{} HTTP/1.1\r\nhost: x\r\n\r\n",
        "a".repeat(70_000)
    );
    let mut refused: Vec<(&str, Vec<u8>)> = vec![
        ("150 headers", get(format!("{auth}{many}").as_bytes())),
        ("a 70 KB header", get(format!("{auth}{huge}").as_bytes())),
        ("a 50 KB token", get(huge_token.as_bytes())),
        ("a 70 KB path", long_path.into_bytes()),
        (
            "two authorization headers",
            get(format!("{auth}authorization: Bearer x.y.z\r\n").as_bytes()),
        ),
        (
            "two authorization headers, the valid one second",
            get(format!("authorization: Bearer x.y.z\r\n{auth}").as_bytes()),
        ),
        (
            "a token of invalid UTF-8",
            get(b"authorization: Bearer \xff\xfe\x80.\xc3\x28.x\r\n"),
        ),
        (
            "a NUL in a header",
            get(format!("{auth}x-a: a\0b\r\n").as_bytes()),
        ),
        (
            "a control byte in the path",
            b"GET /api/ml/\x01 HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
        ),
        (
            "a non-ASCII path",
            b"GET /api/ml/\xff HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
        ),
        (
            "a header name with a space",
            get(format!("{auth}x-a b: c\r\n").as_bytes()),
        ),
        (
            "a junk method",
            b"G\x01T /api/ml/ HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
        ),
        (
            "a 10 KB method",
            [
                vec![b'A'; 10_000],
                b" / HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
            ]
            .concat(),
        ),
        (
            "HTTP/9.9",
            b"GET /api/ml/ HTTP/9.9\r\nhost: x\r\n\r\n".to_vec(),
        ),
        ("HTTP/1.0", b"GET /api/ml/ HTTP/1.0\r\n\r\n".to_vec()),
        (
            "a websocket upgrade",
            get(format!("{auth}connection: upgrade\r\nupgrade: websocket\r\n").as_bytes()),
        ),
        (
            "CONNECT",
            format!("CONNECT evil.example:443 HTTP/1.1\r\nhost: evil.example:443\r\n{auth}\r\n")
                .into_bytes(),
        ),
    ];
    // Odd bytes where the plugins read values: served as if absent or kept
    // opaque, the identity intact.
    let served: Vec<(&str, Vec<u8>)> =
        vec![
        (
            "invalid UTF-8 in traceparent, tracestate, cookie, x-forwarded-for, user-agent, geo",
            get(&[
                auth.as_bytes(),
                b"traceparent: 00-\xff\xfe-\x80\r\ntracestate: a=\xff,b=\xc3\x28\r\n",
                b"cookie: mg_token=\xff\xfe\r\nx-forwarded-for: \xff\xfe, 1.2.3.4\r\n",
                b"user-agent: \xff\xfe\xfd\r\nx-geo-lat: \xff\r\nx-geo-lon: 1e999\r\n",
                b"x-request-id: \xff\r\n",
            ]
            .concat()),
        ),
        (
            "Envoy's own control headers (a 1 ms timeout, 50 retries, internal, forced trace)",
            get(format!(
                "{auth}x-envoy-upstream-rq-timeout-ms: 1\r\n\
                 x-envoy-upstream-rq-per-try-timeout-ms: 1\r\nx-envoy-max-retries: 50\r\n\
                 x-envoy-retry-on: 5xx,reset\r\nx-envoy-internal: true\r\nx-envoy-force-trace: true\r\n"
            )
            .as_bytes()),
        ),
        (
            "a 200-member tracestate",
            get(format!(
                "{auth}tracestate: {}\r\n",
                (0..200).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join(",")
            )
            .as_bytes()),
        ),
        (
            "two traceparents and three x-auth-sub",
            get(format!(
                "{auth}traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\
                 traceparent: 00-0af7651916cd43dd8448eb211c80319d-b7ad6b7169203331-01\r\n\
                 x-auth-sub: admin\r\nx-auth-sub: root\r\nx-auth-tier: admin\r\n"
            )
            .as_bytes()),
        ),
    ];
    let mut failures = Vec::new();
    for (name, raw) in refused.drain(..) {
        match send_raw(mesh.listener_port(), &raw) {
            Ok(r) if (400..500).contains(&r.status) && !reached_upstream(&r) => {}
            Ok(r) => failures.push(format!("{name}: {} {}", r.status, r.text())),
            Err(e) => failures.push(format!("{name}: no answer ({e})")),
        }
    }
    for (name, raw) in served {
        match send_raw(mesh.listener_port(), &raw) {
            Ok(r) if r.status == 200 => {
                let seen: Value = r.json();
                let sub = &seen["meshguard_headers"]["x-auth-sub"];
                if sub != "alice" {
                    failures.push(format!("{name}: the upstream saw x-auth-sub {sub}"));
                }
            }
            Ok(r) => failures.push(format!("{name}: {} {}", r.status, r.text())),
            Err(e) => failures.push(format!("{name}: no answer ({e})")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");

    // The plugins still serve, with the VMs they started with.
    let after = mesh.get_as("/api/ml/", &token);
    assert_eq!(after.status, 200, "{}", after.text());
    assert_eq!(after.json()["meshguard_headers"]["x-auth-sub"], "alice");
    assert_eq!(vm_health(mesh), before, "a Wasm VM failed or was reloaded");
    let log = mesh.envoy.log();
    for sign in ["panicked", "wasm trap", "Wasm VM failed", "unreachable"] {
        assert!(!log.contains(sign), "Envoy's log shows {sign:?}:\n{log}");
    }
}

/// One mesh for every attack on the edge's parsing: each part leaves it
/// serving normally, which the next part relies on.
#[test]
fn malformed_requests_are_refused_with_4xx_and_the_plugins_keep_serving() {
    let mesh = Mesh::start(MeshOptions::for_test());
    headers_with_underscores_never_reach_an_upstream(&mesh);
    malformed_and_oversized_headers_get_4xx_and_the_plugins_keep_serving(&mesh);
    request_smuggling_is_refused(&mesh);
    hop_by_hop_nomination_cannot_strip_the_identity(&mesh);
    headers_sent_slowly_are_cut_off(&mesh);
}

/// Writes `raw` and reads until the connection closes (or 3 s pass):
/// every status line that came back.
fn statuses_on_connection(port: u16, raw: &[u8]) -> (Vec<u16>, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    stream.write_all(raw).expect("write");
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let statuses = text
        .split("\r\n")
        .filter_map(|line| line.strip_prefix("HTTP/1.1 "))
        .filter_map(|rest| rest.get(..3)?.parse().ok())
        .collect();
    (statuses, text)
}

fn request_smuggling_is_refused(mesh: &Mesh) {
    let token = mesh.mint_token("smuggler", "premium", json!({}));
    let smuggled =
        format!("GET /api/ml/model HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\r\n");
    let post = |framing: &str, body: &str| {
        format!(
            "POST /api/ml/predict HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
             content-type: application/json\r\n{framing}\r\n{body}{smuggled}"
        )
    };
    let cases = [
        (
            "CL and TE",
            post(
                "content-length: 4\r\ntransfer-encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
        ),
        (
            "TE and CL",
            post(
                "transfer-encoding: chunked\r\ncontent-length: 40\r\n",
                "0\r\n\r\n",
            ),
        ),
        (
            "TE xchunked",
            post("transfer-encoding: xchunked\r\n", "0\r\n\r\n"),
        ),
        (
            "TE chunked, identity",
            post(
                "transfer-encoding: chunked\r\ntransfer-encoding: identity\r\n",
                "0\r\n\r\n",
            ),
        ),
        (
            "TE with a space before the colon",
            post("transfer-encoding : chunked\r\n", "0\r\n\r\n"),
        ),
        (
            "two content-lengths",
            post("content-length: 2\r\ncontent-length: 60\r\n", "{}"),
        ),
        (
            "content-length 2, 60",
            post("content-length: 2, 60\r\n", "{}"),
        ),
        (
            "a negative content-length",
            post("content-length: -1\r\n", "{}"),
        ),
        (
            "a chunk size overflow",
            post(
                "transfer-encoding: chunked\r\n",
                "fffffffffffffffff1\r\na\r\n0\r\n\r\n",
            ),
        ),
    ];
    let mut failures = Vec::new();
    for (name, raw) in &cases {
        let (statuses, text) = statuses_on_connection(mesh.listener_port(), raw.as_bytes());
        let upstream = text.contains("x-upstream-instance");
        if statuses.len() != 1 || !(400..500).contains(&statuses[0]) || upstream {
            failures.push(format!(
                "{name}: statuses {statuses:?}, reached an upstream: {upstream}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}\n{}", mesh.envoy.log());
    let after = mesh.get_as("/api/ml/", &token);
    assert_eq!(after.status, 200);
}

fn hop_by_hop_nomination_cannot_strip_the_identity(mesh: &Mesh) {
    let token = mesh.mint_token("alice", "premium", json!({}));
    // Headers a client names in `Connection` are dropped by Envoy before the
    // plugins run: the plugins' own headers are set after that, and reach
    // the upstream.
    let response = mesh.send(
        &Request::get("/api/ml/")
            .header("authorization", &bearer(&token))
            .header(
                "connection",
                "keep-alive, x-auth-sub, x-auth-tier, x-meshguard-flags, traceparent",
            ),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let seen = &response.json()["meshguard_headers"];
    assert_eq!(seen["x-auth-sub"], "alice");
    assert_eq!(seen["x-auth-tier"], "premium");
    assert!(seen["traceparent"].is_string(), "{seen}");
    assert!(seen["x-meshguard-flags"].is_string(), "{seen}");
    // Nominating the header the edge's addressing rests on: Envoy refuses.
    let response = mesh.send(
        &Request::get("/api/ml/")
            .header("authorization", &bearer(&token))
            .header("connection", "x-forwarded-for"),
    );
    assert_eq!(response.status, 400);
    assert!(!reached_upstream(&response));
    // Nominating its own token leaves the client anonymous: refused, never
    // passed on as if authenticated.
    let response = mesh.send(
        &Request::get("/api/ml/")
            .header("authorization", &bearer(&token))
            .header("connection", "authorization"),
    );
    assert_eq!(response.status, 401);
    assert!(!reached_upstream(&response));
}

fn headers_sent_slowly_are_cut_off(mesh: &Mesh) {
    let mut stream = TcpStream::connect(("127.0.0.1", mesh.listener_port())).expect("connect");
    stream
        .write_all(b"GET /api/ml/ HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .expect("write");
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buffer = [0u8; 1024];
    // A byte every 2 s keeps the connection busy but the headers unfinished.
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buffer[..n]);
                break;
            }
            Err(_) if started.elapsed() > Duration::from_secs(18) => break,
            Err(_) => {}
        }
        if stream.write_all(b"a").is_err() {
            break;
        }
    }
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&out);
    assert!(
        elapsed < Duration::from_secs(15),
        "the connection stayed open {elapsed:?}"
    );
    assert!(
        out.is_empty() || text.starts_with("HTTP/1.1 408"),
        "answered {text}"
    );
}
