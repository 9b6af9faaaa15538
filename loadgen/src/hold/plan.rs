//! Where each held socket goes: its user, its gateway, its source address and the holder
//! process that opens it. Sockets are dealt round robin over gateways and processes, so every
//! process talks to every gateway and a user's sockets land on several gateways (as a user's
//! devices would); within a process, successive sockets take successive source addresses of
//! 127.0.0.1–127.0.0.250, each with ephemeral ports of its own.

use crate::source::source_address;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// One held socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// Index of its user in the scenario.
    pub user: usize,
    /// Index of its gateway among the run's targets.
    pub gateway: usize,
    pub source: IpAddr,
    /// Index of the holder process that opens it.
    pub process: usize,
}

/// `users × per_user` sockets: socket `i` is user `i / per_user`'s, on gateway
/// `i mod gateways`, opened by process `i mod processes` from the next source address of
/// that process.
pub fn place(users: usize, per_user: usize, gateways: usize, processes: usize) -> Vec<Placement> {
    let (gateways, processes) = (gateways.max(1), processes.max(1));
    (0..users * per_user)
        .map(|i| Placement {
            user: i / per_user,
            gateway: i % gateways,
            source: source_address(i / processes),
            process: i % processes,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn sockets_are_dealt_evenly_over_gateways_processes_and_addresses() {
        let placed = place(100, 6, 4, 3);
        assert_eq!(placed.len(), 600);
        let count = |key: &dyn Fn(&Placement) -> usize| {
            let mut n: HashMap<usize, usize> = HashMap::new();
            for p in &placed {
                *n.entry(key(p)).or_default() += 1;
            }
            n
        };
        assert_eq!(count(&|p| p.gateway).values().copied().collect::<HashSet<_>>(), HashSet::from([150]));
        assert_eq!(count(&|p| p.process).values().copied().collect::<HashSet<_>>(), HashSet::from([200]));
        assert_eq!(count(&|p| p.user).values().copied().collect::<HashSet<_>>(), HashSet::from([6]));
        // A user's sockets are on more than one gateway.
        let gateways_of_0: HashSet<_> = placed.iter().filter(|p| p.user == 0).map(|p| p.gateway).collect();
        assert_eq!(gateways_of_0.len(), 4);
        // Each process cycles through the addresses by itself: its first 200 use 200 of them.
        let of_process_1: HashSet<_> = placed.iter().filter(|p| p.process == 1).map(|p| p.source).collect();
        assert_eq!(of_process_1.len(), 200);
    }
}
