//! Upstream connectors: `GET <url>` returns the user's records as JSON,
//! `DELETE <url>` erases them (`{id}` in the URL is the percent-encoded user
//! id). Reached through Envoy in a deployment (`/api/<service>/gdpr/users/{id}`).

use crate::config::{read_secret, Connector};
use crate::error::{Error, Result};
use serde_json::Value;
use std::time::Duration;

fn encode(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn agent(c: &Connector) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(c.timeout_ms)))
        .http_status_as_error(false)
        .build()
        .into()
}

fn call(c: &Connector, method: &str, user: &str) -> Result<(u16, String)> {
    let url = c.url.replace("{id}", &encode(user));
    let mut headers = c.headers.clone();
    if let Some(path) = &c.token_file {
        headers.insert(
            "authorization".into(),
            format!("Bearer {}", read_secret(path)?),
        );
    }
    let agent = agent(c);
    let unavailable =
        |e: ureq::Error| Error::Unavailable(format!("connector {}: {method} failed: {e}", c.name));
    let mut response = if method == "GET" {
        let mut rq = agent.get(&url);
        for (k, v) in &headers {
            rq = rq.header(k, v);
        }
        rq.call().map_err(unavailable)?
    } else {
        let mut rq = agent.delete(&url);
        for (k, v) in &headers {
            rq = rq.header(k, v);
        }
        rq.call().map_err(unavailable)?
    };
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_string()
        .map_err(|e| {
            Error::Unavailable(format!("connector {}: reading the answer: {e}", c.name))
        })?;
    Ok((status, body))
}

fn refused(c: &Connector, method: &str, status: u16, body: &str) -> Error {
    let snippet: String = body.chars().take(200).collect();
    Error::Unavailable(format!(
        "connector {}: {method} answered {status}: {snippet}",
        c.name
    ))
}

/// The user's records, or `None` when the upstream holds nothing (404).
pub fn fetch(c: &Connector, user: &str) -> Result<Option<Value>> {
    let (status, body) = call(c, "GET", user)?;
    match status {
        200 => serde_json::from_str(&body).map(Some).map_err(|e| {
            Error::Unavailable(format!("connector {}: the answer is not JSON: {e}", c.name))
        }),
        404 => Ok(None),
        _ => Err(refused(c, "GET", status, &body)),
    }
}

/// Erases the user's records; erasing what is not there succeeds.
pub fn erase(c: &Connector, user: &str) -> Result<Value> {
    let (status, body) = call(c, "DELETE", user)?;
    match status {
        200 | 202 | 204 => Ok(serde_json::from_str(&body).unwrap_or(Value::Null)),
        404 => Ok(Value::Null),
        _ => Err(refused(c, "DELETE", status, &body)),
    }
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn ids_are_percent_encoded() {
        assert_eq!(encode("alice"), "alice");
        assert_eq!(encode("a b/c#d@e"), "a%20b%2Fc%23d%40e");
    }
}
