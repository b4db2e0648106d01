//! Session activity of authenticated requests, sampled per request and sent
//! to meshguard-state in batches on the tick (one report per session and
//! interval: the latest), so it can detect impossible travel.

use meshguard_api::session::{Geo, SessionActivity};
use std::collections::HashMap;

/// Sessions remembered between flushes; more are dropped (and counted).
const MAX_PENDING: usize = 10_000;

#[derive(Default)]
pub struct ActivityBuffer {
    pending: HashMap<(String, String), SessionActivity>,
}

impl ActivityBuffer {
    /// Records activity of a session; false when the buffer is full.
    pub fn record(
        &mut self,
        user: &str,
        session_id: &str,
        ip: Option<String>,
        geo: Option<Geo>,
    ) -> bool {
        let key = (user.to_string(), session_id.to_string());
        if self.pending.len() >= MAX_PENDING && !self.pending.contains_key(&key) {
            return false;
        }
        // The latest address wins; a location is kept until a newer one
        // arrives, so a request without geo headers does not hide one with.
        let entry = self.pending.entry(key).or_insert_with(|| SessionActivity {
            user: user.to_string(),
            session_id: session_id.to_string(),
            ip: None,
            geo: None,
        });
        if ip.is_some() {
            entry.ip = ip;
        }
        if geo.is_some() {
            entry.geo = geo;
        }
        true
    }

    /// Up to `max` reports to send now.
    pub fn take(&mut self, max: usize) -> Vec<SessionActivity> {
        let keys: Vec<(String, String)> = self.pending.keys().take(max).cloned().collect();
        keys.into_iter()
            .filter_map(|k| self.pending.remove(&k))
            .collect()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.pending.len()
    }
}

/// The client address without its port (`1.2.3.4:5678`, `[::1]:80`).
pub fn client_ip(raw: &str) -> String {
    let raw = raw.trim();
    if let Ok(addr) = raw.parse::<std::net::SocketAddr>() {
        return addr.ip().to_string();
    }
    raw.to_string()
}

/// A location from two header values, if both parse and are in range.
pub fn geo(lat: Option<&str>, lon: Option<&str>) -> Option<Geo> {
    let geo = Geo {
        lat: lat?.trim().parse().ok()?,
        lon: lon?.trim().parse().ok()?,
    };
    geo.is_valid().then_some(geo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_report_per_session_in_bounded_batches() {
        let mut buffer = ActivityBuffer::default();
        buffer.record("u", "s1", Some("1.1.1.1".into()), None);
        buffer.record(
            "u",
            "s1",
            Some("2.2.2.2".into()),
            Some(Geo { lat: 1.0, lon: 2.0 }),
        );
        buffer.record("u", "s1", None, None);
        buffer.record("u", "s2", None, None);
        assert_eq!(buffer.len(), 2);
        let first = buffer.take(1);
        assert_eq!(first.len(), 1);
        let rest = buffer.take(10);
        assert_eq!(rest.len(), 1);
        let all: Vec<_> = first.into_iter().chain(rest).collect();
        let s1 = all.iter().find(|a| a.session_id == "s1").unwrap();
        assert_eq!(s1.ip.as_deref(), Some("2.2.2.2"));
        assert_eq!(s1.geo, Some(Geo { lat: 1.0, lon: 2.0 }));
        assert_eq!(buffer.len(), 0);
    }

    #[test]
    fn addresses_and_locations() {
        assert_eq!(client_ip("10.0.0.1:5555"), "10.0.0.1");
        assert_eq!(client_ip("[::1]:80"), "::1");
        assert_eq!(client_ip("10.0.0.1"), "10.0.0.1");
        assert_eq!(
            geo(Some("48.85"), Some("2.35")),
            Some(Geo {
                lat: 48.85,
                lon: 2.35
            })
        );
        assert_eq!(geo(Some("91"), Some("0")), None);
        assert_eq!(geo(Some("x"), Some("0")), None);
        assert_eq!(geo(None, Some("0")), None);
    }
}
