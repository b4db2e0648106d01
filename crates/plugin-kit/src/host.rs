//! Host calls a plugin makes on the request path, wrapped so that a host
//! error degrades to "absent" instead of a panic (the SDK's trait methods
//! unwrap, and their `String` variants panic on non-UTF-8 header bytes).

use crate::config::{self, Validate};
use crate::name_filter::{fingerprint, Name, NameFilter};
use proxy_wasm::hostcalls;
use proxy_wasm::types::BufferType;
use serde::de::DeserializeOwned;
use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// The filter's `configuration`, parsed and validated. On error the reason,
/// naming the field, is logged and `None` returned: `on_configure` then
/// returns false and Envoy refuses the filter.
pub fn plugin_configuration<T>() -> Option<T>
where
    T: DeserializeOwned + Default + Validate,
{
    let raw = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
        .ok()
        .flatten();
    config::load(raw.as_deref())
        .map_err(|err| log::error!("{err}"))
        .ok()
}

/// The body of the `dispatch_http_call` response being handled, if it is
/// at most `max` bytes (else empty).
pub fn call_response_body(body_size: usize, max: usize) -> Vec<u8> {
    if body_size == 0 || body_size > max {
        return Vec::new();
    }
    hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
        .ok()
        .flatten()
        .unwrap_or_default()
}

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

/// Replaces every copy of a request header; `None` removes it.
pub fn set_request_header(name: &str, value: Option<&str>) {
    set_map_value(REQUEST_HEADERS, name, value);
}

/// Adds a request header (another copy if one is there).
pub fn add_request_header(name: &str, value: &str) {
    add_map_value(REQUEST_HEADERS, name, value);
}

pub fn add_response_header(name: &str, value: &str) {
    add_map_value(RESPONSE_HEADERS, name, value);
}

/// Removes every copy of a response header.
pub fn remove_response_header(name: &str) {
    set_map_value(RESPONSE_HEADERS, name, None);
}

// Header writes whose status is ignored: a map the host cannot write (the
// SDK's versions panic on that) leaves the request as it was.

fn add_map_value(map_type: u32, name: &str, value: &str) {
    // SAFETY: the host reads both strings within the call and keeps nothing.
    unsafe {
        proxy_add_header_map_value(
            map_type,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        );
    }
}

fn set_map_value(map_type: u32, name: &str, value: Option<&str>) {
    // SAFETY: as in `add_map_value`.
    unsafe {
        match value {
            Some(value) => proxy_replace_header_map_value(
                map_type,
                name.as_ptr(),
                name.len(),
                value.as_ptr(),
                value.len(),
            ),
            None => proxy_remove_header_map_value(map_type, name.as_ptr(), name.len()),
        };
    }
}

/// The first value of a response header.
pub fn response_header(name: &str) -> Option<Vec<u8>> {
    map_value(RESPONSE_HEADERS, name)
}

/// A header of the last `dispatch_http_call` response.
pub fn call_response_header(name: &str) -> Option<Vec<u8>> {
    map_value(CALL_RESPONSE_HEADERS, name)
}

/// An Envoy attribute by its path, the segments separated by NUL bytes
/// (`b"response\0code"`): written out, the path costs no allocation, and
/// any status but success (where the SDK's `get_property` panics on some)
/// reads as absent.
pub fn property(path: &[u8]) -> Option<Vec<u8>> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: as in `map_value`.
    unsafe {
        if proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) != STATUS_OK
            || data.is_null()
        {
            return None;
        }
        Some(Vec::from_raw_parts(data, size, size))
    }
}

/// An integer attribute (Envoy encodes them as 8 little-endian bytes).
pub fn int_property(path: &[u8]) -> Option<i64> {
    let bytes: [u8; 8] = property(path)?.try_into().ok()?;
    Some(i64::from_le_bytes(bytes))
}

/// The status code of the last `dispatch_http_call` response, if any.
pub fn call_response_status() -> Option<u16> {
    let raw = call_response_header(":status")?;
    std::str::from_utf8(&raw).ok()?.parse().ok()
}

#[link(wasm_import_module = "env")]
extern "C" {
    // The SDK declares it with its own enums; plain integers here keep an
    // unexpected status from the host well-defined.
    #[allow(clashing_extern_declarations)]
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    #[allow(clashing_extern_declarations)]
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    #[allow(clashing_extern_declarations)]
    fn proxy_add_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    #[allow(clashing_extern_declarations)]
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    #[allow(clashing_extern_declarations)]
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    #[allow(clashing_extern_declarations)]
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
}

/// proxy-wasm ABI values of `MapType` and `Status::Ok`.
const REQUEST_HEADERS: u32 = 0;
const RESPONSE_HEADERS: u32 = 2;
const CALL_RESPONSE_HEADERS: u32 = 6;
const STATUS_OK: u32 = 0;

/// One header's first value (`None` when absent or on a host error, where
/// the SDK's `get_map_value_bytes` panics).
fn map_value(map_type: u32, name: &str) -> Option<Vec<u8>> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: as in `request_header_pairs`: on success the host hands over a
    // buffer allocated through `proxy_on_memory_allocate` (or null when empty).
    unsafe {
        let status =
            proxy_get_header_map_value(map_type, name.as_ptr(), name.len(), &mut data, &mut size);
        if status != STATUS_OK {
            return None;
        }
        if data.is_null() {
            return Some(Vec::new());
        }
        Some(Vec::from_raw_parts(data, size, size))
    }
}

/// The request headers fetched in one host call and read in place: no
/// allocation per header (what `request_headers` costs on every request).
#[derive(Debug, Default)]
pub struct HeaderPairs {
    raw: Vec<u8>,
    /// Where each header's name and value lie in `raw`, found once: the
    /// policies of a request look headers up dozens of times, and walking
    /// the serialized form again for each lookup cost more than the lookups.
    entries: Vec<Entry>,
    /// Every name read, filtered once the view starts changing headers:
    /// most names set then are absent. (A plugin that only looks a few
    /// names up, like the standalone rate limiter, never builds it.)
    names: Cell<Option<NameFilter>>,
    names_are_text: Cell<Option<bool>>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    name: (u32, u32),
    value: (u32, u32),
    /// Replaced or removed since the read (see `hide`).
    hidden: bool,
}

fn range((start, end): (u32, u32)) -> std::ops::Range<usize> {
    start as usize..end as usize
}

impl HeaderPairs {
    /// The proxy-wasm serialized map: entry count, then a (name length,
    /// value length) pair per entry, then each name and value NUL-terminated.
    /// A map cut short keeps the entries that are whole.
    pub fn from_serialized(raw: Vec<u8>) -> HeaderPairs {
        HeaderPairs {
            entries: index(&raw),
            raw,
            names: Cell::new(None),
            names_are_text: Cell::new(None),
        }
    }

    /// Builds the serialized form from pairs (what Envoy would send).
    pub fn from_list(pairs: &[(&str, &[u8])]) -> HeaderPairs {
        let count = u32::try_from(pairs.len()).unwrap_or(u32::MAX);
        let mut raw = count.to_le_bytes().to_vec();
        for (name, value) in pairs {
            for len in [name.len(), value.len()] {
                raw.extend(u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
            }
        }
        for (name, value) in pairs {
            raw.extend(name.as_bytes());
            raw.push(0);
            raw.extend(*value);
            raw.push(0);
        }
        HeaderPairs::from_serialized(raw)
    }

    fn bytes(&self, at: (u32, u32)) -> &[u8] {
        self.raw.get(range(at)).unwrap_or_default()
    }

    /// Every header in order, duplicates included; names that are not UTF-8
    /// (which Envoy never produces) and hidden ones are skipped.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + Clone + '_ {
        let all_text = self.names_are_text();
        self.entries
            .iter()
            .filter(|e| !e.hidden)
            .filter_map(move |e| {
                let name = self.bytes(e.name);
                let name = if all_text {
                    // SAFETY: every name was found to be UTF-8, and `raw` does
                    // not change once indexed.
                    unsafe { std::str::from_utf8_unchecked(name) }
                } else {
                    std::str::from_utf8(name).ok()?
                };
                Some((name, self.bytes(e.value)))
            })
    }

    /// Whether every name is UTF-8 (as Envoy's always are), checked on the
    /// first walk: the policies of a request walk the headers several
    /// times, and a plugin that only looks headers up never pays for it.
    fn names_are_text(&self) -> bool {
        if let Some(known) = self.names_are_text.get() {
            return known;
        }
        // Envoy's names are ASCII: `is_ascii` is the quicker check.
        let all = self.entries.iter().all(|e| {
            let name = self.bytes(e.name);
            name.is_ascii() || std::str::from_utf8(name).is_ok()
        });
        self.names_are_text.set(Some(all));
        all
    }

    /// The values of every `name` header not hidden, in order. Names are
    /// compared as bytes: a lookup validates nothing it does not return.
    pub fn values<'a: 'n, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a [u8]> + Clone + 'n {
        let name = name.as_bytes();
        let absent = self
            .names
            .get()
            .is_some_and(|names| !names.may_contain(fingerprint(name)));
        let entries = match absent {
            true => &[],
            false => self.entries.as_slice(),
        };
        entries
            .iter()
            .filter(move |e| !e.hidden && is_named(&self.raw, e, name))
            .map(|e| self.bytes(e.value))
    }

    /// Hides every `name` header from `iter` and `values` (the request
    /// view has replaced or removed them); whether there was one.
    pub fn hide(&mut self, name: Name) -> bool {
        if !self.name_filter().may_contain(name.fingerprint) {
            return false;
        }
        let mut found = false;
        for entry in &mut self.entries {
            if !entry.hidden && is_named(&self.raw, entry, name.text.as_bytes()) {
                entry.hidden = true;
                found = true;
            }
        }
        found
    }

    fn name_filter(&self) -> NameFilter {
        if let Some(names) = self.names.get() {
            return names;
        }
        let mut names = NameFilter::default();
        for entry in &self.entries {
            names.insert(fingerprint(self.bytes(entry.name)));
        }
        self.names.set(Some(names));
        names
    }
}

fn is_named(raw: &[u8], entry: &Entry, name: &[u8]) -> bool {
    entry.name.1.wrapping_sub(entry.name.0) as usize == name.len()
        && raw.get(range(entry.name)) == Some(name)
}

/// The entries of a serialized map whose name and value lie inside it.
fn index(raw: &[u8]) -> Vec<Entry> {
    let (count, rest) = match raw.split_first_chunk::<4>() {
        Some((count, rest)) => (u32::from_le_bytes(*count) as usize, rest),
        None => return Vec::new(),
    };
    let Some((sizes, _)) = rest.split_at_checked(count.saturating_mul(8)) else {
        return Vec::new();
    };
    let mut at = 4 + sizes.len();
    let mut entries = Vec::with_capacity(count.min(64));
    let mut take = |len: usize| {
        let start = at;
        let end = start.checked_add(len)?;
        // Each name and value is followed by a NUL (skipped).
        if end > raw.len() {
            return None;
        }
        at = end + 1;
        Some((u32::try_from(start).ok()?, u32::try_from(end).ok()?))
    };
    for size in sizes.chunks_exact(8) {
        let (Some(name_len), Some(value_len)) = (size.get(..4), size.get(4..)) else {
            break;
        };
        let len = |b: &[u8]| b.try_into().map_or(0, u32::from_le_bytes) as usize;
        let (Some(name), Some(value)) = (take(len(name_len)), take(len(value_len))) else {
            break;
        };
        entries.push(Entry {
            name,
            value,
            hidden: false,
        });
    }
    entries
}

/// Every request header in one host call (empty if the host fails).
pub fn request_header_pairs() -> HeaderPairs {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: on success the host stores a buffer it allocated through the
    // SDK's `proxy_on_memory_allocate` (a `Vec<u8>` of capacity `size`, leaked),
    // so taking it back as that `Vec` is sound, exactly as the SDK does.
    unsafe {
        if proxy_get_header_map_pairs(REQUEST_HEADERS, &mut data, &mut size) != STATUS_OK
            || data.is_null()
        {
            return HeaderPairs::default();
        }
        HeaderPairs::from_serialized(Vec::from_raw_parts(data, size, size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serialize(pairs: &[(&str, &[u8])]) -> Vec<u8> {
        HeaderPairs::from_list(pairs).raw
    }

    #[test]
    fn header_pairs_are_read_in_place_in_order() {
        let pairs: [(&str, &[u8]); 4] = [
            (":path", b"/x"),
            ("traceparent", b"a"),
            ("empty", b""),
            ("traceparent", &[0xff, 0x00, 0x41]),
        ];
        let map = HeaderPairs::from_serialized(serialize(&pairs));
        let read: Vec<_> = map.iter().collect();
        assert_eq!(read, pairs.to_vec());
        let traceparents: Vec<_> = map.values("traceparent").collect();
        assert_eq!(traceparents, vec![&b"a"[..], &[0xff, 0x00, 0x41][..]]);
        assert_eq!(map.values("absent").count(), 0);
    }

    #[test]
    fn hidden_headers_are_neither_listed_nor_found() {
        let mut map = HeaderPairs::from_list(&[("a", b"1"), ("bb", b"2"), ("a", b"3")]);
        assert!(map.hide(Name::new("a")));
        assert!(!map.hide(Name::new("a")));
        assert!(!map.hide(Name::new("absent")));
        assert_eq!(map.values("a").count(), 0);
        assert_eq!(map.iter().collect::<Vec<_>>(), vec![("bb", &b"2"[..])]);
    }

    #[test]
    fn truncated_or_empty_maps_end_early_without_panicking() {
        assert_eq!(HeaderPairs::default().iter().count(), 0);
        let full = serialize(&[("a", b"1"), ("b", b"2")]);
        for cut in 0..full.len() {
            let n = HeaderPairs::from_serialized(full[..cut].to_vec())
                .iter()
                .count();
            assert!(n <= 2);
        }
        let mut lying = full.clone();
        lying[0] = 200;
        assert!(HeaderPairs::from_serialized(lying).iter().count() <= 2);
    }

    #[test]
    fn non_utf8_names_are_skipped() {
        let mut raw = serialize(&[("ab", b"1"), ("c", b"2")]);
        let name_at = 4 + 16;
        raw[name_at] = 0xff;
        let map = HeaderPairs::from_serialized(raw);
        let read: Vec<_> = map.iter().collect();
        assert_eq!(read, vec![("c", &b"2"[..])]);
    }
}
