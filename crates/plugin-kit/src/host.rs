//! Host calls a plugin makes on the request path, wrapped so that a host
//! error degrades to "absent" instead of a panic (the SDK's trait methods
//! unwrap, and their `String` variants panic on non-UTF-8 header bytes).

use proxy_wasm::hostcalls;
use proxy_wasm::types::MapType;
use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch by the proxy's clock (0 if unavailable).
pub fn now_unix_nanos() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t: SystemTime| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// `N` random bytes from WASI `random_get`, or `None` if the host failed.
pub fn random_bytes<const N: usize>() -> Option<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).ok()?;
    Some(buf)
}

/// Every request header as raw bytes, duplicates included, in order.
pub fn request_headers() -> Vec<(String, Vec<u8>)> {
    hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default()
}

/// Replaces every copy of a request header; `None` removes it.
pub fn set_request_header(name: &str, value: Option<&str>) {
    let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value);
}

pub fn add_response_header(name: &str, value: &str) {
    let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, name, value);
}

/// A header of the last `dispatch_http_call` response.
pub fn call_response_header(name: &str) -> Option<Vec<u8>> {
    hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, name)
        .ok()
        .flatten()
}

/// An Envoy attribute such as `["cluster_name"]` or `["response", "code"]`.
pub fn property(path: Vec<&str>) -> Option<Vec<u8>> {
    hostcalls::get_property(path).ok().flatten()
}

/// An integer attribute (Envoy encodes them as 8 little-endian bytes).
pub fn int_property(path: Vec<&str>) -> Option<i64> {
    let bytes: [u8; 8] = property(path)?.try_into().ok()?;
    Some(i64::from_le_bytes(bytes))
}

/// The status code of the last `dispatch_http_call` response, if any.
pub fn call_response_status() -> Option<u16> {
    let raw = call_response_header(":status")?;
    std::str::from_utf8(&raw).ok()?.parse().ok()
}
