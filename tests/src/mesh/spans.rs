//! Where sampled spans go: an external OTLP/HTTP collector named by URL, or
//! the mesh's own span log on loopback.

use super::OTLP_ENDPOINT_ENV;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The Envoy cluster the trace plugin exports to.
pub const COLLECTOR_CLUSTER: &str = "otel_collector";

/// Where the trace plugin sends OTLP/HTTP JSON.
pub(super) struct Collector {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) path: String,
}

impl Collector {
    /// `http://host[:port][/path]`; plain HTTP only (Envoy's cluster has no
    /// TLS here: run a collector or agent beside the mesh).
    pub(super) fn parse(url: &str) -> Result<Collector, String> {
        let invalid = |why: &str| format!("{OTLP_ENDPOINT_ENV}={url}: {why}");
        let rest = url
            .trim()
            .strip_prefix("http://")
            .ok_or_else(|| invalid("must start with http:// (OTLP/HTTP without TLS)"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]), // panic-ok: i is a char boundary from find
            None => (rest, ""),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .map_err(|_| invalid("the port must be a number from 1 to 65535"))?,
            ),
            None => (authority, 80),
        };
        if host.is_empty() || port == 0 {
            return Err(invalid("needs a host and a port"));
        }
        let path = match path.trim_end_matches('/') {
            "" => "/v1/traces".to_string(),
            p => p.to_string(),
        };
        Ok(Collector {
            host: host.to_string(),
            port,
            path,
        })
    }

    pub(super) fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub(super) fn url(&self) -> String {
        format!("http://{}{}", self.authority(), self.path)
    }
}

/// The local mesh's span log: an OTLP/HTTP JSON receiver on loopback that
/// appends each span as one line to a file (`.run/logs/spans.jsonl` under
/// `scripts/up`), so sampled spans are visible without a collector. The file
/// is bounded: past [`SpanLog::MAX_BYTES`] it moves to `spans.jsonl.1`
/// (replacing the previous one) and a new file starts.
pub struct SpanLog {
    pub port: u16,
    pub path: PathBuf,
    server: std::sync::Arc<tiny_http::Server>,
}

impl SpanLog {
    pub const MAX_BYTES: u64 = 16 * 1024 * 1024;

    /// Listens on 127.0.0.1:`port`, writing to `path`.
    pub fn start(port: u16, path: &Path) -> Result<SpanLog, String> {
        let server = std::sync::Arc::new(
            tiny_http::Server::http(("127.0.0.1", port))
                .map_err(|e| format!("span log receiver on 127.0.0.1:{port}: {e}"))?,
        );
        let (receiver, file) = (server.clone(), path.to_path_buf());
        std::thread::spawn(move || {
            for mut request in receiver.incoming_requests() {
                let mut body = Vec::new();
                let _ = std::io::Read::read_to_end(request.as_reader(), &mut body);
                let status = match serde_json::from_slice::<Value>(&body) {
                    Ok(export) => {
                        append_spans(&file, &export);
                        200
                    }
                    Err(_) => 400,
                };
                let _ = request
                    .respond(tiny_http::Response::from_string("{}").with_status_code(status));
            }
        });
        Ok(SpanLog {
            port,
            path: path.to_path_buf(),
            server,
        })
    }

    /// Every span in the current file.
    pub fn spans(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

impl Drop for SpanLog {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

/// Appends each span of an OTLP JSON export as a line, with `"service"`.
fn append_spans(path: &Path, export: &Value) {
    use std::io::Write;
    if std::fs::metadata(path).is_ok_and(|m| m.len() > SpanLog::MAX_BYTES) {
        let _ = std::fs::rename(path, path.with_extension("jsonl.1"));
    }
    let mut lines = String::new();
    for resource in export["resourceSpans"].as_array().into_iter().flatten() {
        let service = resource["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["key"] == "service.name")
            .and_then(|a| a["value"]["stringValue"].as_str())
            .unwrap_or("")
            .to_string();
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                let mut span = span.clone();
                span["service"] = json!(service);
                lines.push_str(&span.to_string());
                lines.push('\n');
            }
        }
    }
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = file.write_all(lines.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::Collector;

    #[test]
    fn collector_urls_name_what_is_wrong() {
        let c = Collector::parse("http://otel.example:4318").expect("valid");
        assert_eq!(
            (c.host.as_str(), c.port, c.path.as_str()),
            ("otel.example", 4318, "/v1/traces")
        );
        let c = Collector::parse("http://127.0.0.1:9411/api/traces/").expect("valid");
        assert_eq!((c.port, c.path.as_str()), (9411, "/api/traces"));
        assert_eq!(Collector::parse("http://jaeger").expect("valid").port, 80);
        for (url, why) in [
            ("https://otel:4318", "http://"),
            ("otel:4318", "http://"),
            ("http://otel:99999", "port"),
            ("http://otel:x", "port"),
            ("http://:4318", "host"),
        ] {
            let error = Collector::parse(url).err().unwrap_or_default();
            assert!(error.contains(why) && error.contains(url), "{url}: {error}");
        }
    }
}
