//! Which address and location of a request can be believed: only what a
//! configured trusted hop (a CDN, a load balancer) put there. A client can
//! send any `x-forwarded-for` or location header it likes, so without a
//! trusted peer the client is the connection's peer and has no location.

use std::net::IpAddr;

/// An address range: `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = addr.trim().parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Cidr { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (canonical(self.network), ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                same_prefix(u32::from(net).into(), u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn same_prefix(a: u128, b: u128, bits: u32, prefix: u8) -> bool {
    let prefix = u32::from(prefix).min(bits);
    if prefix == 0 {
        return true;
    }
    let shift = bits - prefix;
    (a >> shift) == (b >> shift)
}

/// The configured trusted hops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedHops {
    ranges: Vec<Cidr>,
}

impl TrustedHops {
    /// The ranges, or the index of the first entry that is not one.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<TrustedHops, usize> {
        let ranges = entries
            .iter()
            .enumerate()
            .map(|(i, e)| Cidr::parse(e.as_ref()).ok_or(i))
            .collect::<Result<_, _>>()?;
        Ok(TrustedHops { ranges })
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }

    /// The client's address: the connection's `peer`, unless the peer is a
    /// trusted hop, in which case the forwarded list (`x-forwarded-for`,
    /// oldest first) is read from the right, past the trusted hops, to the
    /// first address they did not add themselves. A malformed entry ends
    /// the walk at the last address believed.
    pub fn client(&self, peer: IpAddr, forwarded: Option<&str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for entry in forwarded.unwrap_or("").rsplit(',') {
            let Ok(ip) = entry.trim().parse::<IpAddr>() else {
                break;
            };
            client = canonical(ip);
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains(ip("10.1.2.3")));
        assert!(net.contains(ip("::ffff:10.1.2.3")));
        assert!(!net.contains(ip("11.0.0.1")));
        let one = Cidr::parse("192.0.2.1").unwrap();
        assert!(one.contains(ip("192.0.2.1")) && !one.contains(ip("192.0.2.2")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        for bad in ["", "10.0.0.0/33", "x", "10.0.0/8", "::/129"] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_hop_says_otherwise() {
        let hops = TrustedHops::parse(&["10.0.0.0/8"]).unwrap();
        let xff = Some("198.51.100.7, 203.0.113.9, 10.0.0.2");
        // An untrusted peer's forwarded list is the client's own claim.
        assert_eq!(hops.client(ip("192.0.2.1"), xff), ip("192.0.2.1"));
        // Through trusted hops: the first address they did not add.
        assert_eq!(hops.client(ip("10.0.0.1"), xff), ip("203.0.113.9"));
        assert_eq!(hops.client(ip("10.0.0.1"), None), ip("10.0.0.1"));
        assert_eq!(
            hops.client(ip("10.0.0.1"), Some("garbage, 10.0.0.3")),
            ip("10.0.0.3")
        );
        assert_eq!(TrustedHops::parse(&["10.0.0.0/8", "nope"]), Err(1));
        assert!(TrustedHops::default().is_empty());
    }
}
