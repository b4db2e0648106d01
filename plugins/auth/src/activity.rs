//! Sessions seen at the proxy, sent to meshguard-state in batches on the
//! tick (`POST /v1/sessions/reports`): every session a worker sees for the
//! first time (so the state service can register it and enforce the
//! per-user maximum), and sampled activity of known ones (for the travel
//! check). One entry per session and period: the latest. A batch that does
//! not arrive is put back and sent again; requests never wait on it.

use meshguard_api::session::{Geo, SessionReport, MAX_USER_AGENT_BYTES};
use std::collections::HashMap;

/// Sessions remembered between flushes; more are dropped (and counted).
const MAX_PENDING: usize = 10_000;

/// What one request tells about its session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub geo: Option<Geo>,
}

#[derive(Default)]
pub struct ActivityBuffer {
    pending: HashMap<(String, String), SessionReport>,
}

impl ActivityBuffer {
    /// Records a session seen at `now_ms`; false when the buffer is full.
    pub fn record(&mut self, user: &str, session_id: &str, now_ms: u64, seen: Seen) -> bool {
        let report = SessionReport {
            user: user.to_string(),
            session_id: session_id.to_string(),
            user_agent: seen.user_agent,
            ip: seen.ip,
            geo: seen.geo,
            first_seen_ms: now_ms,
            last_seen_ms: now_ms,
        };
        self.merge(report)
    }

    /// Adds a report, merged with one pending for the same session: the
    /// earliest first sight, the latest last sight, and the newest of each
    /// field (a request without a location does not hide one with).
    fn merge(&mut self, report: SessionReport) -> bool {
        let key = (report.user.clone(), report.session_id.clone());
        if let Some(entry) = self.pending.get_mut(&key) {
            let newer = report.last_seen_ms >= entry.last_seen_ms;
            entry.first_seen_ms = entry.first_seen_ms.min(report.first_seen_ms);
            entry.last_seen_ms = entry.last_seen_ms.max(report.last_seen_ms);
            pick(&mut entry.user_agent, report.user_agent, newer);
            pick(&mut entry.ip, report.ip, newer);
            pick(&mut entry.geo, report.geo, newer);
            return true;
        }
        if self.pending.len() >= MAX_PENDING {
            return false;
        }
        self.pending.insert(key, report);
        true
    }

    /// Up to `max` reports to send now, the earliest seen first.
    pub fn take(&mut self, max: usize) -> Vec<SessionReport> {
        let mut all: Vec<SessionReport> = self.pending.drain().map(|(_, r)| r).collect();
        all.sort_by_key(|r| r.first_seen_ms);
        let rest = all.split_off(max.min(all.len()));
        for report in rest {
            self.merge(report);
        }
        all
    }

    /// Puts back reports that did not reach the service; returns how many
    /// were dropped because the buffer is full.
    pub fn put_back(&mut self, reports: Vec<SessionReport>) -> usize {
        reports
            .into_iter()
            .filter(|r| !self.merge(r.clone()))
            .count()
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }
}

/// Takes `theirs` when it is known and newer, or when nothing is known.
fn pick<T>(mine: &mut Option<T>, theirs: Option<T>, newer: bool) {
    if theirs.is_some() && (newer || mine.is_none()) {
        *mine = theirs;
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

/// A user agent as kept with the session: printable, at most
/// `MAX_USER_AGENT_BYTES` (cut at a character boundary).
pub fn user_agent(raw: &str) -> Option<String> {
    let clean: String = raw.chars().filter(|c| !c.is_control()).collect();
    let mut end = clean.len().min(MAX_USER_AGENT_BYTES);
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    let cut = clean.get(..end).unwrap_or_default().trim();
    (!cut.is_empty()).then(|| cut.to_string())
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

    fn seen(ip: Option<&str>, geo: Option<Geo>) -> Seen {
        Seen {
            user_agent: None,
            ip: ip.map(str::to_string),
            geo,
        }
    }

    #[test]
    fn latest_report_per_session_earliest_first_in_bounded_batches() {
        let mut buffer = ActivityBuffer::default();
        buffer.record("u", "s2", 5, seen(None, None));
        buffer.record("u", "s1", 10, seen(Some("1.1.1.1"), None));
        let paris = Geo { lat: 1.0, lon: 2.0 };
        buffer.record("u", "s1", 20, seen(Some("2.2.2.2"), Some(paris)));
        buffer.record("u", "s1", 30, seen(None, None));
        assert_eq!(buffer.len(), 2);
        let first = buffer.take(1);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].session_id, "s2");
        let rest = buffer.take(10);
        assert_eq!(rest.len(), 1);
        let s1 = &rest[0];
        assert_eq!(s1.ip.as_deref(), Some("2.2.2.2"));
        assert_eq!(s1.geo, Some(paris));
        assert_eq!((s1.first_seen_ms, s1.last_seen_ms), (10, 30));
        assert_eq!(buffer.len(), 0);
    }

    #[test]
    fn a_batch_put_back_is_sent_again_merged_with_what_came_since() {
        let mut buffer = ActivityBuffer::default();
        buffer.record("u", "s1", 10, seen(Some("1.1.1.1"), None));
        let lost = buffer.take(10);
        buffer.record("u", "s1", 50, seen(Some("3.3.3.3"), None));
        assert_eq!(buffer.put_back(lost), 0);
        let again = buffer.take(10);
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].first_seen_ms, again[0].last_seen_ms), (10, 50));
        assert_eq!(again[0].ip.as_deref(), Some("3.3.3.3"));
    }

    #[test]
    fn addresses_agents_and_locations() {
        assert_eq!(client_ip("10.0.0.1:5555"), "10.0.0.1");
        assert_eq!(client_ip("[::1]:80"), "::1");
        assert_eq!(client_ip("10.0.0.1"), "10.0.0.1");
        assert_eq!(user_agent(" curl/8.0 ").as_deref(), Some("curl/8.0"));
        assert_eq!(user_agent(""), None);
        let long = "é".repeat(400);
        let cut = user_agent(&long).unwrap();
        assert!(cut.len() <= MAX_USER_AGENT_BYTES && cut.starts_with('é'));
        assert_eq!(
            geo(Some("48.85"), Some("2.35")),
            Some(Geo {
                lat: 48.85,
                lon: 2.35
            })
        );
        assert_eq!(geo(Some("91"), Some("0")), None);
        assert_eq!(geo(Some("x"), Some("0")), None);
        assert_eq!(geo(Some("NaN"), Some("0")), None);
        assert_eq!(geo(None, Some("0")), None);
    }
}
