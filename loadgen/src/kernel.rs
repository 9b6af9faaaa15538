//! The kernel's side of the sockets: `/proc/net/sockstat` (TCP sockets in use, pages of TCP
//! buffers), the `TCP` slab of `/proc/slabinfo` (one object per socket; readable by root
//! only) and the whole slab of `/proc/meminfo`. Read before and while the sockets are held,
//! so the difference per socket is what a socket costs the kernel, both of its ends counted
//! (on loopback the client's end is on the same kernel).

use serde::Serialize;

/// One reading; a field is `None` when its file could not be read or parsed.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct KernelSockets {
    /// TCP sockets in use (`TCP: inuse`).
    pub tcp_inuse: Option<u64>,
    /// Pages of TCP socket buffers (`TCP: … mem`), all sockets.
    pub tcp_mem_pages: Option<u64>,
    /// Bytes of the `TCP` slab: objects × object size.
    pub tcp_slab_bytes: Option<u64>,
    /// All of the kernel's slab (`Slab:` of `/proc/meminfo`), KiB.
    pub slab_kib: Option<u64>,
}

pub fn sample() -> KernelSockets {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let sockstat = read("/proc/net/sockstat");
    KernelSockets {
        tcp_inuse: sockstat_field(&sockstat, "inuse"),
        tcp_mem_pages: sockstat_field(&sockstat, "mem"),
        tcp_slab_bytes: slab_bytes(&read("/proc/slabinfo"), "TCP"),
        slab_kib: meminfo_kib(&read("/proc/meminfo"), "Slab"),
    }
}

/// What the kernel grew by from `before` to `during`, per one of `sockets` held (each held
/// socket is two TCP sockets on loopback: its client's and its gateway's).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct KernelPerSocket {
    pub tcp_sockets: Option<f64>,
    pub tcp_buffer_bytes: Option<f64>,
    pub tcp_slab_bytes: Option<f64>,
    pub slab_bytes: Option<f64>,
}

pub fn per_socket(before: &KernelSockets, during: &KernelSockets, sockets: usize) -> KernelPerSocket {
    let n = sockets.max(1) as f64;
    let grown = |b: Option<u64>, d: Option<u64>, unit: f64| Some(d?.saturating_sub(b?) as f64 * unit / n);
    KernelPerSocket {
        tcp_sockets: grown(before.tcp_inuse, during.tcp_inuse, 1.0),
        tcp_buffer_bytes: grown(before.tcp_mem_pages, during.tcp_mem_pages, 4096.0),
        tcp_slab_bytes: grown(before.tcp_slab_bytes, during.tcp_slab_bytes, 1.0),
        slab_bytes: grown(before.slab_kib, during.slab_kib, 1024.0),
    }
}

/// A field of the `TCP:` line of sockstat.
fn sockstat_field(sockstat: &str, field: &str) -> Option<u64> {
    let line = sockstat.lines().find(|l| l.starts_with("TCP:"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == field)?;
    words.get(at + 1)?.parse().ok()
}

/// Objects × object size of the slab cache `name`.
fn slab_bytes(slabinfo: &str, name: &str) -> Option<u64> {
    let line = slabinfo.lines().find(|l| l.split_whitespace().next() == Some(name))?;
    let fields: Vec<u64> = line.split_whitespace().skip(1).take(3).filter_map(|f| f.parse().ok()).collect();
    match fields[..] {
        [_active, objects, size] => Some(objects * size),
        _ => None,
    }
}

/// A `Name:   123 kB` line of meminfo.
fn meminfo_kib(meminfo: &str, name: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOCKSTAT: &str =
        "sockets: used 16\nTCP: inuse 5 orphan 0 tw 2 alloc 7 mem 55\nUDP: inuse 0 mem 9\n";
    const SLABINFO: &str = "slabinfo - version: 2.1\n\
        TCPv6                 26     26   2496   13    8 : tunables    0    0    0 : slabdata      2      2      0\n\
        TCP                   20     26   2368   13    8 : tunables    0    0    0 : slabdata      2      2      0\n";

    #[test]
    fn sockstat_slabinfo_and_meminfo_are_read() {
        assert_eq!(sockstat_field(SOCKSTAT, "inuse"), Some(5));
        assert_eq!(sockstat_field(SOCKSTAT, "mem"), Some(55), "the TCP line's, not UDP's");
        assert_eq!(slab_bytes(SLABINFO, "TCP"), Some(26 * 2368));
        assert_eq!(slab_bytes(SLABINFO, "UDP"), None);
        let meminfo = "MemTotal: 100 kB\nSlab:    4096 kB\nSReclaimable: 10 kB\n";
        assert_eq!(meminfo_kib(meminfo, "Slab"), Some(4096));
        assert_eq!(meminfo_kib(meminfo, "SReclaimable"), Some(10));
    }

    #[test]
    fn growth_is_per_held_socket() {
        let before = KernelSockets {
            tcp_inuse: Some(10),
            tcp_mem_pages: Some(1),
            tcp_slab_bytes: None,
            slab_kib: Some(1000),
        };
        let during = KernelSockets {
            tcp_inuse: Some(210),
            tcp_mem_pages: Some(51),
            tcp_slab_bytes: Some(5),
            slab_kib: Some(1100),
        };
        let per = per_socket(&before, &during, 100);
        assert_eq!(per.tcp_sockets, Some(2.0));
        assert_eq!(per.tcp_buffer_bytes, Some(50.0 * 4096.0 / 100.0));
        assert_eq!(per.tcp_slab_bytes, None);
        assert_eq!(per.slab_bytes, Some(1024.0));
    }
}
