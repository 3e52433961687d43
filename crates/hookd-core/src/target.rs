//! Which endpoint URLs hookd may call (SSRF policy).
//!
//! By default only `https://` URLs whose addresses are public are allowed: loopback,
//! private, link-local (cloud metadata), CGNAT, multicast and reserved ranges are refused.
//! The check runs on the URL at registration and, after DNS resolution, on every address
//! hookd connects to, so DNS rebinding cannot get around it. This module only decides;
//! resolving names is the caller's I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
    /// Checks an endpoint URL's shape, scheme and (for IP literals and `localhost`) address.
    /// Names still need [`TargetPolicy::check_ip`] on each resolved address.
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
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetError::Malformed(
                "credentials in the URL are not allowed; they would be logged with every attempt"
                    .to_owned(),
            ));
        }
        match url.host() {
            None => return Err(TargetError::Malformed("the URL has no host".to_owned())),
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if !self.allow_private_targets
                    && (name == "localhost" || name.ends_with(".localhost"))
                {
                    return Err(TargetError::PrivateAddress(name));
                }
            }
        }
        Ok(url)
    }

    /// Checks one address an endpoint resolved to.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), TargetError> {
        if self.allow_private_targets || is_public(ip) {
            Ok(())
        } else {
            Err(TargetError::PrivateAddress(ip.to_string()))
        }
    }
}

/// True for globally routable unicast addresses.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, where cloud metadata lives
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240; // reserved
    !refused
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) embed an IPv4 address that gets reached.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [hi, lo] = [segments[6], segments[7]];
        return is_public_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    }
    if segments[0] == 0x2002 {
        let embedded = (u32::from(segments[1]) << 16) | u32::from(segments[2]);
        return is_public_v4(Ipv4Addr::from(embedded));
    }
    let refused = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local fc00::/7 (incl. fd00:ec2::254)
        || (segments[0] & 0xffc0) == 0xfe80 // link-local
        || (segments[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || segments[..5] == [0, 0, 0, 0, 0]; // IPv4-compatible and other ::/80 oddities
    !refused
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("the URL is not valid: {0}")]
    Malformed(String),
    #[error("only https:// URLs are allowed (start hookd with --allow-http to permit http://)")]
    HttpNotAllowed,
    #[error(
        "`{0}` is a loopback, private, link-local or otherwise non-public address (start hookd with --allow-private-targets to permit it)"
    )]
    PrivateAddress(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: TargetPolicy = TargetPolicy {
        allow_private_targets: false,
        allow_http: false,
    };

    #[test]
    fn addresses_are_classified() {
        let refused = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "::127.0.0.1",
        ];
        for ip in refused {
            let ip: IpAddr = ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}"));
            assert!(!is_public(ip), "{ip} should be refused");
        }
        for ip in [
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}"));
            assert!(is_public(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn urls_are_checked() {
        assert!(STRICT.check_url("https://example.com/hooks").is_ok());
        assert_eq!(
            STRICT.check_url("http://example.com/"),
            Err(TargetError::HttpNotAllowed)
        );
        assert!(matches!(
            STRICT.check_url("https://127.0.0.1:3000/"),
            Err(TargetError::PrivateAddress(_))
        ));
        assert!(matches!(
            STRICT.check_url("https://[::1]/"),
            Err(TargetError::PrivateAddress(_))
        ));
        assert!(matches!(
            STRICT.check_url("https://LOCALHOST./x"),
            Err(TargetError::PrivateAddress(_))
        ));
        for bad in [
            "not a url",
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "mailto:a@b",
        ] {
            assert!(
                matches!(STRICT.check_url(bad), Err(TargetError::Malformed(_))),
                "{bad}"
            );
        }
        let open = TargetPolicy {
            allow_private_targets: true,
            allow_http: true,
        };
        assert!(open.check_url("http://127.0.0.1:3000/hooks").is_ok());
        assert!(open.check_url("http://localhost:3000/hooks").is_ok());
    }
}
