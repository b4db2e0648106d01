//! The request headers as the policies of one filter see them: read from
//! Envoy once per request and kept in step with the changes made through
//! this view. Reading the map is the costliest host call on the request
//! path (about 4 µs, against 0.7 µs for setting one header), so the
//! single-module build reads it once for all four policies.

use crate::host::{self, HeaderPairs};

#[derive(Debug, Default)]
pub struct RequestHeaders {
    read: HeaderPairs,
    /// Headers set or removed since the read; one entry per name, the last word.
    changed: Vec<(String, Option<String>)>,
}

impl RequestHeaders {
    /// Every request header, in one host call.
    pub fn fetch() -> RequestHeaders {
        RequestHeaders::from_pairs(host::request_header_pairs())
    }

    pub fn from_pairs(read: HeaderPairs) -> RequestHeaders {
        RequestHeaders {
            read,
            changed: Vec::new(),
        }
    }

    /// A view of these pairs, as if Envoy had sent them (for tests).
    pub fn from_list(pairs: &[(&str, &[u8])]) -> RequestHeaders {
        RequestHeaders::from_pairs(HeaderPairs::from_list(pairs))
    }

    /// Every header as Envoy now has it, duplicates included: the headers
    /// read, then the ones set through this view.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + Clone + '_ {
        let read = self
            .read
            .iter()
            .filter(|(name, _)| !self.changed.iter().any(|(n, _)| n == name));
        let set = self
            .changed
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.as_deref()?.as_bytes())));
        read.chain(set)
    }

    /// Every value of `name` as Envoy now has it, in order.
    pub fn values<'a: 'n, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a [u8]> + Clone + 'n {
        let changed = self.changed.iter().find(|(n, _)| n == name);
        let read = self.read.values(name).filter(move |_| changed.is_none());
        let set = changed.and_then(|(_, value)| Some(value.as_deref()?.as_bytes()));
        read.chain(set)
    }

    /// The first value of `name`, raw.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.values(name).next()
    }

    /// The first value of `name`, if it is UTF-8.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Replaces every copy of `name` in Envoy; `None` removes it.
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        host::set_request_header(name, value);
        self.record(name, value);
    }

    fn record(&mut self, name: &str, value: Option<&str>) {
        let value = value.map(str::to_owned);
        match self.changed.iter_mut().find(|(n, _)| n == name) {
            Some((_, slot)) => *slot = value,
            None => self.changed.push((name.to_owned(), value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(pairs: &[(&str, &[u8])]) -> RequestHeaders {
        RequestHeaders::from_list(pairs)
    }

    #[test]
    fn reads_see_the_changes_made_since() {
        let mut headers = view(&[
            (":path", b"/a"),
            ("x-auth-sub", b"mallory"),
            ("x-auth-sub", b"eve"),
        ]);
        assert_eq!(headers.text("x-auth-sub"), Some("mallory"));
        assert_eq!(headers.values("x-auth-sub").count(), 2);
        headers.record("x-auth-sub", Some("alice"));
        headers.record("x-auth-tier", Some("premium"));
        let all: Vec<_> = headers.iter().collect();
        assert_eq!(
            all,
            vec![
                (":path", &b"/a"[..]),
                ("x-auth-sub", b"alice"),
                ("x-auth-tier", b"premium")
            ]
        );
        headers.record("x-auth-sub", None);
        assert_eq!(headers.get("x-auth-sub"), None);
        assert_eq!(headers.values("x-auth-sub").count(), 0);
        assert_eq!(headers.text("x-auth-tier"), Some("premium"));
        assert_eq!(headers.iter().count(), 2);
    }

    #[test]
    fn non_utf8_values_are_raw_only() {
        let headers = view(&[("x-odd", &[0xff, 0x41])]);
        assert_eq!(headers.get("x-odd"), Some(&[0xff, 0x41][..]));
        assert_eq!(headers.text("x-odd"), None);
        assert_eq!(headers.text("absent"), None);
    }
}
