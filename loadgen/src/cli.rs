//! The command line: targets, scenario, rates, bounds and outputs, with their limits.

use crate::error::LoadgenError;
use clap::{Parser, ValueEnum};
use serde::Serialize;
use std::path::PathBuf;

/// Upper bounds of the flags, so a typo cannot open a million sockets or run for a day.
pub const MAX_SOCKETS: usize = 20_000;
pub const MAX_DURATION_SECS: u64 = 3_600;
pub const MAX_SETTLE_SECS: u64 = 600;
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
pub const MAX_WINDOW: usize = 10_000;
pub const MAX_RATE: f64 = 1_000_000.0;

#[derive(Debug, Clone, Parser, Serialize)]
#[command(
    name = "loadgen",
    about = "Open-loop load against a chat cell, with latency percentiles and a loss/duplicate/order verdict.",
    after_help = "Scenarios dm-storm and reconnect-storm are accepted but not implemented yet (exit 2).\n\
                  Exit status: 0 clean verdict, 1 lost/duplicated/reordered/gaps > 0, 2 error."
)]
pub struct Args {
    /// REST base URL of a gateway (e.g. http://10.0.0.5:8080); repeat for several, clients are
    /// spread round robin; the WebSocket URL is derived (ws://host:port/ws).
    #[arg(long = "gateway", value_name = "URL", required_unless_present = "local")]
    pub gateways: Vec<String>,
    /// Start a local cell (needs the gateway and messages binaries next to this one, or in
    /// CHAT_BIN_DIR) and target it.
    #[arg(long, conflicts_with = "gateways")]
    pub local: bool,
    /// Gateways of the local cell.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub local_gateways: usize,
    #[arg(long, value_enum, default_value_t = ScenarioKind::Pairs)]
    pub scenario: ScenarioKind,
    /// pairs: number of clients (rounded down to even, at least 2).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub clients: usize,
    /// rooms: number of channels.
    #[arg(long, default_value_t = 3, value_name = "R")]
    pub rooms: usize,
    /// rooms: members per channel; broadcast: members of the one channel.
    #[arg(long, default_value_t = 3, value_name = "M")]
    pub members: usize,
    /// broadcast: how many of the members send.
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub senders: usize,
    /// Total target sends per second over all senders, open loop.
    #[arg(long, default_value_t = 100.0, value_name = "N")]
    pub rate: f64,
    /// Unacked sends per socket at most; a send due while the window is full is skipped and
    /// counted as skipped_window_full.
    #[arg(long, default_value_t = 64, value_name = "W")]
    pub window: usize,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub duration: u64,
    /// Content length of each message (padded).
    #[arg(long, default_value_t = 64, value_name = "B")]
    pub message_bytes: usize,
    /// Seconds to wait after the last send for in-flight acks and deliveries.
    #[arg(long, default_value_t = 15, value_name = "SECS")]
    pub settle: u64,
    /// A process to measure (RSS, CPU) before and after; repeatable. With --local the
    /// gateways are added.
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
    /// Write the result as JSON here.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioKind {
    /// Clients in pairs, each pair a channel, both send.
    Pairs,
    /// --rooms channels of --members members, every member sends.
    Rooms,
    /// One channel of --members, --senders of them send, everyone receives.
    Broadcast,
    /// Not implemented yet.
    DmStorm,
    /// Not implemented yet.
    ReconnectStorm,
}

impl Args {
    /// Refuses values outside the bounds above.
    pub fn validate(&self) -> Result<(), LoadgenError> {
        let bad = |what: &str| Err(LoadgenError::Args(what.to_owned()));
        if !(self.rate > 0.0 && self.rate <= MAX_RATE) {
            return bad("--rate must be in (0, 1000000]");
        }
        if self.window == 0 || self.window > MAX_WINDOW {
            return bad("--window must be in 1..=10000");
        }
        if self.duration == 0 || self.duration > MAX_DURATION_SECS {
            return bad("--duration must be in 1..=3600");
        }
        if self.settle > MAX_SETTLE_SECS {
            return bad("--settle must be at most 600");
        }
        if self.message_bytes > MAX_MESSAGE_BYTES {
            return bad("--message-bytes must be at most 16384");
        }
        if self.local && !(1..=8).contains(&self.local_gateways) {
            return bad("--local-gateways must be in 1..=8");
        }
        Ok(())
    }
}
