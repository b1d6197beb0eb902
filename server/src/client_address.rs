//! The address a request comes from: its peer, or, when the peer is a trusted reverse proxy,
//! the client that the proxies name in `X-Forwarded-For`.
//!
//! Behind a proxy every request's peer is the proxy, so per-address limits (the failed-sign-in
//! throttle) would lock every user out together. `--trusted-proxies` (`TAILOR_TRUSTED_PROXIES`)
//! lists the proxies' addresses or CIDR ranges. Only then is `X-Forwarded-For` read, from the
//! right: each proxy appends the address it received the request from, so the rightmost entry
//! that is not itself a trusted proxy is the client. Entries left of it were written by the
//! client and are never believed. Without the setting the header is ignored entirely (anyone can
//! send it).

use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use actix_web::HttpRequest;

/// A trusted proxy: one address or a CIDR range (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyRange {
    network: IpAddr,
    prefix: u8,
}

/// A `--trusted-proxies` entry that is not an address or a CIDR range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trusted proxy `{0}` is not an IP address or a CIDR range like 10.0.0.0/8")]
pub struct ProxyRangeError(String);

impl FromStr for ProxyRange {
    type Err = ProxyRangeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || ProxyRangeError(text.to_string());
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: IpAddr = address.parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(ProxyRange { network, prefix })
    }
}

impl ProxyRange {
    /// Whether `address` is in the range (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, canonical(address)) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let shift = 32 - u32::from(self.prefix);
                u32::from(net).checked_shr(shift) == u32::from(a).checked_shr(shift)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let shift = 128 - u32::from(self.prefix);
                u128::from(net).checked_shr(shift) == u128::from(a).checked_shr(shift)
            }
            _ => false,
        }
    }
}

fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The client address of `req` (see the module docs).
pub fn client_address(req: &HttpRequest, trusted: &[ProxyRange]) -> IpAddr {
    let peer = req
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok());
    client_of(peer, forwarded, trusted)
}

/// [`client_address`] over plain data: the peer and the `X-Forwarded-For` header values in the
/// order received.
pub fn client_of<'a>(
    peer: IpAddr,
    forwarded: impl Iterator<Item = &'a str>,
    trusted: &[ProxyRange],
) -> IpAddr {
    let is_trusted = |a: IpAddr| trusted.iter().any(|r| r.contains(a));
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded.flat_map(|v| v.split(',')).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(address) => {
                client = canonical(address);
                if !is_trusted(address) {
                    break;
                }
            }
            // Garbage where a proxy should have written an address: stop at the last
            // trustworthy hop.
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn ranges(list: &[&str]) -> Vec<ProxyRange> {
        list.iter().map(|r| r.parse().unwrap()).collect()
    }

    #[test]
    fn ranges_parse_and_match() {
        let r: ProxyRange = "10.1.0.0/16".parse().unwrap();
        assert!(r.contains(ip("10.1.200.3")));
        assert!(!r.contains(ip("10.2.0.1")));
        assert!(r.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped");
        let one: ProxyRange = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let all: ProxyRange = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("::1")));
        let v6: ProxyRange = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        for bad in ["", "10.0.0.0/33", "proxy.local", "::/129", "1.2.3.4/x"] {
            assert!(bad.parse::<ProxyRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let peer = ip("198.51.100.7");
        assert_eq!(client_of(peer, ["203.0.113.5"].into_iter(), &[]), peer);
        let trusted = ranges(&["10.0.0.0/8"]);
        assert_eq!(
            client_of(peer, ["203.0.113.5"].into_iter(), &trusted),
            peer,
            "a peer that is no proxy cannot name another client"
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let trusted = ranges(&["10.0.0.0/8"]);
        let proxy = ip("10.0.0.2");
        assert_eq!(
            client_of(proxy, ["203.0.113.5"].into_iter(), &trusted),
            ip("203.0.113.5")
        );
        // The client wrote 1.2.3.4 itself; the proxies appended what they saw.
        assert_eq!(
            client_of(
                proxy,
                ["1.2.3.4, 203.0.113.5", "10.0.0.9"].into_iter(),
                &trusted
            ),
            ip("203.0.113.5")
        );
        assert_eq!(
            client_of(proxy, std::iter::empty(), &trusted),
            proxy,
            "no header: the proxy itself"
        );
        assert_eq!(
            client_of(proxy, ["garbage"].into_iter(), &trusted),
            proxy,
            "an unreadable hop is not believed"
        );
    }
}
