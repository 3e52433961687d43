//! Which endpoint URLs hookd may call (SSRF policy).
//!
//! By default only `https://` URLs whose addresses are public are allowed: loopback,
//! private, link-local (cloud metadata), CGNAT, multicast, documentation and reserved
//! ranges are refused, also when an IPv6 address embeds one of them (IPv4-mapped, NAT64,
//! 6to4) or tunnels to an address that cannot be checked (Teredo). The check runs on the
//! URL at registration and, after DNS resolution, on every address hookd connects to, so
//! DNS rebinding cannot get around it. This module only decides; resolving names is the
//! caller's I/O, behind [`ResolveHost`].
//!
//! URLs are judged after parsing (WHATWG rules, as every browser does), so the many
//! spellings of one address (`2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`, `%31%32%37…`,
//! full-width digits, `[::ffff:7f00:1]`) are all judged as the address they mean.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use url::{Host, Url};

/// Largest accepted endpoint URL, in bytes.
pub const MAX_URL_LEN: usize = 2048;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Allow loopback, private, link-local and other non-public addresses.
    pub allow_private_targets: bool,
    /// Allow plain `http://` URLs.
    pub allow_http: bool,
}

impl TargetPolicy {
    /// Checks an endpoint URL's shape, scheme and (for IP literals and names that can only
    /// mean a non-public host) its host. Other names still need [`TargetPolicy::check_ip`]
    /// on each address they resolve to.
    pub fn check_url(&self, text: &str) -> Result<Url, TargetError> {
        if text.len() > MAX_URL_LEN {
            return Err(TargetError::Malformed(format!(
                "longer than {MAX_URL_LEN} bytes"
            )));
        }
        let url = Url::parse(text).map_err(|e| TargetError::Malformed(e.to_string()))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err(TargetError::HttpNotAllowed),
            other => {
                return Err(TargetError::Malformed(format!(
                    "scheme `{other}` is not http(s)"
                )));
            }
        }
        let host = url
            .host()
            .ok_or_else(|| TargetError::Malformed("the URL has no host".to_owned()))?;
        if !url.username().is_empty() || url.password().is_some() {
            // `https://trusted.example@10.0.0.1/` reads as one host and calls another.
            return Err(TargetError::Malformed(format!(
                "the URL carries credentials (`…@` before the host `{host}`); they are not \
                 allowed, since they would be logged with every attempt"
            )));
        }
        match host {
            Host::Ipv4(ip) => self.check_ip(IpAddr::V4(ip))?,
            Host::Ipv6(ip) => self.check_ip(IpAddr::V6(ip))?,
            Host::Domain(name) => {
                if !self.allow_private_targets
                    && let Some(reason) = non_public_name(name)
                {
                    return Err(TargetError::PrivateName {
                        name: name.trim_end_matches('.').to_owned(),
                        reason,
                    });
                }
            }
        }
        Ok(url)
    }

    /// Checks one address an endpoint resolved to.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), TargetError> {
        if self.allow_private_targets {
            return Ok(());
        }
        match classify(ip) {
            None => Ok(()),
            Some(reason) => Err(TargetError::PrivateAddress {
                address: ip.to_string(),
                reason,
            }),
        }
    }
}

/// True for globally routable unicast addresses.
pub fn is_public(ip: IpAddr) -> bool {
    classify(ip).is_none()
}

/// Why an address is not public, or `None` when it is.
pub fn classify(ip: IpAddr) -> Option<NonPublic> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// What a refused address is: the kind of range it lies in, and for an IPv6 address that
/// stands for an IPv4 one, that IPv4 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NonPublic {
    /// For example "a loopback address".
    pub kind: &'static str,
    /// The refused range the address (or the IPv4 address it embeds) lies in.
    pub range: IpNet,
    /// How an IPv6 address embeds the IPv4 address that was judged.
    pub embedded: Option<(&'static str, Ipv4Addr)>,
}

impl fmt::Display for NonPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((how, v4)) = self.embedded {
            write!(f, "{how} of {v4}, which is ")?;
        }
        write!(f, "{} ({})", self.kind, self.range)
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

const fn v6(s: [u16; 8], prefix: u8) -> Ipv6Net {
    Ipv6Net::new_assert(
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
        prefix,
    )
}

const PRIVATE: &str = "a private address";
const DOCUMENTATION: &str = "a documentation address";

/// IPv4 ranges that are not globally reachable unicast (IANA's special-purpose registry),
/// plus one public address that only means something inside a cloud.
const REFUSED_V4: &[(Ipv4Net, &str)] = &[
    // Connecting to 0.0.0.0 reaches this machine on Linux.
    (
        v4(0, 0, 0, 0, 8),
        "a this-network address, which reaches this machine",
    ),
    (v4(10, 0, 0, 0, 8), PRIVATE),
    // Alibaba Cloud's metadata service is 100.100.100.200.
    (v4(100, 64, 0, 0, 10), "a carrier-grade NAT address"),
    (v4(127, 0, 0, 0, 8), "a loopback address"),
    // 169.254.169.254 is the metadata service of AWS, GCP, Azure and others.
    (
        v4(169, 254, 0, 0, 16),
        "a link-local address, home of cloud metadata services",
    ),
    (v4(172, 16, 0, 0, 12), PRIVATE),
    // Includes Oracle Cloud's metadata service, 192.0.0.192.
    (v4(192, 0, 0, 0, 24), "an IETF protocol assignment"),
    (v4(192, 0, 2, 0, 24), DOCUMENTATION),
    (v4(192, 88, 99, 0, 24), "a 6to4 relay anycast address"),
    (v4(192, 168, 0, 0, 16), PRIVATE),
    (v4(198, 18, 0, 0, 15), "a benchmarking address"),
    (v4(198, 51, 100, 0, 24), DOCUMENTATION),
    (v4(203, 0, 113, 0, 24), DOCUMENTATION),
    (v4(224, 0, 0, 0, 4), "a multicast address"),
    (v4(255, 255, 255, 255, 32), "the broadcast address"),
    (v4(240, 0, 0, 0, 4), "a reserved address"),
    (
        v4(168, 63, 129, 16, 32),
        "Azure's platform endpoint, reachable only inside Azure",
    ),
];

fn classify_v4(ip: Ipv4Addr) -> Option<NonPublic> {
    REFUSED_V4
        .iter()
        .find(|(range, _)| range.contains(&ip))
        .map(|&(range, kind)| NonPublic {
            kind,
            range: IpNet::V4(range),
            embedded: None,
        })
}

/// IPv6 ranges whose address stands for an IPv4 address: that address is judged.
const EMBEDDING_V6: &[(Ipv6Net, &str)] = &[
    (
        v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96),
        "an IPv4-mapped IPv6 address",
    ),
    (v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96), "a NAT64 address"),
    (v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16), "a 6to4 address"),
];

/// IPv6 ranges that are refused outright, most specific first; anything outside
/// 2000::/3 (global unicast) that is not listed here or above is refused as well.
const REFUSED_V6: &[(Ipv6Net, &str)] = &[
    (v6([0; 8], 128), "the unspecified address"),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "a loopback address"),
    (
        v6([0, 0, 0, 0, 0, 0, 0, 0], 96),
        "a deprecated IPv4-compatible address",
    ),
    (
        v6([0, 0, 0, 0, 0xffff, 0, 0, 0], 96),
        "an IPv4-translated address",
    ),
    (
        v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
        "a local-use NAT64 address",
    ),
    (
        v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64),
        "a discard-only address",
    ),
    // The client's IPv4 address is in the last 32 bits, inverted: a tunnel to it.
    (
        v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32),
        "a Teredo tunnel address, which hides the IPv4 address it reaches",
    ),
    (
        v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
        "an IETF protocol assignment, such as benchmarking",
    ),
    (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), DOCUMENTATION),
    (v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), DOCUMENTATION),
    // AWS's metadata service is also fd00:ec2::254.
    (
        v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        "a unique local address, private to a site",
    ),
    (
        v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
        "a link-local address",
    ),
    (
        v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
        "a deprecated site-local address",
    ),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "a multicast address"),
];

const GLOBAL_UNICAST_V6: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

fn classify_v6(ip: Ipv6Addr) -> Option<NonPublic> {
    if let Some(&(_, how)) = EMBEDDING_V6.iter().find(|(range, _)| range.contains(&ip)) {
        let embedded = embedded_v4(ip);
        return classify_v4(embedded).map(|reason| NonPublic {
            embedded: Some((how, embedded)),
            ..reason
        });
    }
    if let Some(&(range, kind)) = REFUSED_V6.iter().find(|(range, _)| range.contains(&ip)) {
        return Some(NonPublic {
            kind,
            range: IpNet::V6(range),
            embedded: None,
        });
    }
    if !GLOBAL_UNICAST_V6.contains(&ip) {
        return Some(NonPublic {
            kind: "not a global unicast address",
            range: IpNet::V6(GLOBAL_UNICAST_V6),
            embedded: None,
        });
    }
    None
}

/// The IPv4 address an IPv4-mapped, NAT64 or 6to4 address stands for.
fn embedded_v4(ip: Ipv6Addr) -> Ipv4Addr {
    let s = ip.segments();
    let (hi, lo) = if s[0] == 0x2002 {
        (s[1], s[2])
    } else {
        (s[6], s[7])
    };
    Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))
}

/// Why a host name can only mean a non-public host, whatever DNS says about it today.
fn non_public_name(name: &str) -> Option<&'static str> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let is = |suffix: &str| name == suffix || name.ends_with(&format!(".{suffix}"));
    if is("localhost") {
        Some("always names this machine (RFC 6761)")
    } else if is("local") {
        Some("is resolved on the local network by multicast DNS (RFC 6762)")
    } else if is("internal") {
        // Such as metadata.google.internal.
        Some("is reserved for private networks")
    } else if is("home.arpa") {
        Some("names a host in a home network (RFC 8375)")
    } else if !name.contains('.') {
        Some("has a single label, which resolvers complete with local search domains")
    } else {
        None
    }
}

/// Resolves host names for the policy's callers (registration and connect time): the I/O
/// this module leaves out. Implementations return every address the name has now.
pub trait ResolveHost: Send + Sync + fmt::Debug {
    /// The addresses of `host`, a domain name (never an IP literal).
    fn resolve<'a>(&'a self, host: &'a str) -> Resolving<'a>;
}

/// What [`ResolveHost::resolve`] returns.
pub type Resolving<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<IpAddr>, ResolveError>> + Send + 'a>>;

/// A name that could not be resolved: it does not exist, has no addresses, or the
/// resolver did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot resolve `{host}`: {reason}")]
pub struct ResolveError {
    pub host: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("the URL is not valid: {0}")]
    Malformed(String),
    #[error("only https:// URLs are allowed (start hookd with --allow-http to permit http://)")]
    HttpNotAllowed,
    #[error(
        "`{address}` is {reason}; hookd does not call loopback, private, link-local or other non-public addresses (start hookd with --allow-private-targets to permit them)"
    )]
    PrivateAddress { address: String, reason: NonPublic },
    #[error(
        "the host `{name}` {reason}; hookd does not call non-public hosts (start hookd with --allow-private-targets to permit them)"
    )]
    PrivateName { name: String, reason: &'static str },
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: TargetPolicy = TargetPolicy {
        allow_private_targets: false,
        allow_http: false,
    };
    const OPEN: TargetPolicy = TargetPolicy {
        allow_private_targets: true,
        allow_http: true,
    };

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn non_public_addresses_are_refused_with_their_range() {
        // (address, the refused range named in the reason)
        let refused = [
            ("0.0.0.0", "0.0.0.0/8"),
            ("0.1.2.3", "0.0.0.0/8"),
            ("10.1.2.3", "10.0.0.0/8"),
            ("100.64.0.1", "100.64.0.0/10"),
            ("100.100.100.200", "100.64.0.0/10"),
            ("100.127.255.255", "100.64.0.0/10"),
            ("127.0.0.1", "127.0.0.0/8"),
            ("127.255.255.254", "127.0.0.0/8"),
            ("169.254.169.254", "169.254.0.0/16"),
            ("169.254.170.2", "169.254.0.0/16"),
            ("172.16.0.1", "172.16.0.0/12"),
            ("172.31.255.255", "172.16.0.0/12"),
            ("192.0.0.192", "192.0.0.0/24"),
            ("192.0.2.1", "192.0.2.0/24"),
            ("192.88.99.1", "192.88.99.0/24"),
            ("192.168.1.1", "192.168.0.0/16"),
            ("198.18.0.1", "198.18.0.0/15"),
            ("198.19.255.255", "198.18.0.0/15"),
            ("198.51.100.7", "198.51.100.0/24"),
            ("203.0.113.9", "203.0.113.0/24"),
            ("224.0.0.1", "224.0.0.0/4"),
            ("239.255.255.250", "224.0.0.0/4"),
            ("240.0.0.1", "240.0.0.0/4"),
            ("255.255.255.255", "255.255.255.255/32"),
            ("168.63.129.16", "168.63.129.16/32"),
            ("::", "::/128"),
            ("::1", "::1/128"),
            ("::127.0.0.1", "::/96"),
            ("::8.8.8.8", "::/96"),
            ("::ffff:127.0.0.1", "127.0.0.0/8"),
            ("::ffff:7f00:1", "127.0.0.0/8"),
            ("::ffff:10.0.0.1", "10.0.0.0/8"),
            ("::ffff:a9fe:a9fe", "169.254.0.0/16"),
            ("::ffff:0.0.0.0", "0.0.0.0/8"),
            ("::ffff:0:7f00:1", "::ffff:0:0:0/96"),
            ("64:ff9b::a00:1", "10.0.0.0/8"),
            ("64:ff9b::127.0.0.1", "127.0.0.0/8"),
            ("64:ff9b:1::1.1.1.1", "64:ff9b:1::/48"),
            ("100::1", "100::/64"),
            ("2001::1", "2001::/32"),
            // Teredo for client 127.0.0.1 (stored inverted: 80ff:fffe) via server 1.1.1.1.
            ("2001:0:101:101::80ff:fffe", "2001::/32"),
            ("2001:2::1", "2001::/23"),
            ("2001:10::1", "2001::/23"),
            ("2001:db8::1", "2001:db8::/32"),
            ("3fff::1", "3fff::/20"),
            ("2002:7f00:1::", "127.0.0.0/8"),
            ("2002:a9fe:a9fe::1", "169.254.0.0/16"),
            ("fc00::1", "fc00::/7"),
            ("fd00:ec2::254", "fc00::/7"),
            ("fe80::1", "fe80::/10"),
            ("febf::1", "fe80::/10"),
            ("fec0::1", "fec0::/10"),
            ("ff02::1", "ff00::/8"),
            ("ff0e::1", "ff00::/8"),
            ("5f00::1", "2000::/3"),
            ("4000::1", "2000::/3"),
            ("::2", "::/96"),
        ];
        for (text, range) in refused {
            let reason = classify(ip(text)).unwrap_or_else(|| panic!("{text} should be refused"));
            assert_eq!(reason.range.to_string(), range, "{text}: {reason}");
            assert!(!is_public(ip(text)));
            let error = STRICT.check_ip(ip(text));
            assert!(
                matches!(&error, Err(TargetError::PrivateAddress { address, .. }) if *address == ip(text).to_string()),
                "{text}: {error:?}"
            );
            assert!(OPEN.check_ip(ip(text)).is_ok());
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for text in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.88.98.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "169.253.255.255",
            "126.255.255.255",
            "128.0.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "2001:200::1",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
            "3fff:1000::1",
        ] {
            assert_eq!(classify(ip(text)), None, "{text} should be allowed");
            assert!(STRICT.check_ip(ip(text)).is_ok());
        }
    }

    #[test]
    fn reasons_say_what_the_address_is() {
        let reason = |text| {
            classify(ip(text))
                .map(|r| r.to_string())
                .unwrap_or_default()
        };
        assert_eq!(reason("127.0.0.1"), "a loopback address (127.0.0.0/8)");
        assert_eq!(
            reason("::ffff:169.254.169.254"),
            "an IPv4-mapped IPv6 address of 169.254.169.254, which is a link-local address, \
             home of cloud metadata services (169.254.0.0/16)"
        );
        assert_eq!(
            reason("2002:0a00:0001::"),
            "a 6to4 address of 10.0.0.1, which is a private address (10.0.0.0/8)"
        );
        let message = STRICT
            .check_ip(ip("10.0.0.1"))
            .map_err(|e| e.to_string())
            .err()
            .unwrap_or_default();
        assert_eq!(
            message,
            "`10.0.0.1` is a private address (10.0.0.0/8); hookd does not call loopback, \
             private, link-local or other non-public addresses (start hookd with \
             --allow-private-targets to permit them)"
        );
    }

    /// Every spelling of a refused address is judged as the address it means: the URL
    /// parser normalizes the host before the check.
    #[test]
    fn obfuscated_addresses_in_urls_are_refused() {
        let policy = TargetPolicy {
            allow_private_targets: false,
            allow_http: true,
        };
        // (URL, the address it means)
        let refused = [
            ("http://2130706433/", "127.0.0.1"),
            ("http://0177.0.0.1/", "127.0.0.1"),
            ("http://0x7f.1/", "127.0.0.1"),
            ("http://0x7f000001/", "127.0.0.1"),
            ("http://017700000001/", "127.0.0.1"),
            ("http://127.1/", "127.0.0.1"),
            ("http://127.0.0.1./", "127.0.0.1"),
            ("http://%31%32%37.0.0.1/", "127.0.0.1"),
            ("http://\u{2460}\u{2461}\u{2466}.0.0.1/", "127.0.0.1"),
            ("http://127\u{3002}0\u{3002}0\u{3002}1/", "127.0.0.1"),
            ("http://\u{200b}127.0.0.1/", "127.0.0.1"),
            ("http://0/", "0.0.0.0"),
            ("http://0.0.0.0:8080/", "0.0.0.0"),
            ("http://[::]/", "::"),
            ("http://[::1]:8443/", "::1"),
            ("http://[0:0:0:0:0:0:0:1]/", "::1"),
            ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1"),
            ("http://[::ffff:7f00:1]/", "::ffff:127.0.0.1"),
            ("http://[0:0:0:0:0:ffff:127.0.0.1]/", "::ffff:127.0.0.1"),
            (
                "http://[::ffff:a9fe:a9fe]/latest/",
                "::ffff:169.254.169.254",
            ),
            ("http://[::127.0.0.1]/", "::7f00:1"),
            ("http://[64:ff9b::7f00:1]/", "64:ff9b::7f00:1"),
            ("http://[2002:7f00:1::1]/", "2002:7f00:1::1"),
            ("http://[fd00:ec2::254]/", "fd00:ec2::254"),
            ("http://[fe80::1]/", "fe80::1"),
            (
                "http://169.254.169.254/latest/meta-data/",
                "169.254.169.254",
            ),
            ("http://0xa9.0xfe.0xa9.0xfe/", "169.254.169.254"),
            ("http://2852039166/", "169.254.169.254"),
            ("http://10.0.0.1#@example.com/", "10.0.0.1"),
            ("http:/10.0.0.1/", "10.0.0.1"),
            ("http:\\\\10.0.0.1\\", "10.0.0.1"),
            (" http://10.0.0.1/ ", "10.0.0.1"),
        ];
        for (url, address) in refused {
            let result = policy.check_url(url);
            assert!(
                matches!(&result, Err(TargetError::PrivateAddress { address: a, .. }) if a == address),
                "{url:?}: {result:?}"
            );
        }
    }

    #[test]
    fn names_that_can_only_be_private_are_refused() {
        let refused = [
            ("https://localhost/x", "localhost"),
            ("https://LOCALHOST./x", "localhost"),
            ("https://localhost.:8443/x", "localhost"),
            ("https://a.b.localhost/", "a.b.localhost"),
            ("https://%6c%6f%63%61%6c%68%6f%73%74/", "localhost"),
            (
                "https://\u{24db}\u{24de}\u{24d2}\u{24d0}\u{24db}\u{24d7}\u{24de}\u{24e2}\u{24e3}/",
                "localhost",
            ),
            ("https://loca%C2%ADlhost/", "localhost"),
            ("https://printer.local/", "printer.local"),
            (
                "https://metadata.google.internal/computeMetadata/v1/",
                "metadata.google.internal",
            ),
            ("https://router.home.arpa/", "router.home.arpa"),
            ("https://intranet/", "intranet"),
            ("https://metadata./", "metadata"),
        ];
        for (url, name) in refused {
            let result = STRICT.check_url(url);
            assert!(
                matches!(&result, Err(TargetError::PrivateName { name: n, .. }) if n == name),
                "{url:?}: {result:?}"
            );
            assert!(OPEN.check_url(url).is_ok(), "{url}");
        }
        // Names whose addresses decide: checked after resolution.
        for url in [
            "https://example.com/hooks",
            "https://example.com./hooks",
            "https://localhost.example.com/",
            "https://local.example/",
            "https://xn--nxasmq6b.example/",
            "https://rebind.test/",
        ] {
            assert!(STRICT.check_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn urls_are_checked() {
        assert!(STRICT.check_url("https://example.com/hooks").is_ok());
        assert!(STRICT.check_url("https://93.184.216.34/hooks").is_ok());
        assert_eq!(
            STRICT.check_url("http://example.com/"),
            Err(TargetError::HttpNotAllowed)
        );
        for bad in [
            "not a url",
            "ftp://example.com/",
            "file:///etc/passwd",
            "gopher://127.0.0.1:6379/_INFO",
            "https://user:pw@example.com/",
            "https://a@127.0.0.1/",
            "https://example.com@10.0.0.1/",
            "https://:pw@example.com/",
            "mailto:a@b",
            "https://",
            "https://[fe80::1%25eth0]/",
            "https://0x100000000/",
            "https://256.0.0.1/",
            "https://1.2.3.4.5/",
            "https://127.0.0.1%2f/",
            "https://localhost%00.example.com/",
            "https://xn--localhost/",
            "https://127.0.0.1:65536/",
        ] {
            assert!(
                matches!(STRICT.check_url(bad), Err(TargetError::Malformed(_))),
                "{bad}: {:?}",
                STRICT.check_url(bad)
            );
        }
        let credentials = STRICT
            .check_url("https://example.com@10.0.0.1/")
            .map_err(|e| e.to_string())
            .err()
            .unwrap_or_default();
        assert!(
            credentials.contains("credentials") && credentials.contains("`10.0.0.1`"),
            "{credentials}"
        );
        assert!(
            STRICT
                .check_url(&format!("https://example.com/{}", "a".repeat(MAX_URL_LEN)))
                .is_err()
        );
        assert!(OPEN.check_url("http://127.0.0.1:3000/hooks").is_ok());
        assert!(OPEN.check_url("http://localhost:3000/hooks").is_ok());
        assert!(OPEN.check_url("http://receiver:3000/hooks").is_ok());
    }
}
