//! (d) Plain insert: the baseline's messages stored in 1,000-row batches into a scratch copy of
//! the `messages` table (`LIKE messages INCLUDING ALL`: its columns, defaults, generated search
//! column, unique keys and indexes; no foreign keys, no trigger), one `INSERT … SELECT FROM
//! unnest(…)` per batch in a transaction of its own, binding the column types the worker
//! binds. One loop at a time by default, as the worker has one loop per partition. What the
//! worker does beyond this (channel locks, the duplicate check, `seq` numbering, read
//! positions) is what the ratio of the two shows.

use crate::baseline::error::BaselineError;
use crate::baseline::figures::InsertFigures;
use crate::baseline::params::BaselineParams;
use crate::baseline::payload::Traffic;
use crate::measure::Latency;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Rows per batch (the issue's figure; the worker's batches are at most its `batch_max`).
pub const BATCH_ROWS: usize = 1_000;
/// How long a connection may take to be opened or handed out.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

const INSERT: &str = r#"
INSERT INTO {table} (message_id, channel_id, seq, ordinal, sender_id, client_msg_id, content,
                     content_type, reply_to, created_at, mentions, mentions_channel, attachments)
SELECT message_id, channel_id, seq, seq, sender_id, client_msg_id, content, content_type, reply_to,
       created_at, coalesce(string_to_array(nullif(mentions, ''), ',')::uuid[], '{}'),
       mentions_channel, nullif(attachments, '')::jsonb
FROM unnest($1::bigint[], $2::uuid[], $3::bigint[], $4::uuid[], $5::text[], $6::text[], $7::text[],
            $8::bigint[], $9::timestamptz[], $10::text[], $11::bool[], $12::text[])
    AS u(message_id, channel_id, seq, sender_id, client_msg_id, content, content_type, reply_to,
         created_at, mentions, mentions_channel, attachments)
"#;

/// A statement naming the scratch table. Audited: the table name is its only dynamic part,
/// and [`table_name`] lets through plain lowercase identifiers only.
fn naming_table(table: &str, statement: &str) -> AssertSqlSafe<String> {
    AssertSqlSafe(statement.replace("{table}", table))
}

/// The scratch table's name: `loadgen_baseline_<run id>`, refused unless a plain identifier.
pub fn table_name(run_id: &str) -> Result<String, BaselineError> {
    let name = format!("loadgen_baseline_{run_id}").to_lowercase();
    let plain = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain && name.len() <= 63 { Ok(name) } else { Err(BaselineError::Name(name)) }
}

/// Runs baseline (d) on the Postgres at `url`.
pub async fn measure(
    url: &str,
    params: &BaselineParams,
    deadline: Instant,
    stop: &CancellationToken,
) -> Result<InsertFigures, BaselineError> {
    let table = table_name(&params.run_id)?;
    let pool = PgPoolOptions::new()
        .max_connections(params.insert_concurrency as u32)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect(url)
        .await?;
    let created = sqlx::query(naming_table(&table, "CREATE TABLE {table} (LIKE messages INCLUDING ALL)"))
        .execute(&pool)
        .await;
    let figures = match created {
        Ok(_) => insert_all(&pool, &table, params, deadline, stop).await,
        Err(error) => Err(error.into()),
    };
    let _ = sqlx::query(naming_table(&table, "DROP TABLE IF EXISTS {table}")).execute(&pool).await;
    let gone: Result<bool, sqlx::Error> =
        sqlx::query_scalar("SELECT to_regclass($1) IS NULL").bind(&table).fetch_one(&pool).await;
    pool.close().await;
    let mut figures = figures?;
    figures.table_dropped = gone?;
    Ok(figures)
}

/// Inserts every batch with `insert_concurrency` loops, then counts the table's rows.
async fn insert_all(
    pool: &PgPool,
    table: &str,
    params: &BaselineParams,
    deadline: Instant,
    stop: &CancellationToken,
) -> Result<InsertFigures, BaselineError> {
    let traffic = Arc::new(Traffic::new("lgb", params.partitions, params.content_bytes)?);
    let batches = params.messages.div_ceil(BATCH_ROWS);
    let next = Arc::new(AtomicUsize::new(0));
    let statement: Arc<str> = naming_table(table, INSERT).0.into();
    let started = Instant::now();
    let mut loops = JoinSet::new();
    for _ in 0..params.insert_concurrency {
        let batch_loop = BatchLoop {
            pool: pool.clone(),
            statement: statement.clone(),
            traffic: traffic.clone(),
            next: next.clone(),
            batches,
            rows: params.messages,
        };
        loops.spawn(batch_loop.run(deadline, stop.clone()));
    }
    let mut tally = LoopTally::default();
    while let Some(joined) = loops.join_next().await {
        tally.merge(joined.unwrap_or_default());
    }
    let inserted: i64 =
        sqlx::query_scalar(naming_table(table, "SELECT count(*) FROM {table}")).fetch_one(pool).await?;
    let elapsed_s = tally.last.map_or(0.0, |last| last.duration_since(started).as_secs_f64());
    Ok(InsertFigures {
        table: table.to_owned(),
        rows: params.messages as u64,
        inserted: inserted as u64,
        batches: tally.batches,
        failed_batches: tally.failed + (batches as u64).saturating_sub(tally.batches + tally.failed),
        elapsed_s,
        rows_per_s: if elapsed_s > 0.0 { tally.rows as f64 / elapsed_s } else { 0.0 },
        batch_ms: tally.latency.percentiles(),
        table_dropped: false,
    })
}

/// What one insert loop did.
#[derive(Debug, Default)]
struct LoopTally {
    batches: u64,
    failed: u64,
    rows: u64,
    latency: Latency,
    last: Option<Instant>,
}

impl LoopTally {
    fn merge(&mut self, other: LoopTally) {
        self.batches += other.batches;
        self.failed += other.failed;
        self.rows += other.rows;
        self.latency.merge(&other.latency);
        self.last = self.last.max(other.last);
    }
}

/// One insert loop: takes the next batch number until none is left.
struct BatchLoop {
    pool: PgPool,
    statement: Arc<str>,
    traffic: Arc<Traffic>,
    next: Arc<AtomicUsize>,
    batches: usize,
    rows: usize,
}

impl BatchLoop {
    async fn run(self, deadline: Instant, stop: CancellationToken) -> LoopTally {
        let mut tally = LoopTally::default();
        while Instant::now() < deadline && !stop.is_cancelled() {
            let batch = self.next.fetch_add(1, Ordering::Relaxed);
            if batch >= self.batches {
                break;
            }
            let range = batch * BATCH_ROWS..((batch + 1) * BATCH_ROWS).min(self.rows);
            let rows = range.len() as u64;
            let columns = Columns::of(&self.traffic, range);
            let started = Instant::now();
            match self.insert(&columns).await {
                Ok(()) => {
                    tally.batches += 1;
                    tally.rows += rows;
                }
                Err(_) => tally.failed += 1,
            }
            tally.latency.record(started.elapsed());
            tally.last = Some(Instant::now());
        }
        tally
    }

    async fn insert(&self, c: &Columns) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(AssertSqlSafe(self.statement.clone()))
            .bind(&c.message_id)
            .bind(&c.channel_id)
            .bind(&c.seq)
            .bind(&c.sender_id)
            .bind(&c.client_msg_id)
            .bind(&c.content)
            .bind(&c.content_type)
            .bind(&c.reply_to)
            .bind(&c.created_at)
            .bind(&c.mentions)
            .bind(&c.mentions_channel)
            .bind(&c.attachments)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
}

/// A batch as column arrays, for `unnest`, as the worker builds them (mentions as
/// comma-separated ids, attachments as JSON text, empty without any).
struct Columns {
    message_id: Vec<i64>,
    channel_id: Vec<uuid::Uuid>,
    seq: Vec<i64>,
    sender_id: Vec<uuid::Uuid>,
    client_msg_id: Vec<String>,
    content: Vec<String>,
    content_type: Vec<&'static str>,
    reply_to: Vec<Option<i64>>,
    created_at: Vec<chrono::DateTime<chrono::Utc>>,
    mentions: Vec<String>,
    mentions_channel: Vec<bool>,
    attachments: Vec<String>,
}

impl Columns {
    /// Messages `range` of `traffic`; message `i` is number `i / partitions + 1` of its channel.
    fn of(traffic: &Traffic, range: std::ops::Range<usize>) -> Self {
        let partitions = traffic.partitions();
        let messages: Vec<_> = range.clone().map(|i| traffic.message(i)).collect();
        Self {
            message_id: messages.iter().map(|m| m.message_id.0).collect(),
            channel_id: messages.iter().map(|m| m.channel_id.0).collect(),
            seq: range.map(|i| (i / partitions) as i64 + 1).collect(),
            sender_id: messages.iter().map(|m| m.sender.id.0).collect(),
            client_msg_id: messages.iter().map(|m| m.client_msg_id.0.clone()).collect(),
            content_type: messages.iter().map(|m| m.content_type.as_str()).collect(),
            reply_to: messages.iter().map(|m| m.reply_to.map(|r| r.0)).collect(),
            created_at: messages.iter().map(|m| m.created_at).collect(),
            mentions: messages.iter().map(|_| String::new()).collect(),
            mentions_channel: messages.iter().map(|m| m.mentions_channel).collect(),
            attachments: messages.iter().map(|_| String::new()).collect(),
            content: messages.into_iter().map(|m| m.content).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        assert_eq!(table_name("0A1b2c3d").expect("plain"), "loadgen_baseline_0a1b2c3d");
        assert!(table_name("x; DROP TABLE messages").is_err());
    }

    #[test]
    fn rows_are_numbered_per_channel() {
        let traffic = Traffic::new("lgb", 4, 64).expect("found");
        let columns = Columns::of(&traffic, 8..13);
        assert_eq!(columns.seq, vec![3, 3, 3, 3, 4]);
        assert_eq!(columns.channel_id[0], columns.channel_id[4]);
        assert_eq!(columns.content[0].len(), 64);
    }
}
