//! What a hold run (`crate::hold`) found: sockets opened and still open at the end, how fast they opened,
//! and what they cost each gateway, each holder process and the kernel, per socket.

use crate::kernel::{KernelPerSocket, KernelSockets};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Default, Serialize)]
pub struct HoldFigures {
    /// Sockets planned: users × sockets per user.
    pub sockets: usize,
    pub users: usize,
    pub sockets_per_user: usize,
    pub processes: usize,
    pub opened: usize,
    pub failed: usize,
    pub open_errors: BTreeMap<String, usize>,
    /// Seconds from the first connect to the last holder's last `sync.done`.
    pub open_s: f64,
    pub opened_per_s: f64,
    /// Seconds the sockets were held, idle, after they were measured.
    pub held_s: f64,
    /// Sockets still open at the end of the hold.
    pub held: usize,
    /// Sockets that ended during the hold, by reason.
    pub dropped: BTreeMap<String, usize>,
    /// Frames the sockets received during the hold (pings not counted).
    pub frames: u64,
    pub gateways: Vec<ProcessCost>,
    pub holders: Vec<ProcessCost>,
    pub kernel_before: KernelSockets,
    pub kernel_held: KernelSockets,
    /// The kernel's growth per opened socket (both TCP ends of it).
    pub kernel_per_socket: KernelPerSocket,
}

/// One process's RSS before its sockets, with them open and idle, and at the end of the hold.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcessCost {
    pub pid: u32,
    /// Sockets placed on it (a gateway) or opened by it (a holder).
    pub sockets: usize,
    pub rss_before_kib: Option<u64>,
    pub rss_held_kib: Option<u64>,
    pub rss_end_kib: Option<u64>,
}

impl ProcessCost {
    /// RSS growth from before its sockets to held, per socket.
    pub fn bytes_per_socket(&self) -> Option<f64> {
        let grown = self.rss_held_kib?.saturating_sub(self.rss_before_kib?) as f64 * 1024.0;
        (self.sockets > 0).then(|| grown / self.sockets as f64)
    }
}

impl HoldFigures {
    /// Every socket opened, and every one still open at the end.
    pub fn clean(&self) -> bool {
        self.failed == 0
            && self.opened == self.sockets
            && self.held == self.sockets
            && self.dropped.is_empty()
    }

    /// The gateways' RSS growth over all their sockets, per opened socket.
    pub fn gateway_bytes_per_socket(&self) -> Option<f64> {
        per_socket(&self.gateways, self.opened)
    }

    /// The same for the holder processes (the client side).
    pub fn holder_bytes_per_socket(&self) -> Option<f64> {
        per_socket(&self.holders, self.opened)
    }
}

fn per_socket(processes: &[ProcessCost], sockets: usize) -> Option<f64> {
    if processes.is_empty() || sockets == 0 {
        return None;
    }
    let mut grown = 0.0;
    for p in processes {
        grown += p.rss_held_kib?.saturating_sub(p.rss_before_kib?) as f64 * 1024.0;
    }
    Some(grown / sockets as f64)
}

fn kib(v: Option<u64>) -> String {
    v.map_or("?".into(), |k| k.to_string())
}

fn bytes(v: Option<f64>) -> String {
    v.map_or("?".into(), |b| format!("{b:.0}"))
}

impl fmt::Display for HoldFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  hold: {} sockets ({} users × {}) from {} processes; opened {} (failed {}) in {:.1} s: {:.0}/s",
            self.sockets,
            self.users,
            self.sockets_per_user,
            self.processes,
            self.opened,
            self.failed,
            self.open_s,
            self.opened_per_s
        )?;
        if !self.open_errors.is_empty() {
            writeln!(f, "  open errors {:?}", self.open_errors)?;
        }
        writeln!(
            f,
            "  held {:.0} s: {} of {} still open at the end, dropped {:?}, {} frames received",
            self.held_s, self.held, self.sockets, self.dropped, self.frames
        )?;
        for (i, g) in self.gateways.iter().enumerate() {
            writeln!(
                f,
                "  gateway {i} pid {}: {} sockets, rss {} → {} KiB held ({} at the end): {} B per socket",
                g.pid,
                g.sockets,
                kib(g.rss_before_kib),
                kib(g.rss_held_kib),
                kib(g.rss_end_kib),
                bytes(g.bytes_per_socket())
            )?;
        }
        writeln!(
            f,
            "  per socket: gateways {} B, holders (client side) {} B",
            bytes(self.gateway_bytes_per_socket()),
            bytes(self.holder_bytes_per_socket())
        )?;
        let k = &self.kernel_per_socket;
        writeln!(
            f,
            "  kernel per socket (both ends): {} TCP sockets, {} B TCP buffers, {} B TCP slab, {} B all slab (TCP in use {} → {})",
            k.tcp_sockets.map_or("?".into(), |n| format!("{n:.2}")),
            bytes(k.tcp_buffer_bytes),
            bytes(k.tcp_slab_bytes),
            bytes(k.slab_bytes),
            kib(self.kernel_before.tcp_inuse),
            kib(self.kernel_held.tcp_inuse)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_socket_growth_is_over_every_process_and_clean_needs_every_socket_held() {
        let cost = |before, held, sockets| ProcessCost {
            pid: 1,
            sockets,
            rss_before_kib: Some(before),
            rss_held_kib: Some(held),
            rss_end_kib: None,
        };
        let mut h = HoldFigures {
            sockets: 4,
            opened: 4,
            held: 4,
            gateways: vec![cost(100, 108, 2), cost(100, 104, 2)],
            ..HoldFigures::default()
        };
        assert_eq!(h.gateways[0].bytes_per_socket(), Some(4096.0));
        assert_eq!(h.gateway_bytes_per_socket(), Some(3072.0));
        assert_eq!(h.holder_bytes_per_socket(), None);
        assert!(h.clean());
        h.dropped.insert("closed: 4001".into(), 1);
        h.held = 3;
        assert!(!h.clean());
        assert!(h.to_string().contains("3 of 4 still open"), "{h}");
    }
}
