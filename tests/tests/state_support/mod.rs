//! Shared by the `state_*` integration tests: a JSON client for the
//! meshguard-state API and a Redis + service pair.

#![allow(dead_code)]

use meshguard_harness::state::{StateOptions, StateService};
use meshguard_harness::Redis;
use serde_json::Value;
use std::io::Write;
use std::time::Duration;

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn ok(self) -> Value {
        assert_eq!(self.status, 200, "{}", self.body);
        self.body
    }
}

pub struct Api {
    base: String,
    agent: ureq::Agent,
}

/// Which credential a request carries.
#[derive(Clone, Copy)]
pub enum As<'a> {
    Nobody,
    Token(&'a str),
}

impl Api {
    pub fn new(base: String) -> Api {
        // A new connection per request: the service answers some requests
        // (401, 413) before reading their body, and then hyper closes the
        // connection; a pooled one could be reused just as it closes
        // ("Peer disconnected"), which made this suite flaky.
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .build()
            .into();
        Api { base, agent }
    }

    pub fn send(
        &self,
        method: &str,
        path: &str,
        who: As,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        let url = format!("{}{path}", self.base);
        let mut builder = request_builder(method, &url);
        if let As::Token(t) = who {
            builder = builder.header("authorization", format!("Bearer {t}"));
        }
        for (n, v) in headers {
            builder = builder.header(*n, *v);
        }
        let has_content_type = headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
        if body.is_some() && !has_content_type {
            builder = builder.header("content-type", "application/json");
        }
        let request = builder
            .body(body.map(<[u8]>::to_vec).unwrap_or_default())
            .expect("request");
        let mut response = self
            .agent
            .run(request)
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn get(&self, path: &str, who: As) -> Reply {
        self.send("GET", path, who, &[], None)
    }

    pub fn post(&self, path: &str, who: As, body: &Value) -> Reply {
        self.send("POST", path, who, &[], Some(body.to_string().as_bytes()))
    }

    pub fn put(&self, path: &str, who: As, body: &Value) -> Reply {
        self.send("PUT", path, who, &[], Some(body.to_string().as_bytes()))
    }

    pub fn delete(&self, path: &str, who: As) -> Reply {
        self.send("DELETE", path, who, &[], None)
    }
}

fn request_builder(method: &str, url: &str) -> ureq::http::request::Builder {
    ureq::http::Request::builder().method(method).uri(url)
}

/// A Redis and a meshguard-state on it.
pub struct Stack {
    pub service: StateService,
    pub redis: Redis,
    pub api: Api,
    _limits: Option<tempfile::NamedTempFile>,
}

impl Stack {
    pub fn start() -> Stack {
        Stack::start_with(None, &[])
    }

    /// `limits`: a limits file's JSON; `args`: extra `serve` flags.
    pub fn start_with(limits: Option<Value>, args: &[&str]) -> Stack {
        let redis = Redis::start();
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let limits = limits.map(|l| {
            let mut f = tempfile::NamedTempFile::new().expect("limits file");
            f.write_all(l.to_string().as_bytes()).expect("write limits");
            args.push("--limits-file".into());
            args.push(f.path().to_string_lossy().into_owned());
            f
        });
        let service = StateService::start_with(
            &redis.url(),
            StateOptions {
                args,
                ..StateOptions::default()
            },
        );
        let api = Api::new(service.url());
        Stack {
            service,
            redis,
            api,
            _limits: limits,
        }
    }

    pub fn admin(&self) -> As<'_> {
        As::Token(&self.service.admin_token)
    }

    pub fn plugin(&self) -> As<'_> {
        As::Token(&self.service.plugin_secret)
    }
}

pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
