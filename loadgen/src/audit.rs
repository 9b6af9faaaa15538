//! The audit (`--audit`): after a run, the cell's own stores are judged for the run's
//! channels, beside the sockets' verdict ([`crate::check`]), which sees only deliveries.
//! Once the workers have caught up (Postgres holds as many of the channels' messages as the
//! message stream, or `--audit-wait` has passed), it counts:
//! - acked sends with no row in `messages` (lost after their ack), and rows stored twice;
//! - per channel, the `seq`s of `1..=last_seq` taken by no message and no change (holes),
//!   and `seq`s taken twice or past `last_seq` (reused);
//! - the channels' messages in the stream against their rows in Postgres (a message the
//!   stream took and no worker stored; the cell's stream de-duplicates a resend within its
//!   duplicate window, 2 min, so a resend later than that shows here too, and the worker's
//!   own de-duplication keeps it from being stored twice).
//!
//! The game day's checker runs it against the cluster's Postgres and NATS
//! (`chaos/game-day/workflow.yaml`); with `--local`, against the local cell's.

use crate::record::send_key;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use shared::ids::ChannelId;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// Where the cell keeps what it stored.
#[derive(Debug, Clone)]
pub struct Stores {
    pub postgres: String,
    pub nats: Vec<String>,
    /// The cell's `nats.subject_prefix`: a channel's messages are on
    /// `<prefix>.msg.<partition>.<channel_id>`.
    pub subject_prefix: String,
    /// The cell's message stream (`nats.stream`).
    pub stream: String,
    /// How long to wait for the workers to store what the stream holds.
    pub wait: Duration,
}

/// What the audit found.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Audit {
    pub channels: usize,
    /// Acked sends of the run (each once, whatever its resends).
    pub acked: u64,
    /// Rows in `messages` for the run's channels.
    pub stored: u64,
    /// Messages in the stream on the run's channels' subjects.
    pub in_stream: u64,
    /// Acked sends with no row.
    pub acked_not_stored: u64,
    /// Rows beyond the first of one send (sender and client id).
    pub stored_twice: u64,
    /// `seq`s of `1..=last_seq` taken by no message and no change.
    pub seq_holes: u64,
    /// `seq`s taken twice (by messages or changes), or past the channel's `last_seq`.
    pub seq_reused: u64,
    /// Seconds waited for Postgres to hold what the stream holds.
    pub waited_s: f64,
}

impl Audit {
    pub fn clean(&self) -> bool {
        self.acked_not_stored == 0
            && self.stored_twice == 0
            && self.seq_holes == 0
            && self.seq_reused == 0
            && self.stored == self.in_stream
    }
}

/// Each channel's acked sends (their [`send_key`]s), as
/// [`crate::record::acked_by_channel`] gathers them from the sockets' records.
pub type Acked = HashMap<ChannelId, HashSet<i64>>;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("Postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("NATS: {0}")]
    Nats(String),
}

/// What the stores hold for the run's channels, read once.
#[derive(Debug, Default)]
pub struct Reading {
    /// Each row of `messages`: its channel, `seq` and client id.
    pub messages: Vec<(ChannelId, i64, String)>,
    /// Each change that took a `seq`: its channel and `seq`.
    pub changes: Vec<(ChannelId, i64)>,
    pub last_seqs: HashMap<ChannelId, i64>,
    pub in_stream: HashMap<ChannelId, u64>,
}

impl Reading {
    /// Whether Postgres holds as many of each channel's messages as the stream.
    fn caught_up(&self) -> bool {
        let mut stored: HashMap<ChannelId, u64> = HashMap::new();
        for (channel, _, _) in &self.messages {
            *stored.entry(*channel).or_default() += 1;
        }
        self.in_stream.iter().all(|(channel, n)| stored.get(channel).copied().unwrap_or(0) == *n)
    }
}

/// Reads the stores until the workers have caught up (or `stores.wait` has passed), then
/// judges what they hold.
pub async fn audit(stores: &Stores, acked: &Acked) -> Result<Audit, AuditError> {
    let db = sqlx::PgPool::connect(&stores.postgres).await?;
    let client =
        async_nats::connect(stores.nats.clone()).await.map_err(|e| AuditError::Nats(e.to_string()))?;
    let js = async_nats::jetstream::new(client);
    let channels: Vec<ChannelId> = acked.keys().copied().collect();
    let started = Instant::now();
    loop {
        // The stream first: what a worker stores after this reading only makes Postgres fuller.
        let in_stream = in_stream(&js, stores, &channels).await?;
        let reading = read_postgres(&db, &channels, in_stream).await?;
        if reading.caught_up() || started.elapsed() >= stores.wait {
            db.close().await;
            return Ok(Audit { waited_s: started.elapsed().as_secs_f64(), ..judge(acked, &reading) });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The channels' rows, changes and `last_seq`s.
async fn read_postgres(
    db: &sqlx::PgPool,
    channels: &[ChannelId],
    in_stream: HashMap<ChannelId, u64>,
) -> Result<Reading, sqlx::Error> {
    let ids: Vec<Uuid> = channels.iter().map(|c| c.0).collect();
    let messages =
        sqlx::query_as("SELECT channel_id, seq, client_msg_id FROM messages WHERE channel_id = ANY($1)")
            .bind(&ids)
            .fetch_all(db)
            .await?;
    let changes = sqlx::query_as(
        "SELECT channel_id, seq FROM channel_events WHERE channel_id = ANY($1) AND seq IS NOT NULL",
    )
    .bind(&ids)
    .fetch_all(db)
    .await?;
    let last_seqs: Vec<(ChannelId, i64)> =
        sqlx::query_as("SELECT id, last_seq FROM channels WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(db)
            .await?;
    Ok(Reading { messages, changes, last_seqs: last_seqs.into_iter().collect(), in_stream })
}

/// Each channel's message count in the stream (by its subject, over every partition).
async fn in_stream(
    js: &async_nats::jetstream::Context,
    stores: &Stores,
    channels: &[ChannelId],
) -> Result<HashMap<ChannelId, u64>, AuditError> {
    let nats = |e: &dyn std::fmt::Display| AuditError::Nats(e.to_string());
    let stream = js.get_stream(&stores.stream).await.map_err(|e| nats(&e))?;
    futures::stream::iter(channels)
        .map(|channel| {
            let stream = &stream;
            async move {
                let filter = format!("{}.msg.*.{channel}", stores.subject_prefix);
                let subjects = stream.info_with_subjects(filter).await.map_err(|e| nats(&e))?;
                let counts: Vec<(String, usize)> = subjects.try_collect().await.map_err(|e| nats(&e))?;
                Ok((*channel, counts.iter().map(|(_, n)| *n as u64).sum()))
            }
        })
        .buffer_unordered(16)
        .try_collect()
        .await
}

/// Judges a reading against the acked sends.
pub fn judge(acked: &Acked, reading: &Reading) -> Audit {
    let mut audit = Audit {
        channels: acked.len(),
        acked: acked.values().map(|keys| keys.len() as u64).sum(),
        stored: reading.messages.len() as u64,
        in_stream: reading.in_stream.values().sum(),
        ..Audit::default()
    };
    let mut rows: HashMap<(ChannelId, &str), u64> = HashMap::new();
    let mut seqs: BTreeMap<ChannelId, Vec<i64>> = BTreeMap::new();
    for (channel, seq, client_id) in &reading.messages {
        *rows.entry((*channel, client_id.as_str())).or_default() += 1;
        seqs.entry(*channel).or_default().push(*seq);
    }
    for (channel, seq) in &reading.changes {
        seqs.entry(*channel).or_default().push(*seq);
    }
    audit.stored_twice = rows.values().map(|n| n - 1).sum();
    let stored_keys: HashSet<(ChannelId, i64)> =
        rows.keys().filter_map(|(channel, id)| Some((*channel, send_key(id)?))).collect();
    for (channel, keys) in acked {
        audit.acked_not_stored +=
            keys.iter().filter(|k| !stored_keys.contains(&(*channel, **k))).count() as u64;
    }
    for channel in acked.keys() {
        let last = reading.last_seqs.get(channel).copied().unwrap_or(0);
        let taken = seqs.get(channel).map(Vec::as_slice).unwrap_or_default();
        let distinct: HashSet<i64> = taken.iter().copied().filter(|s| (1..=last).contains(s)).collect();
        audit.seq_holes += (last as u64).saturating_sub(distinct.len() as u64);
        audit.seq_reused += (taken.len() - distinct.len()) as u64;
    }
    audit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(n: u128) -> ChannelId {
        ChannelId(Uuid::from_u128(n))
    }

    /// Channel 1: sends s0-0 and s1-0 acked and stored at seqs 1 and 3, a change at seq 2.
    fn clean() -> (Acked, Reading) {
        let acked = Acked::from([(channel(1), HashSet::from([0, 1 << 32]))]);
        let reading = Reading {
            messages: vec![(channel(1), 1, "s0-0".into()), (channel(1), 3, "s1-0".into())],
            changes: vec![(channel(1), 2)],
            last_seqs: HashMap::from([(channel(1), 3)]),
            in_stream: HashMap::from([(channel(1), 2)]),
        };
        (acked, reading)
    }

    #[test]
    fn a_clean_store_is_clean() {
        let (acked, reading) = clean();
        let audit = judge(&acked, &reading);
        assert!(audit.clean(), "{audit:?}");
        assert_eq!((audit.channels, audit.acked, audit.stored, audit.in_stream), (1, 2, 2, 2));
        assert!(reading.caught_up());
    }

    #[test]
    fn a_lost_row_is_a_lost_ack_a_hole_and_a_stream_message_not_stored() {
        let (acked, mut reading) = clean();
        reading.messages.pop();
        let audit = judge(&acked, &reading);
        assert_eq!((audit.acked_not_stored, audit.seq_holes, audit.stored, audit.in_stream), (1, 1, 1, 2));
        assert!(!audit.clean() && !reading.caught_up());
    }

    #[test]
    fn rows_stored_twice_and_seqs_taken_twice_are_counted() {
        let (acked, mut reading) = clean();
        reading.messages.push((channel(1), 2, "s1-0".into()));
        reading.messages.push((channel(1), 4, "s1-1".into()));
        let audit = judge(&acked, &reading);
        // s1-0 twice; seq 2 by a message and a change; seq 4 past last_seq 3.
        assert_eq!((audit.stored_twice, audit.seq_reused, audit.seq_holes), (1, 2, 0));
        assert!(!audit.clean());
    }

    #[test]
    fn a_send_stored_in_another_channel_is_not_stored() {
        let (acked, mut reading) = clean();
        reading.messages[1].0 = channel(2);
        let audit = judge(&acked, &reading);
        assert_eq!((audit.acked_not_stored, audit.seq_holes), (1, 1));
    }
}
