//! Who a request is limited as: the authenticated subject, or the client
//! address (the peer, or an `x-forwarded-for` entry added by a trusted proxy).

use std::net::{IpAddr, SocketAddr};

/// The longest key the state service accepts, and the bucket key of a
/// subject or an address: one definition in `meshguard_api::keys`, shared
/// with meshguard-state and meshguard-gdpr.
pub use meshguard_api::keys::{limit_key as bucket_key, MAX_KEY_LEN};

/// The client's address, without port. With `trusted_hops` = N > 0, the
/// N-th `x-forwarded-for` entry from the right is the client (each of the N
/// trusted proxies in front appended the address it saw); when the header
/// has fewer entries or that entry is not an IP address, the peer is used.
pub fn client_address(
    peer: Option<&str>,
    forwarded_for: &[&str],
    trusted_hops: usize,
) -> Option<IpAddr> {
    if trusted_hops > 0 {
        let entries: Vec<&str> = forwarded_for
            .iter()
            .flat_map(|h| h.split(','))
            .map(str::trim)
            .collect();
        let hop = entries
            .len()
            .checked_sub(trusted_hops)
            .and_then(|i| entries.get(i));
        if let Some(ip) = hop.and_then(|h| parse_address(h)) {
            return Some(ip);
        }
    }
    peer.and_then(parse_address)
}

/// An address with or without port: `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]:80`.
fn parse_address(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            let inner = text.strip_prefix('[')?.strip_suffix(']')?;
            inner.parse().ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn peer_address_without_port() {
        assert_eq!(
            client_address(Some("10.0.0.7:51234"), &[], 0),
            ip("10.0.0.7")
        );
        assert_eq!(client_address(Some("[::1]:8080"), &[], 0), ip("::1"));
        assert_eq!(client_address(Some("::1"), &[], 0), ip("::1"));
        assert_eq!(client_address(Some("garbage"), &[], 0), None);
        assert_eq!(client_address(None, &[], 0), None);
    }

    #[test]
    fn forwarded_for_is_ignored_without_trusted_hops() {
        let xff = ["203.0.113.9"];
        assert_eq!(client_address(Some("10.0.0.7:1"), &xff, 0), ip("10.0.0.7"));
    }

    #[test]
    fn trusted_hops_pick_from_the_right() {
        let xff = ["198.51.100.1, 203.0.113.9", "192.0.2.4"];
        let peer = Some("10.0.0.7:1");
        assert_eq!(client_address(peer, &xff, 1), ip("192.0.2.4"));
        assert_eq!(client_address(peer, &xff, 2), ip("203.0.113.9"));
        assert_eq!(client_address(peer, &xff, 3), ip("198.51.100.1"));
        // Fewer entries than trusted proxies: the header is not to be trusted.
        assert_eq!(client_address(peer, &xff, 4), ip("10.0.0.7"));
        assert_eq!(client_address(peer, &["bogus"], 1), ip("10.0.0.7"));
        assert_eq!(
            client_address(peer, &["[2001:db8::1]:443"], 1),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn keys_are_safe_for_the_state_service() {
        assert_eq!(bucket_key("sub", "alice"), "sub:alice");
        assert_eq!(bucket_key("sub", "a{b}%\n"), "sub:a%7Bb%7D%25%0A");
        let long = "é".repeat(300);
        let key = bucket_key("sub", &long);
        assert!(key.len() <= MAX_KEY_LEN, "{}", key.len());
        assert!(key.starts_with("sub:é"));
        assert_ne!(key, bucket_key("sub", &format!("{long}x")));
        let plain_long = "a".repeat(300);
        let key = bucket_key("sub", &plain_long);
        assert!(key.len() <= MAX_KEY_LEN && key.starts_with("sub:aaa"));
        assert_ne!(key, bucket_key("sub", &format!("{plain_long}b")));
        assert_eq!(bucket_key("ip", "10.0.0.1"), "ip:10.0.0.1");
        assert_eq!(bucket_key("sub", "a b\u{7f}é"), "sub:a b%7Fé");
    }
}
