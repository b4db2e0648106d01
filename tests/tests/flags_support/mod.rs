//! Shared by the `flags_*` integration tests: an Envoy with the flags plugin
//! in front of the echo upstream, and what the upstream saw.

#![allow(dead_code)]

use meshguard_harness::upstream::RecordingServer;
use meshguard_harness::{Envoy, EnvoySpec, Plugin, Request};
use meshguard_policy::flags::{Flag, Subject};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub struct Mesh {
    pub envoy: Envoy,
    pub upstream: RecordingServer,
}

impl Mesh {
    /// Envoy with the flags plugin (`config`) routing `/api/` to an echo upstream;
    /// `state_port`: a meshguard-state for the `meshguard_state` cluster.
    pub fn start(config: Value, state_port: Option<u16>) -> Mesh {
        let upstream = RecordingServer::echo();
        let mut spec = EnvoySpec::new()
            .plugin(Plugin::new("flags", Some(config)))
            .cluster("echo", upstream.port)
            .route("/api/", "echo");
        if let Some(port) = state_port {
            spec = spec.cluster("meshguard_state", port);
        }
        Mesh {
            envoy: Envoy::start(spec),
            upstream,
        }
    }

    /// The request headers the upstream received, by name.
    pub fn upstream_headers(&self, request: Request) -> BTreeMap<String, Vec<String>> {
        let response = self.envoy.send(&request);
        assert_eq!(response.status, 200, "{}", response.text());
        let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for pair in response.json()["headers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let (Some(name), Some(value)) = (pair[0].as_str(), pair[1].as_str()) else {
                continue;
            };
            headers
                .entry(name.to_string())
                .or_default()
                .push(value.to_string());
        }
        headers
    }

    /// The one value of `header` the upstream got for a request as `sub`.
    pub fn variant_for(&self, sub: Option<&str>, header: &str) -> Option<String> {
        let mut request = Request::get("/api/ml/predict");
        if let Some(sub) = sub {
            request = request.header("x-auth-sub", sub);
        }
        let headers = self.upstream_headers(request);
        let values = headers.get(header).cloned().unwrap_or_default();
        assert!(values.len() <= 1, "{header}: {values:?}");
        values.into_iter().next()
    }

    /// Polls until the upstream sees `want` in `header` for `sub`.
    pub fn wait_for_variant(
        &self,
        sub: &str,
        header: &str,
        want: &str,
        limit: Duration,
    ) -> Duration {
        let start = Instant::now();
        loop {
            if self.variant_for(Some(sub), header).as_deref() == Some(want) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "{header} for {sub} never became {want}\nenvoy log:\n{}",
                self.envoy.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// What the policy crate says `definition` gives `sub` natively.
pub fn native_variant(definition: &Value, sub: Option<&str>) -> String {
    let flag = Flag::compile(&serde_json::from_value(definition.clone()).unwrap()).unwrap();
    let subject = Subject {
        key: sub,
        ..Subject::default()
    };
    flag.evaluate(&subject).variant.to_string()
}

pub fn ml_v2() -> Value {
    json!({
        "key": "FEATURE_ML_V2",
        "variants": {"on": true, "off": false},
        "default_variant": "off",
        "percentage": 50,
        "weights": [{"variant": "on", "weight": 1}]
    })
}

pub fn checkout() -> Value {
    json!({
        "key": "checkout",
        "variants": {"a": "a", "b": "b", "c": "c"},
        "default_variant": "a",
        "weights": [{"variant": "a", "weight": 1}, {"variant": "b", "weight": 1}, {"variant": "c", "weight": 2}]
    })
}
