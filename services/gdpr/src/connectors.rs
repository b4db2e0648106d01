//! Upstream connectors: `GET <url>` returns the user's records as JSON,
//! `DELETE <url>` erases them (`{id}` in the URL is the percent-encoded user
//! id, every byte but the unreserved ones escaped). Each answer must be a
//! JSON object echoing the `user_id` it is about; only `"no_data": true`
//! means the upstream holds nothing, never a status code.

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

/// The answer as JSON, checked to be about this user: the upstream echoes
/// the id it looked up (`user_id`), so an id mangled on the way (a `/` a
/// route split, a proxy that decoded an escape) is an error, not an answer.
fn answer(c: &Connector, method: &str, user: &str, status: u16, body: &str) -> Result<Value> {
    if !matches!(status, 200 | 202) {
        // A 404 included: a route that did not match the id says nothing
        // about whether the upstream holds the user's data.
        return Err(refused(c, method, status, body));
    }
    let value: Value = serde_json::from_str(body).map_err(|e| {
        Error::Unavailable(format!(
            "connector {}: {method}: the answer is not JSON: {e}",
            c.name
        ))
    })?;
    match value.get("user_id").and_then(Value::as_str) {
        Some(id) if id == user => Ok(value),
        Some(_) => Err(Error::Unavailable(format!(
            "connector {}: {method} answered about another id than the one asked for (was it re-encoded on the way?)",
            c.name
        ))),
        None => Err(Error::Unavailable(format!(
            "connector {}: {method}: the answer lacks `user_id` (the id it looked up)",
            c.name
        ))),
    }
}

/// The user's records, or `None` when the upstream says explicitly that it
/// holds nothing for this user (`"no_data": true`).
pub fn fetch(c: &Connector, user: &str) -> Result<Option<Value>> {
    let (status, body) = call(c, "GET", user)?;
    let value = answer(c, "GET", user, status, &body)?;
    if value.get("no_data") == Some(&Value::Bool(true)) {
        return Ok(None);
    }
    Ok(Some(value))
}

/// Erases the user's records; an explicit "no data" answer succeeds too.
pub fn erase(c: &Connector, user: &str) -> Result<Value> {
    let (status, body) = call(c, "DELETE", user)?;
    answer(c, "DELETE", user, status, &body)
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
