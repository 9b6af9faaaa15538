//! What the baselines measured, and the scenario's figures as ratios of them (issue 14's
//! targets beside each); serialised into `--out` as the summary's `baselines`.

use crate::baseline::ledger::Ledger;
use crate::baseline::params::{AckMode, BaselineKind};
use crate::measure::Percentiles;
use serde::Serialize;

/// Cell send→ack throughput ÷ (a) raw publish, at ≈1,000 sends in flight: at least this.
pub const PUBLISH_TARGET: f64 = 0.40;
/// Cell send→ack throughput ÷ (b) publish + consume, at ≈1,000 sends in flight: at least this.
pub const CONSUME_TARGET: f64 = 0.60;
/// Worker persist rows/s ÷ (d) plain insert rows/s: at least this.
pub const INSERT_TARGET: f64 = 0.60;

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

/// The scenario's figures the ratios need.
#[derive(Debug, Clone, Copy)]
pub struct ScenarioFigures {
    pub acked_per_s: f64,
    pub ack_p50_ms: f64,
    pub ack_mean_ms: f64,
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
    /// Sends in flight during the scenario (Little's law: acked/s × mean send→ack).
    pub scenario_in_flight: Option<f64>,
}

/// Every baseline asked for, each measured or failed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Baselines {
    /// None when no baseline was asked for.
    pub setup: Option<BaselineSetup>,
    pub publish: Option<Outcome<PublishFigures>>,
    pub consume: Option<Outcome<ConsumeFigures>>,
    pub insert: Option<Outcome<InsertFigures>>,
    /// With `--local` only.
    pub worker: Option<WorkerPersist>,
    pub ratios: Ratios,
}

impl Baselines {
    /// Whether a baseline asked for could not be measured.
    pub fn failed(&self) -> bool {
        matches!(self.publish, Some(Outcome::Failed { .. }))
            || matches!(self.consume, Some(Outcome::Failed { .. }))
            || matches!(self.insert, Some(Outcome::Failed { .. }))
    }

    /// Every measured baseline acked, consumed and inserted everything exactly once, and
    /// removed its scratch object.
    pub fn clean(&self) -> bool {
        let publish = self.publish.as_ref().and_then(Outcome::measured).is_none_or(PublishFigures::clean);
        let consume = self.consume.as_ref().and_then(Outcome::measured).is_none_or(ConsumeFigures::clean);
        let insert = self.insert.as_ref().and_then(Outcome::measured).is_none_or(InsertFigures::clean);
        publish && consume && insert
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
            ..Ratios::default()
        };
        let Some(s) = scenario else { return };
        self.ratios.acked_vs_publish = publish.and_then(|a| ratio(s.acked_per_s, a.msg_per_s));
        self.ratios.acked_vs_consume = consume.and_then(|b| ratio(s.acked_per_s, b.consumed_per_s));
        self.ratios.ack_p50_ms = Some(s.ack_p50_ms);
        self.ratios.ack_p50_bound_ms = publish.map(|a| ack_p50_bound_ms(a.puback_ms.p50));
        self.ratios.scenario_in_flight = Some(s.acked_per_s * s.ack_mean_ms / 1000.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(msg_per_s: f64, p50: f64) -> Outcome<PublishFigures> {
        let puback_ms = Percentiles { p50, ..Default::default() };
        Outcome::Measured(PublishFigures { msg_per_s, puback_ms, ..Default::default() })
    }

    #[test]
    fn ratios_of_what_ran_only() {
        let mut baselines = Baselines { publish: Some(publish(10_000.0, 2.0)), ..Default::default() };
        let scenario = ScenarioFigures { acked_per_s: 4_000.0, ack_p50_ms: 4.5, ack_mean_ms: 250.0 };
        baselines.relate(Some(scenario));
        let r = baselines.ratios;
        assert_eq!(r.acked_vs_publish, Some(0.4));
        assert_eq!(r.acked_vs_consume, None);
        assert_eq!(r.ack_p50_bound_ms, Some(5.0));
        assert_eq!(r.scenario_in_flight, Some(1_000.0));
        assert_eq!(r.worker_vs_insert, None);
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
