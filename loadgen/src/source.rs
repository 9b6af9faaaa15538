//! Loopback source addresses for a load tool's sockets: every address of 127.0.0.0/8 has
//! ephemeral ports of its own, so sockets spread over 127.0.0.1–127.0.0.250 are not bounded by
//! one address's ports. Used by baseline (c) and by the hold scenario.

use std::net::{IpAddr, Ipv4Addr};

/// Loopback source addresses used, from 127.0.0.1 up.
pub const SOURCE_ADDRESSES: usize = 250;

/// The `k`-th source address: 127.0.0.1 + (k mod 250).
pub fn source_address(k: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (k % SOURCE_ADDRESSES) as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_cycle_over_250_loopback_addresses() {
        assert_eq!(source_address(0), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(source_address(249), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 250)));
        assert_eq!(source_address(250), source_address(0));
    }
}
