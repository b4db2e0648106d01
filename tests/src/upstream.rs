//! In-process HTTP servers standing in for an upstream: one that echoes the
//! headers it received, one that collects OTLP exports. Both record every
//! request they see.

use crate::ports::free_port;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

type Reply = fn(&Recorded) -> (u16, Vec<u8>);

pub struct RecordingServer {
    pub port: u16,
    seen: Arc<Mutex<Vec<Recorded>>>,
    server: Arc<tiny_http::Server>,
}

impl RecordingServer {
    pub fn start(reply: Reply) -> RecordingServer {
        // The server binds in this process: a port another test took
        // between `free_port` and the bind is simply skipped.
        let (port, server) = (0..20)
            .find_map(|_| {
                let port = free_port();
                tiny_http::Server::http(("127.0.0.1", port))
                    .ok()
                    .map(|server| (port, server))
            })
            .unwrap_or_else(|| panic!("recording server: no port could be bound"));
        let server = Arc::new(server);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (server_ref, seen_ref) = (server.clone(), seen.clone());
        std::thread::spawn(move || {
            for mut request in server_ref.incoming_requests() {
                let mut body = Vec::new();
                let _ = request.as_reader().read_to_end(&mut body);
                let recorded = Recorded {
                    method: request.method().to_string(),
                    path: request.url().to_string(),
                    headers: request
                        .headers()
                        .iter()
                        .map(|h| {
                            (
                                h.field.to_string().to_ascii_lowercase(),
                                h.value.to_string(),
                            )
                        })
                        .collect(),
                    body,
                };
                let (status, body) = reply(&recorded);
                seen_ref
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(recorded);
                let response = tiny_http::Response::from_data(body)
                    .with_status_code(status)
                    .with_header(
                        tiny_http::Header::from_bytes("content-type", "application/json")
                            .unwrap_or_else(|_| unreachable!("static header")),
                    );
                let _ = request.respond(response);
            }
        });
        RecordingServer { port, seen, server }
    }

    /// Answers with the request it saw as JSON: `{method, path, headers: [[name, value]]}`.
    pub fn echo() -> RecordingServer {
        RecordingServer::start(|r| {
            let body = serde_json::json!({
                "method": r.method,
                "path": r.path,
                "headers": r.headers,
            });
            (200, body.to_string().into_bytes())
        })
    }

    /// Accepts OTLP/HTTP JSON exports.
    pub fn otlp_collector() -> RecordingServer {
        RecordingServer::start(|_| (200, b"{}".to_vec()))
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every span in every OTLP export received so far.
    pub fn spans(&self) -> Vec<serde_json::Value> {
        let mut spans = Vec::new();
        for request in self.requests() {
            let Ok(body) = serde_json::from_slice::<serde_json::Value>(&request.body) else {
                continue;
            };
            for resource in body["resourceSpans"].as_array().into_iter().flatten() {
                for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                    spans.extend(scope["spans"].as_array().into_iter().flatten().cloned());
                }
            }
        }
        spans
    }

    /// Waits until `ready` holds for the spans received, up to `limit`.
    pub fn wait_for_spans(
        &self,
        limit: Duration,
        ready: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + limit;
        loop {
            let spans = self.spans();
            if ready(&spans) || Instant::now() > deadline {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for RecordingServer {
    fn drop(&mut self) {
        self.server.unblock();
    }
}
