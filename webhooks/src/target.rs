//! Where a webhook may point. A subscription's URL is chosen by its creator and fetched
//! by the deliverer from inside the network, so by default only `https` to public
//! addresses is allowed: loopback, private, link-local and other internal ranges are
//! refused both when the subscription is made (an address literal) and when each
//! delivery resolves the host (a name that resolves inward). A development stack turns
//! `allow_insecure` on so a receiver on the developer's machine works.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::Url;

/// What targets are allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Allow `http` and loopback or private addresses (development only).
    pub allow_insecure: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("not an absolute URL of at most 2048 characters")]
    NotUrl,
    #[error("the scheme must be https (http only where insecure targets are allowed)")]
    Scheme,
    #[error("the URL must not carry a user name or password")]
    Credentials,
    #[error("the address {0} is internal (loopback, private or link-local)")]
    Internal(IpAddr),
    #[error("the host does not resolve to an address that may be reached")]
    Unresolvable,
}

impl TargetPolicy {
    /// A URL a subscription may deliver to.
    pub fn check_url(&self, raw: &str) -> Result<Url, TargetError> {
        if raw.len() > 2048 {
            return Err(TargetError::NotUrl);
        }
        let url = Url::parse(raw).map_err(|_| TargetError::NotUrl)?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_insecure => {}
            _ => return Err(TargetError::Scheme),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetError::Credentials);
        }
        match url.host() {
            None => Err(TargetError::NotUrl),
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)).map(|()| url),
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)).map(|()| url),
            Some(url::Host::Domain(_)) => Ok(url),
        }
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), TargetError> {
        if self.allow_insecure || !is_internal(ip) {
            Ok(())
        } else {
            Err(TargetError::Internal(ip))
        }
    }
}

/// Addresses inside the network or the machine.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_internal_v4(v4),
            None => is_internal_v6(v6),
        },
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        // 100.64.0.0/10 (carrier-grade NAT), 0.0.0.0/8, 192.0.0.0/24, 198.18.0.0/15
        || (a == 100 && (64..128).contains(&b))
        || a == 0
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || (a == 198 && (b == 18 || b == 19))
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link-local
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
}

/// The resolver the deliverer's HTTP client uses: every address a host resolves to is
/// checked against the policy at delivery time, so a name that points inward later is
/// refused too.
#[derive(Clone, Copy, Debug)]
pub struct PolicyResolver(pub TargetPolicy);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| policy.check_ip(a.ip()).is_ok())
                .collect();
            if found.is_empty() {
                return Err(Box::new(TargetError::Unresolvable) as Box<_>);
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_only_https_to_public_addresses() {
        let strict = TargetPolicy::default();
        assert!(strict.check_url("https://hooks.example.com/ledger").is_ok());
        assert!(strict.check_url("https://203.0.113.7/x").is_ok());
        for (bad, why) in [
            ("http://hooks.example.com/", TargetError::Scheme),
            ("ftp://hooks.example.com/", TargetError::Scheme),
            (
                "https://user:pw@hooks.example.com/",
                TargetError::Credentials,
            ),
            ("not a url", TargetError::NotUrl),
            (
                "https://127.0.0.1/",
                TargetError::Internal(
                    "127.0.0.1"
                        .parse()
                        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                ),
            ),
        ] {
            assert_eq!(strict.check_url(bad).err(), Some(why), "{bad}");
        }
        for internal in [
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            let ip: IpAddr = internal.parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
            assert!(is_internal(ip), "{internal}");
        }
        assert!(!is_internal(IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8))));
    }

    #[test]
    fn a_development_stack_may_allow_http_and_loopback() {
        let dev = TargetPolicy {
            allow_insecure: true,
        };
        assert!(dev.check_url("http://127.0.0.1:9999/hook").is_ok());
        assert!(dev.check_url("ftp://127.0.0.1/").is_err());
    }
}
