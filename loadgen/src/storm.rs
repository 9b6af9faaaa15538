//! reconnect-storm's fault: which gateway is killed (the local cell's busiest, or `--kill-pid`
//! of a remote one), the kill -9 at its moment, and the figures of the clients' recovery.

use crate::cli::Args;
use crate::measure::{CATCH_UP_TARGET, Percentiles, Recovery};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Serialize;
use tokio::time::Instant;

/// The gateway to kill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Victim {
    pub pid: u32,
    /// Its index among the run's targets, when loadgen knows it (a local cell).
    pub gateway: Option<usize>,
    /// The sockets it held when the load started, when loadgen knows which gateway it is.
    pub sockets: Option<usize>,
}

/// The gateway to kill: `--kill-pid` of a remote cell, else the local gateway (`gateway_pids`,
/// in the targets' order) that holds the most of the sockets (on `socket_gateways`).
pub fn victim(args: &Args, gateway_pids: &[u32], socket_gateways: &[usize]) -> Option<Victim> {
    if let Some(pid) = args.kill_pid {
        return Some(Victim { pid, gateway: None, sockets: None });
    }
    let held = |g: usize| socket_gateways.iter().filter(|s| **s == g).count();
    let busiest = (0..gateway_pids.len()).max_by_key(|g| (held(*g), std::cmp::Reverse(*g)))?;
    Some(Victim { pid: gateway_pids[busiest], gateway: Some(busiest), sockets: Some(held(busiest)) })
}

/// What the kill did.
#[derive(Debug, Clone, Serialize)]
pub struct Killed {
    pub pid: u32,
    /// The REST base URL of the killed gateway, when known.
    pub gateway: Option<String>,
    /// Sockets it held at the start, when known.
    pub sockets: Option<usize>,
    /// Seconds after the first send.
    pub at_s: f64,
    /// Why the signal could not be sent, if it could not.
    pub error: Option<String>,
}

/// Sends SIGKILL to the victim at `at`; `start` is the first send's time.
pub async fn kill_at(victim: Victim, bases: Vec<String>, start: Instant, at: Instant) -> Killed {
    tokio::time::sleep_until(at).await;
    let error = kill(Pid::from_raw(victim.pid as i32), Signal::SIGKILL).err().map(|e| e.to_string());
    Killed {
        pid: victim.pid,
        gateway: victim.gateway.and_then(|g| bases.get(g).cloned()),
        sockets: victim.sockets,
        at_s: at.saturating_duration_since(start).as_secs_f64(),
        error,
    }
}

/// reconnect-storm's own figures.
#[derive(Debug, Clone, Serialize)]
pub struct StormFigures {
    pub killed: Option<Killed>,
    pub sockets_dropped: u64,
    pub reconnects: u64,
    pub reconnect_attempts: u64,
    /// Drops after which no socket could be opened within the bounds.
    pub gave_up: u64,
    pub resends: u64,
    /// Drops recovered from: reconnected, synced, every send unacked at the drop answered.
    pub caught_up: u64,
    pub caught_up_within_10s: u64,
    /// Drop → caught up, per client and drop.
    pub catch_up_ms: Percentiles,
}

impl StormFigures {
    pub fn new(killed: Option<Killed>, recovery: &Recovery) -> Self {
        const _: () = assert!(CATCH_UP_TARGET.as_secs() == 10, "the field's name says 10 s");
        Self {
            killed,
            sockets_dropped: recovery.dropped,
            reconnects: recovery.reconnects,
            reconnect_attempts: recovery.attempts,
            gave_up: recovery.gave_up,
            resends: recovery.resends,
            caught_up: recovery.caught_up,
            caught_up_within_10s: recovery.caught_up_in_time,
            catch_up_ms: recovery.catch_up.percentiles(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn the_busiest_local_gateway_is_killed() {
        let args = Args::parse_from(["loadgen", "--local", "--scenario", "reconnect-storm"]);
        let victim = victim(&args, &[10, 11], &[0, 1, 1, 0, 1]).expect("a victim");
        assert_eq!(victim, Victim { pid: 11, gateway: Some(1), sockets: Some(3) });
        let remote = Args::parse_from(["loadgen", "--gateway", "http://a", "--kill-pid", "7"]);
        assert_eq!(super::victim(&remote, &[], &[0]).map(|v| v.pid), Some(7));
    }
}
