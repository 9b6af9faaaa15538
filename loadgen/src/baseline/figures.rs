//! What the baselines measured, and the scenario's figures as ratios of them (issue 14's
//! targets beside each); serialised into `--out` as the summary's `baselines`.

use crate::baseline::fanout::ledger::FanoutLedger;
use crate::baseline::ledger::Ledger;
use crate::baseline::params::{AckMode, BaselineKind};
use crate::measure::Percentiles;
use crate::proc_stats::ProcSample;
use serde::Serialize;

/// Cell send→ack throughput ÷ (a) raw publish, at ≈1,000 sends in flight: at least this.
pub const PUBLISH_TARGET: f64 = 0.40;
/// Cell send→ack throughput ÷ (b) publish + consume, at ≈1,000 sends in flight: at least this.
pub const CONSUME_TARGET: f64 = 0.60;
/// Worker persist rows/s ÷ (d) plain insert rows/s: at least this.
pub const INSERT_TARGET: f64 = 0.60;
/// Broadcast deliveries/s ÷ (c) bare fan-out deliveries/s (10,000 members): at least this…
pub const FANOUT_TARGET: f64 = 0.35;
/// …or at least this many deliveries per second.
pub const FANOUT_DELIVERIES_TARGET: f64 = 1_000_000.0;
/// Gateway RSS per idle socket at 10,000 sockets, in bytes: at most this (target 5).
pub const SOCKET_MEMORY_TARGET: f64 = 8.0 * 1024.0;

/// Cell send→ack p50 at ≈80 in flight: at most `2 × p50(a) + 1 ms`.
pub fn ack_p50_bound_ms(puback_p50_ms: f64) -> f64 {
    2.0 * puback_p50_ms + 1.0
}

/// How the baselines were run.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineSetup {
    pub kinds: Vec<BaselineKind>,
    pub messages: usize,
    pub inflight: usize,
    pub ack: AckMode,
    pub ack_batches: usize,
    /// The consume baseline's consumers kept their state in memory.
    pub consumer_memory: bool,
    pub partitions: u16,
    pub replicas: usize,
    /// Bytes of one encoded message's payload (headers not counted).
    pub payload_bytes: usize,
    /// Messages per pull batch and ack round of the consumers (the worker's `batch_max`).
    pub consume_batch: usize,
    pub insert_batch_rows: usize,
    pub insert_concurrency: usize,
}

/// A baseline's figures, or why there are none.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome<T> {
    Measured(T),
    Failed { error: String },
}

impl<T> Outcome<T> {
    pub fn measured(&self) -> Option<&T> {
        match self {
            Outcome::Measured(figures) => Some(figures),
            Outcome::Failed { .. } => None,
        }
    }
}

/// (a): publishes into the scratch stream, `inflight` awaiting their PubAck at any time.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PublishFigures {
    pub stream: String,
    /// Publishes asked for.
    pub messages: u64,
    /// Handed to the client (a permit taken, the message queued for the server).
    pub published: u64,
    pub acked: u64,
    /// Publishes refused, PubAcks that failed or timed out, or never came by the deadline.
    pub failed: u64,
    /// Why they failed, by the client's error kind.
    pub errors: std::collections::BTreeMap<String, u64>,
    /// PubAcks that said "duplicate" (the `Nats-Msg-Id` was seen before).
    pub duplicates: u64,
    /// First publish to last PubAck.
    pub elapsed_s: f64,
    pub msg_per_s: f64,
    /// From a publish leaving the client call to its PubAck.
    pub puback_ms: Percentiles,
    pub stream_deleted: bool,
}

impl PublishFigures {
    pub fn clean(&self) -> bool {
        self.acked == self.messages && self.failed == 0 && self.duplicates == 0 && self.stream_deleted
    }
}

/// (b): the publishes of (a) while a pull consumer per partition consumes and acks them.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumeFigures {
    pub publish: PublishFigures,
    pub ack: AckMode,
    /// Batches per consumer whose acks were in flight at once, at most.
    pub ack_batches: usize,
    pub consumers: usize,
    /// Pull requests the server refused (each consumer re-opens its pull, a bounded number of
    /// times).
    pub pull_errors: u64,
    /// Acks that returned an error (with `double`: not confirmed by the server).
    pub acks_failed: u64,
    pub ledger: Ledger,
    /// First publish to the last ack (confirmed, with `double`).
    pub elapsed_s: f64,
    pub consumed_per_s: f64,
    /// From a message's publish to its ack (confirmed, with `double`).
    pub latency_ms: Percentiles,
}

impl ConsumeFigures {
    pub fn clean(&self) -> bool {
        self.publish.clean() && self.acks_failed == 0 && self.ledger.clean()
    }
}

/// (d): plain `UNNEST` inserts into the scratch table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InsertFigures {
    pub table: String,
    /// Rows asked for.
    pub rows: u64,
    /// Rows in the table at the end (counted before it is dropped).
    pub inserted: u64,
    pub batches: u64,
    pub failed_batches: u64,
    /// First batch's start to last batch's commit.
    pub elapsed_s: f64,
    pub rows_per_s: f64,
    /// One batch: begin, insert, commit.
    pub batch_ms: Percentiles,
    pub table_dropped: bool,
}

impl InsertFigures {
    pub fn clean(&self) -> bool {
        self.inserted == self.rows && self.failed_batches == 0 && self.table_dropped
    }
}

/// (c): the bare broadcast server and loadgen's sockets to it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FanoutFigures {
    /// Sockets asked for.
    pub sockets: u64,
    pub connected: u64,
    pub senders: u64,
    /// Messages asked for.
    pub messages: u64,
    pub sent: u64,
    /// A sender gave up: no message's worth of deliveries came for 10 s, or its socket failed.
    pub stalled: bool,
    /// Bytes of each text frame.
    pub content_bytes: usize,
    /// Messages ahead of what reached every socket, at most.
    pub window: u64,
    /// Messages per second asked for; none: as fast as the window allows.
    pub rate: Option<f64>,
    pub ledger: FanoutLedger,
    /// Sockets that ended before the run did.
    pub sockets_closed: u64,
    /// First send to last delivery.
    pub elapsed_s: f64,
    pub deliveries_per_s: f64,
    /// From a message's send to its arrival at each socket.
    pub latency_ms: Percentiles,
    pub server: FanoutServer,
}

impl FanoutFigures {
    pub fn clean(&self) -> bool {
        self.connected == self.sockets
            && self.sent == self.messages
            && self.ledger.clean()
            && self.sockets_closed == 0
            && self.server.exited
    }
}

/// The server process, read from `/proc`.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct FanoutServer {
    pub pid: u32,
    /// Before any socket.
    pub rss_bare_kib: Option<u64>,
    /// With every socket open and idle.
    pub rss_idle_kib: Option<u64>,
    /// At the end of the load, the sockets still open.
    pub rss_loaded_kib: Option<u64>,
    /// `(idle − bare) ÷ sockets`.
    pub bytes_per_idle_socket: Option<f64>,
    /// CPU seconds (user + system) from the idle reading to the end of the load.
    pub cpu_s: Option<f64>,
    /// Gone after the run: ended (or killed) and reaped.
    pub exited: bool,
}

impl FanoutServer {
    pub fn new(bare: ProcSample, idle: ProcSample, loaded: ProcSample, sockets: u64) -> Self {
        let grown = idle.rss_kib.zip(bare.rss_kib).map(|(i, b)| i.saturating_sub(b) as f64 * 1024.0);
        Self {
            pid: bare.pid,
            rss_bare_kib: bare.rss_kib,
            rss_idle_kib: idle.rss_kib,
            rss_loaded_kib: loaded.rss_kib,
            bytes_per_idle_socket: grown.filter(|_| sockets > 0).map(|g| g / sockets as f64),
            cpu_s: loaded.cpu_seconds.zip(idle.cpu_seconds).map(|(l, i)| l - i),
            exited: false,
        }
    }
}

/// What the local cell's workers did during the scenario, from their `/metrics`.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct WorkerPersist {
    /// Messages stored for the first time.
    pub persisted: u64,
    /// Persist transactions.
    pub batches: u64,
    /// Seconds spent in persist transactions, over all partitions.
    pub persist_s: f64,
    /// `persisted ÷ persist_s`: rows per second of one partition loop while it persists.
    pub rows_per_persist_s: f64,
    pub mean_batch: f64,
}

/// The workers' counters at one reading of a `--backlog` drain.
#[derive(Debug, Clone, Copy)]
pub struct DrainReading {
    pub at: tokio::time::Instant,
    /// Rows stored for the first time, summed over the workers.
    pub persisted: u64,
    /// Persist transactions, summed over the workers.
    pub batches: u64,
}

/// A `--backlog` drain: the workers started on a stream full of acked sends.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct DrainFigures {
    /// Messages in the stream when the drain ended.
    pub backlog: u64,
    pub persisted: u64,
    pub batches: u64,
    pub mean_batch: f64,
    /// From starting the workers to their first persisted row (process start, connecting,
    /// the first pull).
    pub first_row_s: f64,
    /// From starting the workers to the last row.
    pub total_s: f64,
    /// Rows per second from the first reading with a row persisted to the last (0 when
    /// the drain ended within one reading).
    pub rows_per_s: f64,
}

impl DrainFigures {
    pub fn new(backlog: u64, started: tokio::time::Instant, first: DrainReading, last: DrainReading) -> Self {
        let timed = last.at.duration_since(first.at).as_secs_f64();
        let rows = last.persisted.saturating_sub(first.persisted);
        Self {
            backlog,
            persisted: last.persisted,
            batches: last.batches,
            mean_batch: if last.batches > 0 { last.persisted as f64 / last.batches as f64 } else { 0.0 },
            first_row_s: first.at.duration_since(started).as_secs_f64(),
            total_s: last.at.duration_since(started).as_secs_f64(),
            rows_per_s: if timed > 0.0 && rows > 0 { rows as f64 / timed } else { 0.0 },
        }
    }
}

/// The scenario's figures the ratios need.
#[derive(Debug, Clone, Copy)]
pub struct ScenarioFigures {
    pub acked_per_s: f64,
    pub ack_p50_ms: f64,
    pub ack_mean_ms: f64,
    pub delivered_per_s: f64,
    /// The scenario was `broadcast`: its deliveries/s compare with (c).
    pub broadcast: bool,
    /// The gateways' RSS growth over their sockets' connection, per socket (local cell).
    pub gateway_bytes_per_socket: Option<f64>,
}

/// The scenario as ratios of the baselines (none where either side is missing).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Ratios {
    /// Scenario acked/s ÷ (a) msg/s.
    pub acked_vs_publish: Option<f64>,
    /// Scenario acked/s ÷ (b) consumed msg/s.
    pub acked_vs_consume: Option<f64>,
    pub ack_p50_ms: Option<f64>,
    /// `2 × (a) PubAck p50 + 1 ms`.
    pub ack_p50_bound_ms: Option<f64>,
    /// Worker rows per persist-second ÷ (d) rows/s.
    pub worker_vs_insert: Option<f64>,
    /// `--backlog`: the drain's rows/s ÷ (d) rows/s.
    pub drain_vs_insert: Option<f64>,
    /// Sends in flight during the scenario (Little's law: acked/s × mean send→ack).
    pub scenario_in_flight: Option<f64>,
    /// Broadcast deliveries/s ÷ (c) deliveries/s.
    pub delivered_vs_fanout: Option<f64>,
    pub delivered_per_s: Option<f64>,
    /// Gateway RSS per socket (the scenario's, at connection) ÷ (c)'s per idle socket.
    pub socket_memory_vs_fanout: Option<f64>,
    pub gateway_bytes_per_socket: Option<f64>,
}

/// Every baseline asked for, each measured or failed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Baselines {
    /// None when no baseline was asked for.
    pub setup: Option<BaselineSetup>,
    pub publish: Option<Outcome<PublishFigures>>,
    pub consume: Option<Outcome<ConsumeFigures>>,
    pub fanout: Option<Outcome<FanoutFigures>>,
    pub insert: Option<Outcome<InsertFigures>>,
    /// With `--local` only.
    pub worker: Option<WorkerPersist>,
    /// With `--local --backlog` only.
    pub drain: Option<DrainFigures>,
    pub ratios: Ratios,
}

impl Baselines {
    /// Whether a baseline asked for could not be measured.
    pub fn failed(&self) -> bool {
        matches!(self.publish, Some(Outcome::Failed { .. }))
            || matches!(self.consume, Some(Outcome::Failed { .. }))
            || matches!(self.fanout, Some(Outcome::Failed { .. }))
            || matches!(self.insert, Some(Outcome::Failed { .. }))
    }

    /// Every measured baseline acked, consumed and inserted everything exactly once, and
    /// removed its scratch object.
    pub fn clean(&self) -> bool {
        let publish = self.publish.as_ref().and_then(Outcome::measured).is_none_or(PublishFigures::clean);
        let consume = self.consume.as_ref().and_then(Outcome::measured).is_none_or(ConsumeFigures::clean);
        let fanout = self.fanout.as_ref().and_then(Outcome::measured).is_none_or(FanoutFigures::clean);
        let insert = self.insert.as_ref().and_then(Outcome::measured).is_none_or(InsertFigures::clean);
        publish && consume && fanout && insert
    }

    /// Sets the ratios of `scenario` (none when no scenario ran) to what was measured.
    pub fn relate(&mut self, scenario: Option<ScenarioFigures>) {
        let publish = self.publish.as_ref().and_then(Outcome::measured);
        let consume = self.consume.as_ref().and_then(Outcome::measured);
        let insert = self.insert.as_ref().and_then(Outcome::measured);
        let ratio = |a: f64, b: f64| (b > 0.0).then(|| a / b);
        self.ratios = Ratios {
            worker_vs_insert: self
                .worker
                .zip(insert)
                .and_then(|(w, d)| ratio(w.rows_per_persist_s, d.rows_per_s)),
            drain_vs_insert: self.drain.zip(insert).and_then(|(w, d)| ratio(w.rows_per_s, d.rows_per_s)),
            ..Ratios::default()
        };
        let Some(s) = scenario else { return };
        self.ratios.acked_vs_publish = publish.and_then(|a| ratio(s.acked_per_s, a.msg_per_s));
        self.ratios.acked_vs_consume = consume.and_then(|b| ratio(s.acked_per_s, b.consumed_per_s));
        self.ratios.ack_p50_ms = Some(s.ack_p50_ms);
        self.ratios.ack_p50_bound_ms = publish.map(|a| ack_p50_bound_ms(a.puback_ms.p50));
        self.ratios.scenario_in_flight = Some(s.acked_per_s * s.ack_mean_ms / 1000.0);
        let fanout = self.fanout.as_ref().and_then(Outcome::measured);
        if s.broadcast {
            self.ratios.delivered_per_s = Some(s.delivered_per_s);
            self.ratios.delivered_vs_fanout =
                fanout.and_then(|c| ratio(s.delivered_per_s, c.deliveries_per_s));
        }
        self.ratios.gateway_bytes_per_socket = s.gateway_bytes_per_socket;
        self.ratios.socket_memory_vs_fanout = s
            .gateway_bytes_per_socket
            .zip(fanout.and_then(|c| c.server.bytes_per_idle_socket))
            .and_then(|(g, c)| ratio(g, c));
    }
}

#[cfg(test)]
mod tests {
    fn reading(started: tokio::time::Instant, ms: u64, persisted: u64, batches: u64) -> DrainReading {
        DrainReading { at: started + std::time::Duration::from_millis(ms), persisted, batches }
    }

    #[test]
    fn a_drain_is_timed_from_the_first_row_to_the_last() {
        let started = tokio::time::Instant::now();
        let figures = DrainFigures::new(
            21_000,
            started,
            reading(started, 500, 1_000, 1),
            reading(started, 2_500, 21_000, 21),
        );
        assert_eq!((figures.backlog, figures.persisted, figures.batches), (21_000, 21_000, 21));
        assert!((figures.rows_per_s - 10_000.0).abs() < 1e-6, "{figures:?}");
        assert!((figures.mean_batch - 1_000.0).abs() < 1e-6, "{figures:?}");
        assert!((figures.first_row_s - 0.5).abs() < 1e-6, "{figures:?}");
        assert!((figures.total_s - 2.5).abs() < 1e-6, "{figures:?}");
    }

    #[test]
    fn a_drain_done_within_one_reading_has_no_rate() {
        let started = tokio::time::Instant::now();
        let at = reading(started, 300, 500, 2);
        let figures = DrainFigures::new(500, started, at, at);
        assert_eq!(figures.rows_per_s, 0.0);
        assert!((figures.total_s - 0.3).abs() < 1e-6, "{figures:?}");
    }

    #[test]
    fn the_drain_is_related_to_the_insert_baseline() {
        let mut baselines = Baselines {
            drain: Some(DrainFigures { rows_per_s: 30_000.0, ..DrainFigures::default() }),
            insert: Some(Outcome::Measured(InsertFigures {
                rows_per_s: 60_000.0,
                ..InsertFigures::default()
            })),
            ..Baselines::default()
        };
        baselines.relate(None);
        assert_eq!(baselines.ratios.drain_vs_insert, Some(0.5));
    }

    use super::*;

    fn publish(msg_per_s: f64, p50: f64) -> Outcome<PublishFigures> {
        let puback_ms = Percentiles { p50, ..Default::default() };
        Outcome::Measured(PublishFigures { msg_per_s, puback_ms, ..Default::default() })
    }

    #[test]
    fn ratios_of_what_ran_only() {
        let mut baselines = Baselines { publish: Some(publish(10_000.0, 2.0)), ..Default::default() };
        let scenario = ScenarioFigures {
            acked_per_s: 4_000.0,
            ack_p50_ms: 4.5,
            ack_mean_ms: 250.0,
            delivered_per_s: 8_000.0,
            broadcast: false,
            gateway_bytes_per_socket: None,
        };
        baselines.relate(Some(scenario));
        let r = baselines.ratios;
        assert_eq!(r.acked_vs_publish, Some(0.4));
        assert_eq!(r.acked_vs_consume, None);
        assert_eq!(r.ack_p50_bound_ms, Some(5.0));
        assert_eq!(r.scenario_in_flight, Some(1_000.0));
        assert_eq!(r.worker_vs_insert, None);
        assert_eq!(r.delivered_vs_fanout, None);
    }

    #[test]
    fn broadcast_deliveries_and_socket_memory_against_the_bare_fanout() {
        let server = FanoutServer { bytes_per_idle_socket: Some(8_000.0), ..Default::default() };
        let fanout = FanoutFigures { deliveries_per_s: 400_000.0, server, ..Default::default() };
        let mut baselines = Baselines { fanout: Some(Outcome::Measured(fanout)), ..Default::default() };
        let scenario = ScenarioFigures {
            acked_per_s: 10.0,
            ack_p50_ms: 1.0,
            ack_mean_ms: 1.0,
            delivered_per_s: 100_000.0,
            broadcast: true,
            gateway_bytes_per_socket: Some(16_000.0),
        };
        baselines.relate(Some(scenario));
        assert_eq!(baselines.ratios.delivered_vs_fanout, Some(0.25));
        assert_eq!(baselines.ratios.socket_memory_vs_fanout, Some(2.0));
        baselines.relate(Some(ScenarioFigures { broadcast: false, ..scenario }));
        assert_eq!(baselines.ratios.delivered_vs_fanout, None, "only broadcast compares with (c)");
    }

    #[test]
    fn the_server_per_socket_is_its_growth_over_the_sockets() {
        let at = |rss_kib, cpu| ProcSample { pid: 7, rss_kib: Some(rss_kib), cpu_seconds: Some(cpu) };
        let server = FanoutServer::new(at(2_000, 0.1), at(3_000, 0.2), at(5_000, 1.7), 128);
        assert_eq!(server.bytes_per_idle_socket, Some(8_000.0));
        assert_eq!(server.cpu_s, Some(1.5));
        assert!(!server.exited && !FanoutFigures { server, ..Default::default() }.clean());
    }

    #[test]
    fn no_scenario_no_ratios_and_a_failure_is_not_clean_but_failed() {
        let mut baselines = Baselines {
            publish: Some(publish(10_000.0, 2.0)),
            insert: Some(Outcome::Failed { error: "no messages table".into() }),
            ..Default::default()
        };
        baselines.relate(None);
        assert_eq!(baselines.ratios, Ratios::default());
        assert!(baselines.failed());
        // The publish above asked for 0 and got 0, but its stream was not deleted.
        assert!(!baselines.clean());
    }
}
