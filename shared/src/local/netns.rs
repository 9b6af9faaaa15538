//! Real network faults for a local NATS cluster: each node runs in a network namespace of its
//! own, joined to the host by a veth pair on one bridge, with an address of its own. A fault
//! cuts or spoils a node's link while its process keeps running, so the node goes on believing
//! what it believed: a leader cut off from its followers still thinks it leads.
//!
//! - [`NetLab::isolate`]: the node's veth goes down, cut off from its peers and every client.
//! - [`NetLab::partition_from_peers`]: nftables in the node's namespace drops what goes to or
//!   comes from the other nodes; clients (the host side) still reach it.
//! - [`NetLab::lossy`]: nftables drops that share of the node's packets at random.
//!
//! This machine's kernel has no `netem` qdisc, so delay is not offered; a flapping link is a
//! loop of [`NetLab::isolate`] and [`NetLab::rejoin`] (the fault tests' driver).
//!
//! Needs root (`ip netns`, `nft`). Every namespace and bridge is named after the owning process,
//! and removed when the lab is dropped; [`NetLab::create`] also removes what a killed process
//! left behind.

use super::process::ProcessError;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every namespace a lab creates: `chat-<pid>-<lab>-<node>`.
const NAMESPACE_PREFIX: &str = "chat-";

static LABS: AtomicU32 = AtomicU32::new(0);

/// One node's namespace, its host-side veth and its address.
#[derive(Debug, Clone)]
struct NodeLink {
    node: String,
    namespace: String,
    /// The host side of the veth pair: its link state is the node's link.
    veth: String,
    addr: Ipv4Addr,
    peers: Vec<Ipv4Addr>,
}

/// The bridge and the namespaces of one cluster's nodes.
#[derive(Debug)]
pub struct NetLab {
    bridge: String,
    links: Vec<NodeLink>,
}

/// The bridge of lab `lab` of process `pid` (interface names have at most 15 bytes).
fn bridge_name(pid: &str, lab: &str) -> String {
    format!("cb{pid}x{lab}")
}

/// Runs `ip args…` (nft runs through `ip netns exec`); its stderr as the error.
fn ip(args: &[&str]) -> Result<(), ProcessError> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| ProcessError::Setup(format!("ip {}: {e}", args.join(" "))))?;
    if output.status.success() {
        return Ok(());
    }
    Err(ProcessError::Setup(format!(
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    )))
}

/// A /24 of 10.0.0.0/8 that no route of the machine uses, picked from `seed`'s octets.
fn free_subnet(seed: Ipv4Addr) -> Result<[u8; 2], ProcessError> {
    let routes = Command::new("ip")
        .args(["-4", "route", "show", "table", "all"])
        .output()
        .map_err(|e| ProcessError::Setup(format!("ip route: {e}")))?;
    let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
    let [_, _, a, b] = seed.octets();
    (0..=255u8)
        .map(|step| [a.wrapping_add(step), b.wrapping_add(step.wrapping_mul(7))])
        .find(|[a, b]| !routes.contains(&format!("10.{a}.{b}.")))
        .ok_or_else(|| ProcessError::Setup("no free 10.x.y.0/24 for the network lab".into()))
}

impl NetLab {
    /// Creates a bridge and one namespace per node (`nodes`), each with a veth on the bridge.
    /// `seed` (the cell's loopback address) picks the subnet, so cells side by side differ.
    pub fn create(seed: Ipv4Addr, nodes: &[&str]) -> Result<Self, ProcessError> {
        sweep_stale();
        let [a, b] = free_subnet(seed)?;
        let (pid, lab) = (std::process::id(), LABS.fetch_add(1, Ordering::Relaxed));
        let host = Ipv4Addr::new(10, a, b, 1);
        let addrs: Vec<Ipv4Addr> = (0..nodes.len()).map(|i| Ipv4Addr::new(10, a, b, 11 + i as u8)).collect();
        let links = nodes
            .iter()
            .zip(&addrs)
            .enumerate()
            .map(|(i, (&node, &addr))| NodeLink {
                node: node.to_owned(),
                namespace: format!("{NAMESPACE_PREFIX}{pid}-{lab}-{node}"),
                veth: format!("cv{pid}x{lab}n{i}"),
                addr,
                peers: addrs.iter().copied().filter(|&p| p != addr).collect(),
            })
            .collect();
        // Dropped (and so cleaned up) if any step below fails.
        let lab = Self { bridge: bridge_name(&pid.to_string(), &lab.to_string()), links };
        ip(&["link", "add", &lab.bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{host}/24"), "dev", &lab.bridge])?;
        ip(&["link", "set", &lab.bridge, "up"])?;
        for link in &lab.links {
            lab.wire(link)?;
        }
        Ok(lab)
    }

    /// The namespace of `link`, its veth pair, and its address.
    fn wire(&self, link: &NodeLink) -> Result<(), ProcessError> {
        let ns = link.namespace.as_str();
        ip(&["netns", "add", ns])?;
        ip(&["link", "add", &link.veth, "type", "veth", "peer", "name", "eth0", "netns", ns])?;
        ip(&["link", "set", &link.veth, "master", &self.bridge, "up"])?;
        ip(&["-n", ns, "addr", "add", &format!("{}/24", link.addr), "dev", "eth0"])?;
        ip(&["-n", ns, "link", "set", "eth0", "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])
    }

    fn link(&self, node: &str) -> Result<&NodeLink, ProcessError> {
        self.links
            .iter()
            .find(|l| l.node == node)
            .ok_or_else(|| ProcessError::Setup(format!("no node {node} in the network lab")))
    }

    /// The node's address (it binds it in its namespace).
    pub fn addr(&self, node: &str) -> Option<Ipv4Addr> {
        self.link(node).ok().map(|l| l.addr)
    }

    /// The host-side links of the lab: its bridge and each node's veth.
    pub fn link_names(&self) -> Vec<String> {
        std::iter::once(self.bridge.clone()).chain(self.links.iter().map(|l| l.veth.clone())).collect()
    }

    /// The node's namespace, for `ip netns exec`.
    pub fn namespace(&self, node: &str) -> Option<&str> {
        self.link(node).ok().map(|l| l.namespace.as_str())
    }

    /// Cuts the node off from everything: its link goes down.
    pub fn isolate(&self, node: &str) -> Result<(), ProcessError> {
        ip(&["link", "set", &self.link(node)?.veth, "down"])
    }

    /// Brings the node's link up again.
    pub fn rejoin(&self, node: &str) -> Result<(), ProcessError> {
        ip(&["link", "set", &self.link(node)?.veth, "up"])
    }

    /// Drops, in the node's namespace, every packet to or from the other nodes: the cluster
    /// is split, the node alone on one side, while clients still reach it.
    pub fn partition_from_peers(&self, node: &str) -> Result<(), ProcessError> {
        let link = self.link(node)?;
        let peers = link.peers.iter().map(Ipv4Addr::to_string).collect::<Vec<_>>().join(", ");
        self.nft_rules(link, &format!("ip saddr {{ {peers} }} drop"), &format!("ip daddr {{ {peers} }} drop"))
    }

    /// Drops `percent` % of the node's packets each way, at random.
    pub fn lossy(&self, node: &str, percent: u8) -> Result<(), ProcessError> {
        let rule = format!("numgen random mod 100 < {} drop", percent.min(100));
        self.nft_rules(self.link(node)?, &rule, &rule)
    }

    /// Removes the node's nftables rules (a partition, a loss).
    pub fn heal(&self, node: &str) -> Result<(), ProcessError> {
        let link = self.link(node)?;
        ip(&["netns", "exec", &link.namespace, "nft", "delete", "table", "inet", "chaos"])
    }

    /// One `chaos` table in the node's namespace, with `input` and `output` rules.
    fn nft_rules(&self, link: &NodeLink, input: &str, output: &str) -> Result<(), ProcessError> {
        let _ = self.heal(&link.node);
        let script = format!(
            "table inet chaos {{\n  chain input {{ type filter hook input priority 0; policy accept; {input}; }}\n  \
             chain output {{ type filter hook output priority 0; policy accept; {output}; }}\n}}\n"
        );
        let path = std::env::temp_dir().join(format!("{}.nft", link.namespace));
        std::fs::write(&path, script).map_err(|e| ProcessError::Setup(format!("{}: {e}", path.display())))?;
        let result = ip(&["netns", "exec", &link.namespace, "nft", "-f", &path.display().to_string()]);
        let _ = std::fs::remove_file(&path);
        result
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        for link in &self.links {
            // The veth pair goes with its namespace once no process is left in it.
            let _ = ip(&["link", "del", &link.veth]);
            let _ = ip(&["netns", "del", &link.namespace]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

/// Removes the namespaces and bridges of labs whose process is gone (killed before its drop).
pub fn sweep_stale() {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else { return };
    let alive = |pid: &str| std::path::Path::new(&format!("/proc/{pid}")).exists();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(rest) = name.strip_prefix(NAMESPACE_PREFIX) else { continue };
        let Some((pid, rest)) = rest.split_once('-') else { continue };
        if pid.parse::<u32>().is_err() || alive(pid) {
            continue;
        }
        let _ = ip(&["netns", "del", name]);
        if let Some((lab, _)) = rest.split_once('-') {
            let _ = ip(&["link", "del", &bridge_name(pid, lab)]);
        }
    }
}
