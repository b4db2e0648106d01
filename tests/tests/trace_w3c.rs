//! The W3C Trace Context edge cases, through a real Envoy with
//! meshguard_trace.wasm in front of an upstream that echoes what it received.

use meshguard_harness::upstream::{Recorded, RecordingServer};
use meshguard_harness::{Envoy, EnvoySpec, Plugin, Request};
use serde_json::json;

const VALID: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

struct Mesh {
    echo: RecordingServer,
    envoy: Envoy,
}

fn mesh(config: serde_json::Value) -> Mesh {
    let echo = RecordingServer::echo();
    let envoy = Envoy::start(
        EnvoySpec::new()
            .plugin(Plugin::new("trace", Some(config)))
            .cluster("echo", echo.port)
            .route("/echo", "echo"),
    );
    Mesh { echo, envoy }
}

impl Mesh {
    /// Sends the request and returns what the upstream received.
    fn upstream_saw(&self, request: Request) -> Recorded {
        let before = self.echo.requests().len();
        let response = self.envoy.send(&request);
        assert_eq!(response.status, 200, "{}", response.text());
        let seen = self.echo.requests();
        assert_eq!(seen.len(), before + 1, "the upstream saw the request");
        seen.last().cloned().unwrap_or_else(|| unreachable!())
    }
}

/// The single traceparent the upstream got, split into its fields.
fn forwarded(seen: &Recorded) -> [String; 4] {
    let values = seen.headers_named("traceparent");
    assert_eq!(values.len(), 1, "exactly one traceparent: {values:?}");
    let fields: Vec<String> = values[0].split('-').map(String::from).collect();
    assert_eq!(fields.len(), 4, "{values:?}");
    assert_eq!(fields[0], "00", "always propagated as version 00");
    assert!(fields[1].len() == 32 && fields[1] != "0".repeat(32));
    assert!(fields[2].len() == 16 && fields[2] != "0".repeat(16));
    [
        fields[0].clone(),
        fields[1].clone(),
        fields[2].clone(),
        fields[3].clone(),
    ]
}

fn tracestate(seen: &Recorded) -> Option<String> {
    let values = seen.headers_named("tracestate");
    assert!(values.len() <= 1, "one tracestate at most: {values:?}");
    values.first().map(|v| v.to_string())
}

#[derive(Debug)]
enum Expect {
    /// The incoming trace continues with this sampled flag.
    Continued { sampled: bool },
    /// A new trace starts (random trace-id, Level-2 random flag).
    Restarted,
}

#[test]
fn traceparent_edge_cases() {
    let mesh = mesh(json!({"sampling_ratio": 0.0}));
    let upper = VALID.to_uppercase().replacen("0X", "0x", 0);
    let cases: Vec<(&str, Vec<&[u8]>, Expect)> =
        vec![
        ("valid", vec![VALID.as_bytes()], Expect::Continued { sampled: true }),
        (
            "valid, not sampled",
            vec![b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"],
            Expect::Continued { sampled: false },
        ),
        ("uppercase", vec![upper.as_bytes()], Expect::Restarted),
        (
            "all-zero trace-id",
            vec![b"00-00000000000000000000000000000000-b7ad6b7169203331-01"],
            Expect::Restarted,
        ),
        (
            "all-zero parent-id",
            vec![b"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"],
            Expect::Restarted,
        ),
        (
            "version ff",
            vec![b"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"],
            Expect::Restarted,
        ),
        (
            "version 00 with trailing data",
            vec![b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"],
            Expect::Restarted,
        ),
        (
            "higher version with more fields",
            vec![b"cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-the-future-holds"],
            Expect::Continued { sampled: true },
        ),
        (
            "higher version, flags glued to data",
            vec![b"cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01what"],
            Expect::Restarted,
        ),
        (
            "higher version too short",
            vec![b"cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1"],
            Expect::Restarted,
        ),
        (
            "optional whitespace",
            vec![b" \t00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\t "],
            Expect::Continued { sampled: true },
        ),
        ("duplicated header", vec![VALID.as_bytes(), VALID.as_bytes()], Expect::Restarted),
        ("empty", vec![b""], Expect::Restarted),
        ("garbage", vec![b"hello"], Expect::Restarted),
        (
            "non-ASCII bytes",
            vec![b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033\xc3\xa9-01"],
            Expect::Restarted,
        ),
        (
            "wrong delimiter",
            vec![b"00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01"],
            Expect::Restarted,
        ),
        (
            "short trace-id",
            vec![b"00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01"],
            Expect::Restarted,
        ),
        ("missing", vec![], Expect::Restarted),
    ];
    for (name, values, expect) in cases {
        let mut request = Request::get("/echo");
        for value in &values {
            request = request.header_bytes("traceparent", value);
        }
        let seen = mesh.upstream_saw(request);
        let [_, trace_id, parent_id, flags] = forwarded(&seen);
        assert_ne!(
            parent_id, "b7ad6b7169203331",
            "{name}: this hop's own parent-id"
        );
        match expect {
            Expect::Continued { sampled } => {
                assert_eq!(trace_id, TRACE_ID, "{name}: trace-id kept");
                let flags = u8::from_str_radix(&flags, 16).unwrap();
                assert_eq!(flags & 1 == 1, sampled, "{name}: sampled flag");
            }
            Expect::Restarted => {
                assert_ne!(trace_id, TRACE_ID, "{name}: new trace");
                // sampling_ratio 0: a new trace is not sampled; Level 2 random flag set
                assert_eq!(flags, "02", "{name}: flags of a new trace");
            }
        }
    }
    let stats = mesh.envoy.settled_stats();
    assert!(stats["wasmcustom.meshguard.trace.contexts_rejected"] >= 13);
    assert_eq!(stats["wasmcustom.meshguard.trace.traces_continued"], 4);
}

#[test]
fn tracestate_edge_cases() {
    let mesh = mesh(json!({}));
    let members = |n: usize| {
        (0..n)
            .map(|i| format!("k{i}=v{i}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let thirty_two = members(32);
    let thirty_three = members(33);
    let key_256 = format!("{}=1", "z".repeat(256));
    let key_257 = format!("{}=1", "z".repeat(257));
    let long_tenant = format!("{}@v=1", "t".repeat(242));
    let long_system = format!("t@{}=1", "v".repeat(15));
    let cases: Vec<(&str, Vec<&str>, Option<&str>)> = vec![
        (
            "kept as is",
            vec!["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"],
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
        ),
        (
            "two headers are combined",
            vec!["rojo=1", "congo=2"],
            Some("rojo=1,congo=2"),
        ),
        (
            "ows and empty members",
            vec!["rojo=1 , ,\tcongo=2"],
            Some("rojo=1,congo=2"),
        ),
        (
            "multi-tenant key",
            vec!["fw529a3039@dt=1"],
            Some("fw529a3039@dt=1"),
        ),
        (
            "32 members kept",
            vec![thirty_two.as_str()],
            Some(thirty_two.as_str()),
        ),
        ("33 members dropped", vec![thirty_three.as_str()], None),
        (
            "duplicated key: the list is inherited, the first kept",
            vec!["rojo=1,congo=2,rojo=3"],
            Some("rojo=1,congo=2"),
        ),
        ("identical duplicates", vec!["foo=1,foo=1"], Some("foo=1")),
        (
            "duplicated key across headers",
            vec!["rojo=1", "rojo=2"],
            Some("rojo=1"),
        ),
        (
            "Level 2 keys with at signs anywhere",
            vec!["foo@=1,foo@@bar=2,foo@bar@baz=3,bar=4"],
            Some("foo@=1,foo@@bar=2,foo@bar@baz=3,bar=4"),
        ),
        (
            "256-character key",
            vec![key_256.as_str()],
            Some(key_256.as_str()),
        ),
        (
            "long tenant, short system",
            vec![long_tenant.as_str()],
            Some(long_tenant.as_str()),
        ),
        (
            "short tenant, long system",
            vec![long_system.as_str()],
            Some(long_system.as_str()),
        ),
        (
            "257-character key dropped",
            vec!["foo=1", key_257.as_str()],
            None,
        ),
        ("key starting with @ dropped", vec!["@foo=1,bar=2"], None),
        ("uppercase key dropped", vec!["Rojo=1"], None),
        ("member without value dropped", vec!["rojo"], None),
        ("empty value dropped", vec!["foo=,bar=3"], None),
        ("value with = dropped", vec!["rojo=a=b"], None),
        ("empty header", vec![""], None),
        (
            "empty header next to a member",
            vec!["", "foo=1"],
            Some("foo=1"),
        ),
    ];
    for (name, values, expected) in cases {
        let mut request = Request::get("/echo").header("traceparent", VALID);
        for value in &values {
            request = request.header("tracestate", value);
        }
        let seen = mesh.upstream_saw(request);
        let [_, trace_id, ..] = forwarded(&seen);
        assert_eq!(
            trace_id, TRACE_ID,
            "{name}: an invalid tracestate does not restart the trace"
        );
        assert_eq!(tracestate(&seen).as_deref(), expected, "{name}");
    }

    let seen = mesh.upstream_saw(Request::get("/echo").header("tracestate", "rojo=1"));
    assert_eq!(
        tracestate(&seen),
        None,
        "tracestate without traceparent is discarded"
    );
    let seen = mesh.upstream_saw(
        Request::get("/echo")
            .header("traceparent", "garbage")
            .header("tracestate", "rojo=1"),
    );
    assert_eq!(
        tracestate(&seen),
        None,
        "tracestate of a rejected traceparent is discarded"
    );
}

#[test]
fn own_tracestate_member_goes_first_and_long_members_go_first_when_truncating() {
    let mesh = mesh(json!({"tracestate_key": "meshguard"}));
    let seen = mesh.upstream_saw(
        Request::get("/echo")
            .header("traceparent", VALID)
            .header("tracestate", "rojo=1,meshguard=old,congo=2"),
    );
    let [_, _, parent_id, _] = forwarded(&seen);
    assert_eq!(
        tracestate(&seen).unwrap(),
        format!("meshguard={parent_id},rojo=1,congo=2")
    );

    let thirty_two = (0..32)
        .map(|i| format!("k{i}=v"))
        .collect::<Vec<_>>()
        .join(",");
    let seen = mesh.upstream_saw(
        Request::get("/echo")
            .header("traceparent", VALID)
            .header("tracestate", &thirty_two),
    );
    let state = tracestate(&seen).unwrap();
    let keys: Vec<&str> = state
        .split(',')
        .map(|m| m.split('=').next().unwrap())
        .collect();
    assert_eq!(keys.len(), 32, "never more than 32 members");
    assert_eq!(keys[0], "meshguard");
    assert!(!keys.contains(&"k31"), "the right-most member made room");

    let long = "l".repeat(250);
    let short = "s".repeat(120);
    let state_in = format!("big={long},a={short},b={short},c={short}");
    let seen = mesh.upstream_saw(
        Request::get("/echo")
            .header("traceparent", VALID)
            .header("tracestate", &state_in),
    );
    let state = tracestate(&seen).unwrap();
    assert!(
        !state.contains("big="),
        "the long member is dropped first: {state}"
    );
    assert!(state.ends_with(&format!("a={short},b={short},c={short}")));

    let seen = mesh.upstream_saw(Request::get("/echo"));
    let [_, _, parent_id, _] = forwarded(&seen);
    assert_eq!(tracestate(&seen).unwrap(), format!("meshguard={parent_id}"));
}

#[test]
fn parent_based_and_always_ratio_sampling() {
    let unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    let parent_based = mesh(json!({"sampling_ratio": 1.0, "sampling_mode": "parent_based"}));
    let seen = parent_based.upstream_saw(Request::get("/echo").header("traceparent", unsampled));
    assert_eq!(
        forwarded(&seen)[3],
        "00",
        "parent-based honours the caller's decision"
    );
    let seen = parent_based.upstream_saw(Request::get("/echo"));
    assert_eq!(
        forwarded(&seen)[3],
        "03",
        "new traces are sampled at ratio 1"
    );

    let always = mesh(json!({"sampling_ratio": 1.0, "sampling_mode": "always_ratio"}));
    let seen = always.upstream_saw(Request::get("/echo").header("traceparent", unsampled));
    assert_eq!(forwarded(&seen)[3], "01", "always-ratio decides itself");
}

#[test]
fn traceresponse_and_request_id() {
    let mesh = mesh(json!({"trace_response": true}));
    let response = mesh
        .envoy
        .send(&Request::get("/echo").header("traceparent", VALID));
    let traceresponse = response
        .header("traceresponse")
        .expect("traceresponse header");
    let seen = mesh.echo.requests();
    let upstream_tp = seen.last().unwrap().headers_named("traceparent")[0].to_string();
    assert_eq!(
        traceresponse, upstream_tp,
        "traceresponse names this hop's span"
    );
    assert!(!seen
        .last()
        .unwrap()
        .headers_named("x-request-id")
        .is_empty());

    let response = mesh.envoy.get("/healthz");
    assert!(
        response.header("traceresponse").is_some(),
        "local replies carry it too"
    );
}

/// The cases the W3C suite (w3c/trace-context `test/`) checks at
/// `SPEC_LEVEL=2 STRICT_LEVEL=2`, with its header values, so every
/// `scripts/test` run covers what `scripts/w3c-trace-context` checks.
#[test]
fn w3c_suite_cases_at_level_2() {
    const ID: &str = "12345678901234567890123456789012";
    const TP: &str = "00-12345678901234567890123456789012-1234567890123456-01";
    let mesh = mesh(json!({"sampling_ratio": 0.0, "tracestate_key": "meshguard"}));
    let send = |headers: &[(&str, &str)]| {
        let mut request = Request::get("/echo");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let seen = mesh.upstream_saw(request);
        let fields = forwarded(&seen);
        let members: Vec<(String, String)> = tracestate(&seen)
            .unwrap_or_default()
            .split(',')
            .filter_map(|m| m.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        (fields, members)
    };

    let tp_dot = format!("{TP}.");
    let tp_future = format!("{TP}-what-the-future-will-be-like");
    let tp_space_before = format!(" {TP}");
    let tp_tab_before = format!("\t{TP}");
    let tp_space_after = format!("{TP} ");
    let tp_tab_after = format!("{TP}\t");
    let tp_ows_both = format!("\t {TP} \t");
    // traceparent: continued (true) or a new trace (false).
    type Headers<'a> = Vec<(&'a str, &'a str)>;
    let traceparent_cases: Vec<(&str, Headers, bool)> = vec![
        ("included", vec![("traceparent", TP)], true),
        (
            "duplicated",
            vec![
                ("traceparent", "00-12345678901234567890123456789011-1234567890123456-01"),
                ("traceparent", TP),
            ],
            false,
        ),
        ("header name trace-parent", vec![("trace-parent", TP)], false),
        ("header name trace.parent", vec![("trace.parent", TP)], false),
        ("casing TraceParent", vec![("TraceParent", TP)], true),
        ("casing TrAcEpArEnT", vec![("TrAcEpArEnT", TP)], true),
        ("casing TRACEPARENT", vec![("TRACEPARENT", TP)], true),
        ("version 00, trailing dot", vec![("traceparent", &tp_dot)], false),
        (
            "version 00, trailing fields",
            vec![("traceparent", &tp_future)],
            false,
        ),
        ("version cc", vec![("traceparent", "cc-12345678901234567890123456789012-1234567890123456-01")], true),
        (
            "version cc, more fields",
            vec![("traceparent", "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like")],
            true,
        ),
        (
            "version cc, dot after the flags",
            vec![("traceparent", "cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like")],
            false,
        ),
        ("version ff", vec![("traceparent", "ff-12345678901234567890123456789012-1234567890123456-01")], false),
        ("version .0", vec![("traceparent", ".0-12345678901234567890123456789012-1234567890123456-01")], false),
        ("version 0.", vec![("traceparent", "0.-12345678901234567890123456789012-1234567890123456-01")], false),
        ("version 000", vec![("traceparent", "000-12345678901234567890123456789012-1234567890123456-01")], false),
        ("version 0000", vec![("traceparent", "0000-12345678901234567890123456789012-1234567890123456-01")], false),
        ("version 0", vec![("traceparent", "0-12345678901234567890123456789012-1234567890123456-01")], false),
        ("trace-id .…", vec![("traceparent", "00-.2345678901234567890123456789012-1234567890123456-01")], false),
        ("trace-id ….", vec![("traceparent", "00-1234567890123456789012345678901.-1234567890123456-01")], false),
        ("trace-id too long", vec![("traceparent", "00-123456789012345678901234567890123-1234567890123456-01")], false),
        ("trace-id too short", vec![("traceparent", "00-1234567890123456789012345678901-1234567890123456-01")], false),
        ("parent-id zero", vec![("traceparent", "00-12345678901234567890123456789012-0000000000000000-01")], false),
        ("parent-id .…", vec![("traceparent", "00-12345678901234567890123456789012-.234567890123456-01")], false),
        ("parent-id ….", vec![("traceparent", "00-12345678901234567890123456789012-123456789012345.-01")], false),
        ("parent-id too long", vec![("traceparent", "00-12345678901234567890123456789012-12345678901234567-01")], false),
        ("parent-id too short", vec![("traceparent", "00-12345678901234567890123456789012-123456789012345-01")], false),
        ("flags .0", vec![("traceparent", "00-12345678901234567890123456789012-1234567890123456-.0")], false),
        ("flags 0.", vec![("traceparent", "00-12345678901234567890123456789012-1234567890123456-0.")], false),
        ("flags too long", vec![("traceparent", "00-12345678901234567890123456789012-1234567890123456-001")], false),
        ("flags too short", vec![("traceparent", "00-12345678901234567890123456789012-1234567890123456-1")], false),
        ("leading space", vec![("traceparent", &tp_space_before)], true),
        ("leading tab", vec![("traceparent", &tp_tab_before)], true),
        ("trailing space", vec![("traceparent", &tp_space_after)], true),
        ("trailing tab", vec![("traceparent", &tp_tab_after)], true),
        ("both", vec![("traceparent", &tp_ows_both)], true),
    ];
    for (name, headers, continued) in &traceparent_cases {
        let ([_, trace_id, parent_id, _], _) = send(headers);
        assert_ne!(parent_id, "1234567890123456", "{name}: a new parent-id");
        assert_eq!(trace_id == ID, *continued, "{name}: trace-id {trace_id}");
    }
    let ([_, trace_id, _, _], _) = send(&[(
        "traceparent",
        "00-00000000000000000000000000000000-1234567890123456-01",
    )]);
    assert_ne!(trace_id, "0".repeat(32), "all-zero trace-id replaced");

    // Level 2: the random flag is propagated.
    let ([_, trace_id, parent_id, flags], _) = send(&[(
        "traceparent",
        "00-12345678901234567890123456789012-1234567890123456-02",
    )]);
    assert_eq!(trace_id, ID);
    assert_ne!(parent_id, "1234567890123456");
    assert_eq!(
        u8::from_str_radix(&flags, 16).unwrap() & 2,
        2,
        "random flag"
    );

    // tracestate: members that must and must not come out.
    let tp = (
        "traceparent",
        "00-12345678901234567890123456789012-1234567890123456-00",
    );
    let key_chars = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
    let vendor_key = format!("{key_chars}@a-z0-9_-*/");
    let all_values: String = (0x20u8..=0x7e)
        .filter(|c| *c != b',' && *c != b'=')
        .map(char::from)
        .collect();
    let plain_member = format!("{key_chars}={all_values}");
    let vendor_member = format!("{vendor_key}={all_values}");
    let z256 = "z".repeat(256);
    let z256_member = format!("{z256}=1");
    let z257_member = format!("{}=1", "z".repeat(257));
    let t241 = format!("{}@{}", "t".repeat(241), "v".repeat(14));
    let t241_member = format!("{t241}=1");
    let t242 = format!("{}@v", "t".repeat(242));
    let t242_member = format!("{t242}=1");
    let v15 = format!("t@{}", "v".repeat(15));
    let v15_member = format!("{v15}=1");
    let bars = |range: std::ops::RangeInclusive<u32>| {
        range
            .map(|i| format!("bar{i:02}={i:02}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let (b1, b2, b3, b4, b4_33) = (
        bars(1..=10),
        bars(11..=20),
        bars(21..=30),
        bars(31..=32),
        bars(31..=33),
    );
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, &'a str)>,
        Vec<(&'a str, &'a str)>,
        Vec<&'a str>,
    );
    let tracestate_cases: Vec<Case> = vec![
        (
            "missing traceparent",
            vec![("tracestate", "foo=1,bar=2")],
            vec![],
            vec!["foo", "bar"],
        ),
        (
            "inherited",
            vec![tp, ("tracestate", "foo=1,bar=2")],
            vec![("foo", "1"), ("bar", "2")],
            vec![],
        ),
        (
            "name trace-state",
            vec![tp, ("trace-state", "foo=1")],
            vec![],
            vec!["foo"],
        ),
        (
            "name trace.state",
            vec![tp, ("trace.state", "foo=1")],
            vec![],
            vec!["foo"],
        ),
        (
            "casing TraceState",
            vec![tp, ("TraceState", "foo=1")],
            vec![("foo", "1")],
            vec![],
        ),
        (
            "casing TrAcEsTaTe",
            vec![tp, ("TrAcEsTaTe", "foo=1")],
            vec![("foo", "1")],
            vec![],
        ),
        (
            "casing TRACESTATE",
            vec![tp, ("TRACESTATE", "foo=1")],
            vec![("foo", "1")],
            vec![],
        ),
        ("empty", vec![tp, ("tracestate", "")], vec![], vec![""]),
        (
            "empty after",
            vec![tp, ("tracestate", "foo=1"), ("tracestate", "")],
            vec![("foo", "1")],
            vec![],
        ),
        (
            "empty before",
            vec![tp, ("tracestate", ""), ("tracestate", "foo=1")],
            vec![("foo", "1")],
            vec![],
        ),
        (
            "duplicated foo=1,foo=1",
            vec![tp, ("tracestate", "foo=1,foo=1")],
            vec![("foo", "1")],
            vec![],
        ),
        (
            "duplicated across headers",
            vec![tp, ("tracestate", "foo=1"), ("tracestate", "foo=1")],
            vec![("foo", "1")],
            vec![],
        ),
        (
            "all allowed characters",
            vec![tp, ("tracestate", &plain_member)],
            vec![(key_chars, &all_values)],
            vec![],
        ),
        (
            "all allowed, vendor key",
            vec![tp, ("tracestate", &vendor_member)],
            vec![(&vendor_key, &all_values)],
            vec![],
        ),
        (
            "ows",
            vec![tp, ("tracestate", "foo=1 \t , \t bar=2, \t baz=3")],
            vec![("foo", "1"), ("bar", "2"), ("baz", "3")],
            vec![],
        ),
        (
            "ows tabs",
            vec![tp, ("tracestate", "foo=1\t \t,\t \tbar=2,\t \tbaz=3")],
            vec![("foo", "1"), ("bar", "2"), ("baz", "3")],
            vec![],
        ),
        (
            "leading space",
            vec![tp, ("tracestate", " foo=1")],
            vec![("foo", "1")],
            vec![],
        ),
        (
            "leading tab",
            vec![tp, ("tracestate", "\tfoo=1")],
            vec![("foo", "1")],
            vec![],
        ),
        (
            "trailing space",
            vec![tp, ("tracestate", "foo=1 ")],
            vec![("foo", "1")],
            vec![],
        ),
        (
            "trailing tab",
            vec![tp, ("tracestate", "foo=1\t")],
            vec![("foo", "1")],
            vec![],
        ),
        (
            "both",
            vec![tp, ("tracestate", "\t foo=1 \t")],
            vec![("foo", "1")],
            vec![],
        ),
        (
            "key with a space",
            vec![tp, ("tracestate", "foo =1")],
            vec![],
            vec!["foo ", "foo"],
        ),
        (
            "uppercase key",
            vec![tp, ("tracestate", "FOO=1")],
            vec![],
            vec!["FOO"],
        ),
        (
            "key with a dot",
            vec![tp, ("tracestate", "foo.bar=1")],
            vec![],
            vec!["foo.bar"],
        ),
        (
            "key foo@",
            vec![tp, ("tracestate", "foo@=1,bar=2")],
            vec![("foo@", "1"), ("bar", "2")],
            vec![],
        ),
        (
            "key @foo",
            vec![tp, ("tracestate", "@foo=1,bar=2")],
            vec![],
            vec!["bar"],
        ),
        (
            "key foo@@bar",
            vec![tp, ("tracestate", "foo@@bar=1,bar=2")],
            vec![("foo@@bar", "1"), ("bar", "2")],
            vec![],
        ),
        (
            "key foo@bar@baz",
            vec![tp, ("tracestate", "foo@bar@baz=1,bar=2")],
            vec![("foo@bar@baz", "1"), ("bar", "2")],
            vec![],
        ),
        (
            "32 members",
            vec![
                tp,
                ("tracestate", &b1),
                ("tracestate", &b2),
                ("tracestate", &b3),
                ("tracestate", &b4),
            ],
            vec![("bar01", "01")],
            vec![],
        ),
        (
            "33 members",
            vec![
                tp,
                ("tracestate", &b1),
                ("tracestate", &b2),
                ("tracestate", &b3),
                ("tracestate", &b4_33),
            ],
            vec![],
            vec!["bar01"],
        ),
        (
            "256-character key",
            vec![tp, ("tracestate", "foo=1"), ("tracestate", &z256_member)],
            vec![("foo", "1"), (&z256, "1")],
            vec![],
        ),
        (
            "257-character key",
            vec![tp, ("tracestate", "foo=1"), ("tracestate", &z257_member)],
            vec![],
            vec!["foo"],
        ),
        (
            "241@14",
            vec![tp, ("tracestate", "foo=1"), ("tracestate", &t241_member)],
            vec![("foo", "1"), (&t241, "1")],
            vec![],
        ),
        (
            "242@1",
            vec![tp, ("tracestate", "foo=1"), ("tracestate", &t242_member)],
            vec![("foo", "1"), (&t242, "1")],
            vec![],
        ),
        (
            "1@15",
            vec![tp, ("tracestate", "foo=1"), ("tracestate", &v15_member)],
            vec![("foo", "1"), (&v15, "1")],
            vec![],
        ),
        (
            "value with =",
            vec![tp, ("tracestate", "foo=bar=baz")],
            vec![],
            vec!["foo"],
        ),
        (
            "empty value",
            vec![tp, ("tracestate", "foo=,bar=3")],
            vec![],
            vec!["foo", "bar"],
        ),
    ];
    for (name, headers, present, absent) in &tracestate_cases {
        let (_, members) = send(headers);
        let get = |key: &str| {
            members
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            members.first().map(|(k, _)| k.as_str()),
            Some("meshguard"),
            "{name}: own member first"
        );
        for (key, value) in present {
            assert_eq!(
                get(key),
                Some(*value),
                "{name}: {key} inherited: {members:?}"
            );
        }
        for key in absent {
            assert_eq!(get(key), None, "{name}: {key} discarded: {members:?}");
        }
        assert!(members.len() <= 32, "{name}: at most 32 members");
    }
    let (_, members) = send(&[tp, ("tracestate", "foo=1,foo=2")]);
    assert!(members
        .iter()
        .any(|m| m == &("foo".into(), "1".into()) || m == &("foo".into(), "2".into())));
    let (_, members) = send(&[
        tp,
        ("tracestate", "foo=1,bar=2"),
        ("tracestate", "rojo=1,congo=2"),
        ("tracestate", "baz=3"),
    ]);
    let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["meshguard", "foo", "bar", "rojo", "congo", "baz"],
        "headers combined in order"
    );

    // The suite's AdvancedTest: every request is a span of its own.
    for traceparent in [
        Some(TP),
        None,
        Some("00-00000000000000000000000000000000-1234567890123456-01"),
    ] {
        let headers: Vec<(&str, &str)> = traceparent
            .map(|t| ("traceparent", t))
            .into_iter()
            .collect();
        let parents: std::collections::BTreeSet<String> =
            (0..3).map(|_| send(&headers).0[2].clone()).collect();
        assert_eq!(parents.len(), 3, "{traceparent:?}: three parent-ids");
    }
}
