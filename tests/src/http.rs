//! A deliberately raw HTTP/1.1 client: tests must send what real clients
//! send and also what they never would (duplicated headers, odd bytes).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn get(path: &str) -> Request {
        Request {
            method: "GET".into(),
            path: path.into(),
            ..Request::default()
        }
    }

    pub fn post(path: &str, body: impl Into<Vec<u8>>) -> Request {
        Request {
            method: "POST".into(),
            path: path.into(),
            body: body.into(),
            ..Request::default()
        }
    }

    pub fn header(self, name: &str, value: &str) -> Request {
        self.header_bytes(name, value.as_bytes())
    }

    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Request {
        self.headers.push((name.to_string(), value.to_vec()));
        self
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.1\r\nhost: meshguard.test\r\n",
            self.method, self.path
        )
        .into_bytes();
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        if !self.body.is_empty() || self.method == "POST" {
            out.extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"connection: close\r\n\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    pub fn send(&self, port: u16) -> std::io::Result<Response> {
        send_raw(port, &self.to_bytes())
    }
}

#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers_named(name).into_iter().next()
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {}", self.text()))
    }
}

/// Writes `request` as is and reads one response. It stops at the end of
/// the message rather than waiting for the close, which Envoy delays.
pub fn send_raw(port: u16, request: &[u8]) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    stream.write_all(request)?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(response) = complete_response(&raw)? {
            return Ok(response);
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return complete_response(&raw)?
                .map_or_else(|| parse_response(&raw, true).map(|(r, _)| r), Ok);
        }
        raw.extend_from_slice(&chunk[..n]);
    }
}

/// The response if `raw` holds all of it.
fn complete_response(raw: &[u8]) -> std::io::Result<Option<Response>> {
    match parse_response(raw, false) {
        Ok((response, true)) => Ok(Some(response)),
        Ok((_, false)) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// Parses a response; the flag says whether the body is complete. With
/// `at_eof`, whatever arrived is the body.
fn parse_response(raw: &[u8], at_eof: bool) -> std::io::Result<(Response, bool)> {
    let invalid = |msg: String| std::io::Error::new(std::io::ErrorKind::InvalidData, msg);
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if at_eof => {
            return Err(invalid(format!("truncated response: {raw:?}")))
        }
        Ok(httparse::Status::Partial) => {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof))
        }
        Err(e) => return Err(invalid(format!("{e}: {:?}", String::from_utf8_lossy(raw)))),
    };
    let status = parsed.code.unwrap_or(0);
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let rest = &raw[head_len..];
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let content_length = header("content-length").and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let (body, complete) = if chunked {
        dechunk(rest)
    } else if let Some(len) = content_length {
        (rest[..len.min(rest.len())].to_vec(), rest.len() >= len)
    } else {
        (rest.to_vec(), at_eof || status == 204 || status == 304)
    };
    Ok((
        Response {
            status,
            headers,
            body,
        },
        complete,
    ))
}

/// The body of a chunked message, and whether its last chunk arrived.
fn dechunk(mut rest: &[u8]) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    while let Ok(httparse::Status::Complete((used, size))) = httparse::parse_chunk_size(rest) {
        let size = size as usize;
        if size == 0 {
            return (body, true);
        }
        if rest.len() < used + size + 2 {
            break;
        }
        body.extend_from_slice(&rest[used..used + size]);
        rest = &rest[used + size + 2..];
    }
    (body, false)
}
