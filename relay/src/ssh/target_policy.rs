//! Which addresses a relay may dial for SSH: the SSRF guard.
//!
//! The check runs on the *resolved* addresses, and the relay then dials exactly the address
//! that passed, never the name again, so DNS rebinding between check and connect is not
//! possible. Cloud metadata endpoints and link-local ranges are refused whatever the
//! configuration (they hand out instance credentials); loopback and private ranges are refused
//! unless configured, because from a relay inside a VPC they reach internal services. IPv6
//! forms that embed an IPv4 address (mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4
//! `2002::/16`) are judged by the IPv4 address inside, so `::ffff:169.254.169.254` is metadata.
//! AWS's IPv6 instance services (`fd00:ec2::/32`: metadata, DNS resolver, time) are refused as a
//! whole prefix, like the IPv4 metadata addresses.
//!
//! A refusal's text names neither the address a name resolved to nor which rule refused it:
//! answering "db.internal resolves to 10.0.3.7, a private address" would let any user map the
//! relay's private DNS. The address and the rule go to the relay's log only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

#[derive(Clone, Copy, Debug, Default)]
pub struct TargetPolicy {
    pub allow_loopback: bool,
    pub allow_private: bool,
}

/// Why an address is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("cloud metadata endpoint")]
    Metadata,
    #[error("link-local address")]
    LinkLocal,
    #[error("loopback address (set SSH_ALLOW_LOOPBACK=true to allow)")]
    Loopback,
    #[error("private network address (set SSH_ALLOW_PRIVATE=true to allow)")]
    Private,
    #[error("unspecified, broadcast, multicast or reserved address")]
    Reserved,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("could not resolve {host}")]
    NotFound { host: String },
    #[error("timed out resolving {host}")]
    Timeout { host: String },
    #[error("{host} is not allowed by the relay's target policy")]
    Denied {
        host: String,
        addr: IpAddr,
        reason: Denied,
    },
}

/// Addresses no configuration may open.
const METADATA_V4: [Ipv4Addr; 3] = [
    Ipv4Addr::new(169, 254, 169, 254), // AWS, GCP, Azure, OpenStack, DigitalOcean
    Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
    Ipv4Addr::new(168, 63, 129, 16),   // Azure WireServer
];
/// AWS's IPv6 instance services: IMDS `fd00:ec2::254`, the DNS resolver `fd00:ec2::253`, NTP.
const AWS_V6_PREFIX: [u16; 2] = [0xfd00, 0x0ec2];

impl TargetPolicy {
    pub fn check(&self, ip: IpAddr) -> Result<(), Denied> {
        match ip {
            IpAddr::V4(v4) => self.check_v4(v4),
            IpAddr::V6(v6) => match embedded_v4(v6) {
                Some(v4) => self.check_v4(v4),
                None => self.check_v6(v6),
            },
        }
    }

    fn check_v4(&self, ip: Ipv4Addr) -> Result<(), Denied> {
        let [a, b, ..] = ip.octets();
        if METADATA_V4.contains(&ip) {
            return Err(Denied::Metadata);
        }
        if ip.is_link_local() {
            return Err(Denied::LinkLocal);
        }
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || a == 0 || a >= 240 {
            return Err(Denied::Reserved);
        }
        if ip.is_loopback() {
            return self.allow_loopback.then_some(()).ok_or(Denied::Loopback);
        }
        let carrier_nat = a == 100 && (64..128).contains(&b);
        let benchmarking = a == 198 && (b == 18 || b == 19);
        if ip.is_private() || carrier_nat || benchmarking || (a == 192 && b == 0) {
            return self.allow_private.then_some(()).ok_or(Denied::Private);
        }
        Ok(())
    }

    fn check_v6(&self, ip: Ipv6Addr) -> Result<(), Denied> {
        let first = ip.segments().first().copied().unwrap_or_default();
        if ip.segments().starts_with(&AWS_V6_PREFIX) {
            return Err(Denied::Metadata);
        }
        if first & 0xffc0 == 0xfe80 {
            return Err(Denied::LinkLocal);
        }
        if ip.is_unspecified() || ip.is_multicast() || first & 0xffc0 == 0xfec0 {
            return Err(Denied::Reserved);
        }
        if ip.is_loopback() {
            return self.allow_loopback.then_some(()).ok_or(Denied::Loopback);
        }
        if first & 0xfe00 == 0xfc00 {
            return self.allow_private.then_some(()).ok_or(Denied::Private);
        }
        Ok(())
    }

    /// Resolve `host:port` (with a deadline) and keep only the addresses the policy allows.
    /// Any address that is metadata or link-local refuses the whole name: a name that points
    /// there is hostile, whatever else it also resolves to.
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Vec<SocketAddr>, ResolveError> {
        let host_owned = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let resolved: Vec<SocketAddr> = match host_owned.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => {
                match tokio::time::timeout(
                    timeout,
                    tokio::net::lookup_host((host_owned.as_str(), port)),
                )
                .await
                {
                    Ok(Ok(addrs)) => addrs.take(16).collect(),
                    Ok(Err(_)) => {
                        return Err(ResolveError::NotFound {
                            host: host.to_owned(),
                        });
                    }
                    Err(_) => {
                        return Err(ResolveError::Timeout {
                            host: host.to_owned(),
                        });
                    }
                }
            }
        };
        let mut allowed = Vec::with_capacity(resolved.len());
        let mut first_denial = None;
        for addr in resolved {
            match self.check(addr.ip()) {
                Ok(()) => allowed.push(addr),
                Err(reason @ (Denied::Metadata | Denied::LinkLocal)) => {
                    return Err(ResolveError::Denied {
                        host: host.to_owned(),
                        addr: addr.ip(),
                        reason,
                    });
                }
                Err(reason) => {
                    first_denial.get_or_insert((addr.ip(), reason));
                }
            }
        }
        match (allowed.is_empty(), first_denial) {
            (false, _) => Ok(allowed),
            (true, Some((addr, reason))) => Err(ResolveError::Denied {
                host: host.to_owned(),
                addr,
                reason,
            }),
            (true, None) => Err(ResolveError::NotFound {
                host: host.to_owned(),
            }),
        }
    }
}

/// The IPv4 address carried inside an IPv6 one, for the forms that route to it.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let [s0, s1, s2, s3, s4, s5, s6, s7] = s;
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    // NAT64 well-known prefix 64:ff9b::/96
    if s0 == 0x64 && s1 == 0xff9b && s2 == 0 && s3 == 0 && s4 == 0 && s5 == 0 {
        return Some(v4(s6, s7));
    }
    // 6to4 2002:AABB:CCDD::/48
    if s0 == 0x2002 {
        return Some(v4(s1, s2));
    }
    // Deprecated IPv4-compatible ::a.b.c.d (but not :: and ::1)
    if s0 == 0 && s1 == 0 && s2 == 0 && s3 == 0 && s4 == 0 && s5 == 0 && (s6 != 0 || s7 > 1) {
        return Some(v4(s6, s7));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> TargetPolicy {
        TargetPolicy::default()
    }

    fn permissive() -> TargetPolicy {
        TargetPolicy {
            allow_loopback: true,
            allow_private: true,
        }
    }

    #[test]
    fn metadata_and_link_local_are_refused_whatever_the_configuration() {
        for addr in [
            "169.254.169.254",
            "169.254.0.1",
            "100.100.100.200",
            "168.63.129.16",
            "fd00:ec2::254",
            "fe80::1",
            "febf::1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "::169.254.169.254",
        ] {
            let ip: IpAddr = addr.parse().unwrap();
            let denied = permissive().check(ip).unwrap_err();
            assert!(
                matches!(denied, Denied::Metadata | Denied::LinkLocal),
                "{addr}: {denied:?}"
            );
        }
    }

    #[test]
    fn loopback_and_private_need_configuration() {
        for addr in [
            "127.0.0.1",
            "::1",
            "::ffff:127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "fd12::1",
        ] {
            let ip: IpAddr = addr.parse().unwrap();
            assert!(strict().check(ip).is_err(), "{addr}");
            assert!(permissive().check(ip).is_ok(), "{addr}");
        }
    }

    #[test]
    fn public_addresses_pass_and_reserved_never_do() {
        for addr in ["1.1.1.1", "2606:4700:4700::1111", "8.8.8.8"] {
            assert!(strict().check(addr.parse().unwrap()).is_ok(), "{addr}");
        }
        for addr in [
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::",
            "ff02::1",
            "0.1.2.3",
        ] {
            assert!(permissive().check(addr.parse().unwrap()).is_err(), "{addr}");
        }
    }

    #[test]
    fn the_whole_aws_ipv6_metadata_and_dns_prefix_is_refused_whatever_the_configuration() {
        for addr in [
            "fd00:ec2::254",
            "fd00:ec2::253",
            "fd00:ec2::23",
            "fd00:ec2:0:1::1",
            "fd00:ec2:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let ip: IpAddr = addr.parse().unwrap();
            assert_eq!(permissive().check(ip), Err(Denied::Metadata), "{addr}");
        }
        // Neighbours of the prefix are ordinary private (unique local) addresses.
        for addr in ["fd00:ec3::1", "fd00:ec1::1"] {
            assert_eq!(permissive().check(addr.parse().unwrap()), Ok(()), "{addr}");
        }
    }

    #[tokio::test]
    async fn a_refusal_does_not_say_what_the_name_resolved_to() {
        for (policy, host) in [
            (strict(), "localhost"),
            (permissive(), "[fd00:ec2::253]"),
            (permissive(), "::ffff:169.254.169.254"),
        ] {
            let err = policy
                .resolve(host, 22, Duration::from_secs(5))
                .await
                .unwrap_err();
            let text = err.to_string();
            for leaked in [
                "127.0.0.1",
                "::1",
                "fd00",
                "169.254",
                "loopback",
                "metadata",
            ] {
                assert!(
                    !text.contains(leaked) || host.contains(leaked),
                    "{host}: {text}"
                );
            }
            assert!(text.contains("not allowed"), "{text}");
        }
    }

    #[tokio::test]
    async fn names_are_judged_by_what_they_resolve_to() {
        let err = strict()
            .resolve("localhost", 22, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, ResolveError::Denied { .. }), "{err}");
        let ok = permissive()
            .resolve("localhost", 22, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(ok.iter().all(|a| a.ip().is_loopback()));
        let err = permissive()
            .resolve("169.254.169.254", 22, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            ResolveError::Denied {
                reason: Denied::Metadata,
                ..
            }
        ));
    }
}
