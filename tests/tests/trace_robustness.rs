//! Bad configuration is refused by Envoy with a message naming the field;
//! bad header bytes never break the proxy; the plugin starts without config.

use meshguard_harness::envoy::assert_configs_refused;
use meshguard_harness::http::send_raw;
use meshguard_harness::{Envoy, EnvoySpec, Plugin, Request};

#[test]
fn malformed_configuration_is_refused_naming_the_field() {
    let cases = [
        (
            r#"{"sampling_ratio": 1.5}"#,
            "field `sampling_ratio`: must be a number from 0 to 1",
        ),
        (
            r#"{"sampling_ratio": "often"}"#,
            "field `sampling_ratio`: invalid type",
        ),
        (
            r#"{"sampling_mode": "sometimes"}"#,
            "field `sampling_mode`: unknown variant `sometimes`",
        ),
        (
            r#"{"tracestate_key": "Not Valid"}"#,
            "field `tracestate_key`",
        ),
        (
            r#"{"export": {"interval_ms": 100}}"#,
            "field `export`: missing field `cluster`",
        ),
        (
            r#"{"sampling_ratoi": 0.5}"#,
            "unknown field `sampling_ratoi`",
        ),
        (r#"{"sampling_ratio": 0.5"#, "invalid configuration"),
    ];
    assert_configs_refused("trace", &cases);
}

#[test]
fn starts_with_defaults_without_configuration() {
    let envoy = Envoy::start(EnvoySpec::new().plugin(Plugin::new("trace", None)));
    assert_eq!(envoy.get("/healthz").status, 200);
    assert_eq!(envoy.plugin_stat("trace.traces_started"), 1);
}

/// Header values: random bytes of the kinds an HTTP/1 parser lets through
/// (visible ASCII, spaces, tabs, obs-text) and mutations of valid values.
fn fuzz_values(n: usize) -> Vec<Vec<u8>> {
    let mut state: u64 = 0x5eed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet: Vec<u8> = (0x20..0x7f).chain(0x80..=0xff).chain([b'\t']).collect();
    let valid = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_vec();
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                let len = (next() % 700) as usize;
                (0..len)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect()
            } else {
                let mut v = valid.clone();
                for _ in 0..1 + next() % 4 {
                    let at = (next() % v.len() as u64) as usize;
                    v[at] = alphabet[(next() % alphabet.len() as u64) as usize];
                }
                if next() % 3 == 0 {
                    v.extend(std::iter::repeat_n(b'-', (next() % 40) as usize));
                }
                v
            }
        })
        .collect()
}

#[test]
fn random_header_bytes_get_valid_responses_and_never_kill_the_vm() {
    let config =
        serde_json::json!({"sampling_ratio": 1.0, "tracestate_key": "mg", "trace_response": true});
    let envoy = Envoy::start(EnvoySpec::new().plugin(Plugin::new("trace", Some(config))));
    for (i, value) in fuzz_values(600).iter().enumerate() {
        let name = if i % 3 == 0 {
            "tracestate"
        } else {
            "traceparent"
        };
        let mut request = Request::get("/healthz").header_bytes(name, value);
        if i % 5 == 0 {
            request = request
                .header_bytes("traceparent", value)
                .header_bytes("tracestate", value);
        }
        let response = send_raw(envoy.port, &request.to_bytes())
            .unwrap_or_else(|e| panic!("no valid response for {value:?}: {e}"));
        assert!(
            response.status == 200 || response.status == 400,
            "status {} for {value:?}",
            response.status
        );
        if response.status == 200 {
            assert!(
                response.header("traceresponse").is_some(),
                "plugin ran for {value:?}"
            );
        }
    }
    let response = envoy.get("/healthz");
    assert!(
        response.header("traceresponse").is_some(),
        "the VM is alive"
    );
    let stats = envoy.stats();
    let reloads: u64 = stats
        .iter()
        .filter(|(k, _)| k.starts_with("wasm.") && k.contains("vm_reload"))
        .map(|(_, v)| *v)
        .sum();
    assert_eq!(reloads, 0, "no VM crashed");
    assert!(!envoy.log().contains("panicked"), "{}", envoy.log());
}
