//! The worker's metrics (names in `docs/metrics.md`): consumer lag per partition, redeliveries,
//! persist batches, and dead letters by reason. Partition is the only per-worker label, and
//! it is bounded by the partition count.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use shared::admin::{latency_buckets, size_buckets};
use shared::subjects::Partition;

#[derive(Clone)]
pub struct WorkerMetrics {
    pending: Family<PartitionLabels, Gauge>,
    ack_pending: Family<PartitionLabels, Gauge>,
    pub redeliveries: Counter,
    pub persist_batch_size: Histogram,
    pub persist_seconds: Histogram,
    pub persisted: Counter,
    dead_lettered: Family<ReasonLabels, Counter>,
    changes: Family<ChangeLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Why a message went to the dead-letter stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// Its payload is not a message a gateway publishes.
    Undecodable,
    /// Postgres refused it for what it contains (a data or constraint error), alone in its
    /// own transaction.
    Rejected,
    /// The server delivered it `max_deliver` times without an ack.
    MaxDeliver,
}

impl DeadLetterReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Undecodable => "undecodable",
            Self::Rejected => "rejected",
            Self::MaxDeliver => "max_deliver",
        }
    }
}

impl WorkerMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            pending: Family::default(),
            ack_pending: Family::default(),
            redeliveries: Counter::default(),
            persist_batch_size: Histogram::new(size_buckets()),
            persist_seconds: Histogram::new(latency_buckets()),
            persisted: Counter::default(),
            dead_lettered: Family::default(),
            changes: Family::default(),
        };
        registry.register(
            "chat_worker_consumer_pending_messages",
            "Messages of the partition not yet delivered to a worker",
            metrics.pending.clone(),
        );
        registry.register(
            "chat_worker_consumer_ack_pending_messages",
            "Messages of the partition delivered but not yet acknowledged",
            metrics.ack_pending.clone(),
        );
        registry.register(
            "chat_worker_redeliveries",
            "Messages this worker received more than once",
            metrics.redeliveries.clone(),
        );
        registry.register(
            "chat_worker_persist_batch_size",
            "Messages per persist transaction",
            metrics.persist_batch_size.clone(),
        );
        registry.register_with_unit(
            "chat_worker_persist",
            "Time to persist one batch (one transaction)",
            Unit::Seconds,
            metrics.persist_seconds.clone(),
        );
        registry.register(
            "chat_worker_messages_persisted",
            "Messages this worker stored for the first time",
            metrics.persisted.clone(),
        );
        registry.register(
            "chat_worker_dead_lettered",
            "Messages put in the dead-letter stream, by reason",
            metrics.dead_lettered.clone(),
        );
        registry.register(
            "chat_worker_changes",
            "Edits, deletes and reactions handled, by kind and outcome (applied, or why ignored)",
            metrics.changes.clone(),
        );
        for kind in ["edit", "delete", "reaction_add", "reaction_remove"] {
            let _ = metrics.changes.get_or_create(&ChangeLabels { kind, outcome: "applied" });
        }
        // Every reason from 0, so an alert on any increase sees the first one.
        for reason in
            [DeadLetterReason::Undecodable, DeadLetterReason::Rejected, DeadLetterReason::MaxDeliver]
        {
            let _ = metrics.dead_lettered.get_or_create(&ReasonLabels { reason: reason.as_str() });
        }
        metrics
    }

    pub fn set_lag(&self, partition: Partition, pending: u64, ack_pending: usize) {
        let labels = PartitionLabels { partition: partition.0.to_string() };
        self.pending.get_or_create(&labels).set(pending as i64);
        self.ack_pending.get_or_create(&labels).set(ack_pending as i64);
    }

    /// One change handled: `applied` (first time), or the reason it changed nothing.
    pub fn change(&self, kind: &'static str, outcome: &'static str) {
        self.changes.get_or_create(&ChangeLabels { kind, outcome }).inc();
    }

    pub fn dead_lettered(&self, reason: DeadLetterReason) {
        self.dead_lettered.get_or_create(&ReasonLabels { reason: reason.as_str() }).inc();
    }
}
