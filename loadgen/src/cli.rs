//! The command line: targets, scenario, rates, bounds and outputs, with their limits.

use crate::baseline::{AckMode, BaselineKind};
use crate::error::LoadgenError;
use clap::{Parser, ValueEnum};
use serde::{Serialize, Serializer};
use std::path::PathBuf;

/// Upper bounds of the flags, so a typo cannot open a million sockets or run for a day.
pub const MAX_SOCKETS: usize = 20_000;
/// hold: sockets in all, and per holder process (under the 20,000 fds a process may have).
pub const MAX_HOLD_SOCKETS: usize = 200_000;
pub const MAX_SOCKETS_PER_PROCESS: usize = 19_000;
pub const MAX_SOCKETS_PER_USER: usize = 1_000;
pub const MAX_PROCESSES: usize = 64;
/// hold: the access tokens the holders open with live 15 minutes; a hold ends well before.
pub const MAX_HOLD_SECS: u64 = 600;
pub const MAX_DURATION_SECS: u64 = 3_600;
pub const MAX_SETTLE_SECS: u64 = 600;
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
pub const MAX_WINDOW: usize = 10_000;
pub const MAX_RATE: f64 = 1_000_000.0;
/// The most members a channel's creation names besides its creator (the gateway's cap).
pub const MAX_CREATE_WITH: usize = 1_000;
pub const MAX_BASELINE_MESSAGES: usize = 1_000_000;
pub const MAX_BASELINE_INFLIGHT: usize = 10_000;
pub const MAX_INSERT_CONCURRENCY: usize = 16;
pub const MAX_PARTITIONS: u16 = 1_024;
pub const MAX_REPLICAS: usize = 5;
pub const MAX_ACK_BATCHES: usize = 64;
pub const MAX_FANOUT_MESSAGES: usize = 100_000;
pub const MAX_FANOUT_WINDOW: usize = 1_024;
/// Sockets × messages of the fan-out baseline (its ledger keeps a bit for each: 25 MB).
pub const MAX_FANOUT_DELIVERIES: usize = 200_000_000;

#[derive(Debug, Clone, Parser, Serialize)]
#[command(
    name = "loadgen",
    about = "Open-loop load against a chat cell, with latency percentiles and a loss/duplicate/order verdict.",
    after_help = "Exit status: 0 clean verdict, 1 lost/duplicated/reordered/gaps > 0 (or a baseline\n\
                  that lost, duplicated or left something), 2 error (a baseline that failed included)."
)]
pub struct Args {
    /// REST base URL of a gateway (e.g. http://10.0.0.5:8080); repeat for several, clients are
    /// spread round robin; the WebSocket URL is derived (ws://host:port/ws).
    #[arg(
        long = "gateway",
        value_name = "URL",
        required_unless_present_any = ["local", "baseline_only", "hold_child"]
    )]
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
    /// pairs: number of clients (rounded down to even, at least 2); dm-storm: users.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub clients: usize,
    /// rooms, reconnect-storm: number of channels.
    #[arg(long, default_value_t = 3, value_name = "R")]
    pub rooms: usize,
    /// rooms, reconnect-storm: members per channel; broadcast: members of the one channel.
    #[arg(long, default_value_t = 3, value_name = "M")]
    pub members: usize,
    /// broadcast: how many of the members send.
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub senders: usize,
    /// Members named in a channel's creation besides its creator; the others are added one by
    /// one with `POST /channels/{id}/members`. The gateway takes at most 1000 at creation, so
    /// a broadcast of 10,000 is 1,000 + 8,999 adds.
    #[arg(long, default_value_t = MAX_CREATE_WITH, value_name = "N")]
    pub create_with: usize,
    /// Total target sends per second over all senders, open loop.
    #[arg(long, default_value_t = 100.0, value_name = "N")]
    pub rate: f64,
    /// Unacked sends per socket at most; a send due while the window is full is skipped and
    /// counted as skipped_window_full.
    #[arg(long, default_value_t = 64, value_name = "W")]
    pub window: usize,
    /// Seconds of sending (dm-storm: not used, its storm lasts as long as it takes).
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub duration: u64,
    /// Content length of each message (padded).
    #[arg(long, default_value_t = 64, value_name = "B")]
    pub message_bytes: usize,
    /// With --local (pairs, rooms, broadcast): the workers are stopped while the load is sent
    /// and started once it ends, and the drain of the stream is timed: the worker's rows/s
    /// with full batches, beside (d). Give --settle time for the drain.
    #[arg(long)]
    pub backlog: bool,
    /// Seconds to wait after the last send for in-flight acks and deliveries.
    #[arg(long, default_value_t = 15, value_name = "SECS")]
    pub settle: u64,
    /// reconnect-storm: seconds after the first send when one gateway is killed (kill -9);
    /// half of --duration by default.
    #[arg(long, value_name = "SECS")]
    pub kill_after: Option<f64>,
    /// reconnect-storm against a remote cell: the PID of the gateway to kill -9 (loadgen must
    /// run on its host). With --local the busiest local gateway is killed.
    #[arg(long, value_name = "PID", conflicts_with = "local")]
    pub kill_pid: Option<u32>,
    /// dm-storm: direct-message channels each user opens (with the next users), at most
    /// (clients - 1) / 2 so no dm is opened twice.
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub dms: usize,
    /// dm-storm: messages each user sends into each dm it opened, right after opening it.
    #[arg(long, default_value_t = 3, value_name = "M")]
    pub dm_messages: usize,
    /// A process to measure (RSS, CPU) before and after; repeatable. With --local the
    /// gateways are added.
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
    /// Write the result as JSON here.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Baselines measured after the scenario on the same servers, a comma list: publish (raw
    /// JetStream publish), consume (the same plus a pull consumer per partition), fanout (a
    /// bare WebSocket broadcast server of its own), insert (plain UNNEST inserts of 1,000-row
    /// batches).
    #[arg(long = "baseline", value_enum, value_delimiter = ',', value_name = "LIST")]
    pub baselines: Vec<BaselineKind>,
    /// Only the baselines, no scenario (with --local: on a local cell's servers).
    #[arg(long, conflicts_with = "gateways")]
    pub baseline_only: bool,
    /// Messages each of publish and consume publishes, and rows insert inserts.
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    pub baseline_messages: usize,
    /// Publishes awaiting their PubAck at any time (publish, consume).
    #[arg(long, default_value_t = 1_024, value_name = "W")]
    pub baseline_inflight: usize,
    /// How the consume baseline acks: request (confirmed, as a request on the client's one
    /// reply subscription, as the worker does), double (double_ack: confirmed on a
    /// subscription per message, as the worker did before) or plain (not confirmed).
    #[arg(long, value_enum, default_value_t = AckMode::Request)]
    pub baseline_ack: AckMode,
    /// Batches per consumer whose acks are in flight at once while the next batch is taken
    /// (8, as the worker's finisher; 1: each batch's acks before the next).
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub baseline_ack_batches: usize,
    /// The consume baseline's consumers keep their state in memory (as a cell with
    /// `nats.consumer_state_in_memory` does) instead of on disk.
    #[arg(long)]
    pub baseline_consumer_memory: bool,
    /// Insert loops at once (the worker has one per partition, each one batch at a time).
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub baseline_insert_concurrency: usize,
    /// Partitions of the scratch streams (one consumer each): by default the local cell's,
    /// else 16 (the cell's default).
    #[arg(long, value_name = "P")]
    pub baseline_partitions: Option<u16>,
    /// Replicas of the scratch streams (3 in a real cell; needs as many NATS nodes).
    #[arg(long, default_value_t = 3, value_name = "R")]
    pub baseline_replicas: usize,
    /// Sockets of the fanout baseline; by default --members (the broadcast scenario's).
    #[arg(long, value_name = "N")]
    pub baseline_sockets: Option<usize>,
    /// Messages the fanout baseline's senders (--senders of its sockets) send, each to every
    /// socket.
    #[arg(long, default_value_t = 1_000, value_name = "N")]
    pub baseline_fanout_messages: usize,
    /// Messages the fanout baseline sends ahead of what has reached every socket, at most.
    #[arg(long, default_value_t = 16, value_name = "W")]
    pub baseline_fanout_window: usize,
    /// Messages per second the fanout baseline sends, over all its senders; by default as fast
    /// as its window allows.
    #[arg(long, value_name = "N")]
    pub baseline_fanout_rate: Option<f64>,
    /// NATS URL for the publish and consume baselines and the audit; repeatable. Not with --local.
    #[arg(long = "nats", value_name = "URL", conflicts_with = "local")]
    pub nats: Vec<String>,
    /// hold: sockets each user opens (rooms × members users); they are dealt round robin over
    /// the gateways.
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub sockets_per_user: usize,
    /// hold: holder processes the sockets are spread over (each opens at most 19,000, under
    /// the fd limit); loadgen starts them and sums their figures.
    #[arg(long, default_value_t = 1, value_name = "P")]
    pub processes: usize,
    /// hold: the loadgen binary the holder processes run (this one by default).
    #[arg(long, value_name = "PATH")]
    pub child_bin: Option<PathBuf>,
    /// Internal: run as a holder process of a hold run, on the spec in FILE.
    #[arg(long, value_name = "FILE", hide = true)]
    pub hold_child: Option<PathBuf>,
    /// After the run, judge the cell's stores for the run's channels (pairs, rooms, broadcast,
    /// reconnect-storm): every acked send stored once, each channel's `seq`s contiguous, the
    /// stream's messages all stored. Needs --postgres and --nats, or --local.
    #[arg(long)]
    pub audit: bool,
    /// Seconds the audit waits for the workers to store what the stream holds.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub audit_wait: u64,
    /// The audited cell's message stream (`nats.stream`).
    #[arg(long, default_value = "CHAT_MESSAGES", value_name = "NAME")]
    pub audit_stream: String,
    /// The audited cell's `nats.subject_prefix`.
    #[arg(long, default_value = "chat", value_name = "PREFIX")]
    pub audit_subject_prefix: String,
    /// Postgres URL for the insert baseline and the audit; its database needs the cell's
    /// tables (migrated). Not with --local. Written to --out without its password.
    #[arg(long, value_name = "URL", conflicts_with = "local")]
    #[serde(serialize_with = "without_password")]
    pub postgres: Option<String>,
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
    /// --clients users each open --dms direct-message channels over REST, all at once, and
    /// send --dm-messages into each right away: channel creation under load.
    DmStorm,
    /// rooms over at least two gateways; one gateway is killed -9 mid-run and its clients
    /// reconnect to the others with jittered backoff, sync and resend.
    ReconnectStorm,
    /// --rooms × --members users with --sockets-per-user idle sockets each, over --processes
    /// holder processes, held --duration seconds: memory per socket, and none dropped.
    Hold,
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
        if self.create_with > MAX_CREATE_WITH {
            return bad("--create-with must be at most 1000");
        }
        if self.backlog && !self.local {
            return bad("--backlog needs --local (it stops and starts the cell's workers)");
        }
        if self.local && !(1..=8).contains(&self.local_gateways) {
            return bad("--local-gateways must be in 1..=8");
        }
        self.validate_storms()?;
        self.validate_hold()?;
        self.validate_audit()?;
        self.validate_baselines()
    }

    /// The audit's needs: a scenario whose sockets record their acks, and the stores.
    fn validate_audit(&self) -> Result<(), LoadgenError> {
        let bad = |what: &str| Err(LoadgenError::Args(what.to_owned()));
        if !self.audit {
            return Ok(());
        }
        if self.baseline_only || matches!(self.scenario, ScenarioKind::Hold | ScenarioKind::DmStorm) {
            return bad("--audit is for pairs, rooms, broadcast and reconnect-storm");
        }
        if !self.local && (self.postgres.is_none() || self.nats.is_empty()) {
            return bad("--audit needs --postgres and --nats (the cell's own), or --local");
        }
        if self.audit_wait > MAX_SETTLE_SECS {
            return bad("--audit-wait must be at most 600");
        }
        Ok(())
    }

    /// hold's bounds: sockets in all, per process, per local gateway; a hold shorter than the
    /// holders' tokens live.
    fn validate_hold(&self) -> Result<(), LoadgenError> {
        let bad = |what: String| Err(LoadgenError::Args(what));
        if self.scenario != ScenarioKind::Hold || self.baseline_only {
            if self.sockets_per_user != 1 || self.processes != 1 {
                return bad("--sockets-per-user and --processes are for hold".into());
            }
            return Ok(());
        }
        if !(1..=MAX_SOCKETS_PER_USER).contains(&self.sockets_per_user) {
            return bad(format!("--sockets-per-user must be in 1..={MAX_SOCKETS_PER_USER}"));
        }
        if !(1..=MAX_PROCESSES).contains(&self.processes) {
            return bad(format!("--processes must be in 1..={MAX_PROCESSES}"));
        }
        if self.duration > MAX_HOLD_SECS {
            return bad(format!("hold: --duration must be at most {MAX_HOLD_SECS} (the tokens live 15 min)"));
        }
        let sockets = self.rooms.max(1) * self.members.max(2) * self.sockets_per_user;
        if sockets > MAX_HOLD_SOCKETS {
            return bad(format!("hold: {sockets} sockets, more than {MAX_HOLD_SOCKETS}"));
        }
        if sockets.div_ceil(self.processes) > MAX_SOCKETS_PER_PROCESS {
            return bad(format!(
                "hold: {sockets} sockets need at least {} processes ({MAX_SOCKETS_PER_PROCESS} each at most)",
                sockets.div_ceil(MAX_SOCKETS_PER_PROCESS)
            ));
        }
        if self.local && sockets.div_ceil(self.local_gateways) > MAX_SOCKETS_PER_PROCESS {
            return bad(format!(
                "hold: {sockets} sockets need at least {} local gateways ({MAX_SOCKETS_PER_PROCESS} each at most)",
                sockets.div_ceil(MAX_SOCKETS_PER_PROCESS)
            ));
        }
        Ok(())
    }

    /// The storms' own needs: gateways to reconnect to and a way to kill one; dms that exist.
    fn validate_storms(&self) -> Result<(), LoadgenError> {
        let bad = |what: &str| Err(LoadgenError::Args(what.to_owned()));
        if self.baseline_only {
            return Ok(());
        }
        match self.scenario {
            ScenarioKind::ReconnectStorm | ScenarioKind::DmStorm if self.backlog => {
                bad("--backlog is for pairs, rooms and broadcast")
            }
            ScenarioKind::ReconnectStorm => {
                let gateways = if self.local { self.local_gateways } else { self.gateways.len() };
                if gateways < 2 {
                    return bad(
                        "reconnect-storm needs at least 2 gateways (--local --local-gateways N, or several --gateway)",
                    );
                }
                if !self.local && self.kill_pid.is_none() {
                    return bad(
                        "reconnect-storm against a remote cell needs --kill-pid PID (the gateway to kill -9)",
                    );
                }
                let at = self.kill_at_secs();
                if !(at >= 0.0 && at < self.duration as f64) {
                    return bad("--kill-after must be in [0, --duration)");
                }
                Ok(())
            }
            ScenarioKind::DmStorm => {
                if self.dms == 0 || self.dm_messages == 0 || self.dm_messages > MAX_WINDOW {
                    return bad("--dms must be at least 1 and --dm-messages in 1..=10000");
                }
                if self.clients < 2 * self.dms + 1 {
                    return bad("dm-storm needs --clients at least 2 x --dms + 1 (each dm opened once)");
                }
                Ok(())
            }
            _ if self.backlog && self.scenario == ScenarioKind::Hold => {
                bad("--backlog is for scenarios that send")
            }
            _ if self.kill_after.is_some() || self.kill_pid.is_some() => {
                bad("--kill-after and --kill-pid are for reconnect-storm")
            }
            _ => Ok(()),
        }
    }

    /// When reconnect-storm kills its gateway, in seconds after the first send.
    pub fn kill_at_secs(&self) -> f64 {
        self.kill_after.unwrap_or(self.duration as f64 / 2.0)
    }

    fn validate_baselines(&self) -> Result<(), LoadgenError> {
        let bad = |what: &str| Err(LoadgenError::Args(what.to_owned()));
        if self.baseline_only && self.baselines.is_empty() {
            return bad("--baseline-only needs --baseline");
        }
        if !(1..=MAX_BASELINE_MESSAGES).contains(&self.baseline_messages) {
            return bad("--baseline-messages must be in 1..=1000000");
        }
        if !(1..=MAX_BASELINE_INFLIGHT).contains(&self.baseline_inflight) {
            return bad("--baseline-inflight must be in 1..=10000");
        }
        if !(1..=MAX_ACK_BATCHES).contains(&self.baseline_ack_batches) {
            return bad("--baseline-ack-batches must be in 1..=64");
        }
        if !(1..=MAX_INSERT_CONCURRENCY).contains(&self.baseline_insert_concurrency) {
            return bad("--baseline-insert-concurrency must be in 1..=16");
        }
        if self.baseline_partitions.is_some_and(|p| !(1..=MAX_PARTITIONS).contains(&p)) {
            return bad("--baseline-partitions must be in 1..=1024");
        }
        if !(1..=MAX_REPLICAS).contains(&self.baseline_replicas) {
            return bad("--baseline-replicas must be in 1..=5");
        }
        self.validate_fanout()?;
        if self.local {
            return Ok(());
        }
        let kinds = self.baseline_kinds();
        let nats = kinds.iter().any(|k| k.needs_nats());
        let postgres = kinds.contains(&BaselineKind::Insert);
        match (nats, self.nats.is_empty(), postgres, self.postgres.is_some()) {
            (true, true, _, _) => bad("--baseline publish/consume needs --nats URL (or --local)"),
            (false, false, _, _) if !self.audit => {
                bad("--nats is only used by --baseline publish/consume and --audit")
            }
            (_, _, true, false) => bad("--baseline insert needs --postgres URL (or --local)"),
            (_, _, false, true) if !self.audit => {
                bad("--postgres is only used by --baseline insert and --audit")
            }
            _ => Ok(()),
        }
    }

    /// The fanout baseline's bounds: sockets, messages, window, rate, and their product.
    fn validate_fanout(&self) -> Result<(), LoadgenError> {
        let bad = |what: &str| Err(LoadgenError::Args(what.to_owned()));
        if !(1..=MAX_SOCKETS).contains(&self.fanout_sockets()) {
            return bad("--baseline-sockets must be in 1..=20000");
        }
        if !(1..=MAX_FANOUT_MESSAGES).contains(&self.baseline_fanout_messages) {
            return bad("--baseline-fanout-messages must be in 1..=100000");
        }
        if !(1..=MAX_FANOUT_WINDOW).contains(&self.baseline_fanout_window) {
            return bad("--baseline-fanout-window must be in 1..=1024");
        }
        if self.baseline_fanout_rate.is_some_and(|r| !(r > 0.0 && r <= MAX_RATE)) {
            return bad("--baseline-fanout-rate must be in (0, 1000000]");
        }
        if self.fanout_sockets() * self.baseline_fanout_messages > MAX_FANOUT_DELIVERIES {
            return bad("--baseline-sockets × --baseline-fanout-messages must be at most 200000000");
        }
        Ok(())
    }

    /// Sockets of the fanout baseline: `--baseline-sockets`, else the broadcast's members.
    pub fn fanout_sockets(&self) -> usize {
        self.baseline_sockets.unwrap_or(self.members.max(2))
    }

    /// The baselines asked for, each once, in the order they run: publish, consume, fanout,
    /// insert.
    pub fn baseline_kinds(&self) -> Vec<BaselineKind> {
        let mut kinds = self.baselines.clone();
        kinds.sort_unstable();
        kinds.dedup();
        kinds
    }
}

/// A URL with the password of its user info, and any `password=` parameter, replaced by `***`.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{user_info}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => p.to_owned(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_owned(),
    };
    let scheme = if scheme.is_empty() { String::new() } else { format!("{scheme}://") };
    format!("{scheme}{authority}{tail}")
}

fn without_password<S: Serializer>(url: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    url.as_deref().map(redact).serialize(serializer)
}

#[cfg(test)]
mod tests;
