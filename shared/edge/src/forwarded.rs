//! Who the client is when the binary sits behind proxies it trusts (`TRUSTED_PROXY_HOPS`).
//!
//! Behind a load balancer the TCP peer is the balancer, so the audit log would record the
//! balancer's address for everyone. Each proxy appends the address it received the connection
//! from to `X-Forwarded-For`, so with N trusted proxies in front (the AWS deployment's relay:
//! CloudFront then the ALB, N = 2) the client is the N-th entry from the right: the one the
//! outermost trusted proxy appended. Everything to its left was sent by the client and is never
//! read. N = 0 (the default) reads no header at all: a process reached directly must not let a
//! client write any address it likes into its own audit log. An invalid setting is treated as 0
//! (trusting nothing is the safe failure) and logged.

use std::net::IpAddr;

use http::HeaderMap;

/// Most proxies a deployment may declare (CloudFront + a load balancer is 2).
pub const MAX_HOPS: usize = 5;

/// `TRUSTED_PROXY_HOPS`, bounded to [`MAX_HOPS`]; 0 when unset or invalid.
pub fn hops_from_env() -> usize {
    let Ok(raw) = std::env::var("TRUSTED_PROXY_HOPS") else {
        return 0;
    };
    match raw.trim().parse::<usize>() {
        Ok(hops) if hops <= MAX_HOPS => hops,
        _ => {
            tracing::error!(
                value = %raw,
                "TRUSTED_PROXY_HOPS must be a number from 0 to {MAX_HOPS}; X-Forwarded-For is not trusted"
            );
            0
        }
    }
}

/// The client address `hops` trusted proxies report, if the header chain is that long and the
/// entry is an IP address. Several `X-Forwarded-For` fields count as one list, in order.
pub fn client_address(headers: &HeaderMap, hops: usize) -> Option<IpAddr> {
    if hops == 0 {
        return None;
    }
    let mut entries = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let text = value.to_str().ok()?;
        entries.extend(text.split(',').map(str::trim));
        // A client can send many entries; only the last `hops` matter.
        if entries.len() > 64 {
            let excess = entries.len() - hops;
            entries.drain(..excess);
        }
    }
    let index = entries.len().checked_sub(hops)?;
    let entry = entries.get(index)?;
    let entry = entry
        .strip_prefix('[')
        .and_then(|rest| rest.split(']').next())
        .unwrap_or(entry);
    entry.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(
                "x-forwarded-for",
                value.parse().unwrap_or_else(|_| unreachable!()),
            );
        }
        map
    }

    #[test]
    fn the_entry_of_the_outermost_trusted_proxy_is_the_client() {
        // The client forged two entries; CloudFront appended the viewer, the ALB CloudFront.
        let chain = headers(&["6.6.6.6, 7.7.7.7, 203.0.113.9, 130.176.1.1"]);
        assert_eq!(client_address(&chain, 2), "203.0.113.9".parse().ok());
        assert_eq!(client_address(&chain, 1), "130.176.1.1".parse().ok());
        let split = headers(&["6.6.6.6", "203.0.113.9, 130.176.1.1"]);
        assert_eq!(client_address(&split, 2), "203.0.113.9".parse().ok());
        let v6 = headers(&["[2001:db8::1], 10.0.0.1"]);
        assert_eq!(client_address(&v6, 2), "2001:db8::1".parse().ok());
    }

    #[test]
    fn nothing_is_read_without_trust_or_with_too_short_a_chain() {
        let chain = headers(&["203.0.113.9"]);
        assert_eq!(client_address(&chain, 0), None);
        assert_eq!(client_address(&chain, 2), None);
        assert_eq!(client_address(&headers(&["not-an-ip"]), 1), None);
        assert_eq!(client_address(&HeaderMap::new(), 1), None);
        let long = vec!["1.1.1.1"; 500].join(", ") + ", 203.0.113.9";
        assert_eq!(
            client_address(&headers(&[&long]), 1),
            "203.0.113.9".parse().ok()
        );
    }
}
