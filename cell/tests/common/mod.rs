//! What the fault tests share: a cell under a steady pipelined send load (20 clients on 2
//! gateways into 10 channels, 2 workers), the verdict that stops the load and asserts that
//! nothing acked was lost, duplicated or reordered, and the stream leader's name.

#![allow(dead_code)] // each test file uses its own share of these

use shared::local::cell::Backend;
use shared::local::load::{Load, LoadOptions, Report, check, find_in_stream, wait_persisted};
use shared::local::{CellOptions, TestCell};
use std::time::Duration;

pub async fn loaded_cell() -> (TestCell, Load) {
    loaded_cell_with(CellOptions::default()).await
}

pub async fn loaded_cell_with(options: CellOptions) -> (TestCell, Load) {
    let options = CellOptions { gateways: 2, workers: 2, backend: Backend::Local, ..options };
    let cell = TestCell::start(options).await.expect("the cell starts");
    let load = Load::start(&cell, LoadOptions::default()).await.expect("the load starts");
    tokio::time::sleep(Duration::from_secs(3)).await;
    (cell, load)
}

/// Stops the load, checks it, and returns the report and how many times clients reconnected.
pub async fn verdict(cell: &TestCell, load: Load, fault: &str) -> (Report, usize) {
    tokio::time::sleep(Duration::from_secs(3)).await;
    let drained = load.stop_sending(Duration::from_secs(60)).await;
    assert_eq!(drained, 20, "every send got an answer\n{}", cell.logs_tail());
    let persisted = wait_persisted(&cell.nats_urls(), "CHAT_MESSAGES", Duration::from_secs(90)).await;
    assert!(persisted, "the workers caught up\n{}", cell.logs_tail());
    let db = sqlx::PgPool::connect(&cell.database_url()).await.unwrap();
    // The stream holds only this load's sends, each once (resends are de-duplicated): a second
    // witness that the workers are done, besides the consumers' own counts.
    let stored_all = stored_as_many_as_the_stream(cell, &db, Duration::from_secs(60)).await;
    let records = load.finish(Duration::from_secs(60)).await;
    assert_eq!(records.len(), 20, "every client finished");
    let report = check(&db, &records).await.unwrap();
    let reconnects: usize = records.iter().map(|r| r.reconnects).sum();
    let resends: usize = records.iter().map(|r| r.resends).sum();
    // How long the fault kept clients from any ack: the worst client's, and the median's.
    let mut gaps: Vec<Duration> = records.iter().map(|r| r.longest_ack_gap).collect();
    gaps.sort();
    let (worst, median) = (gaps.last().copied().unwrap_or_default(), gaps[gaps.len() / 2]);
    println!(
        "{fault}: {report} — {reconnects} reconnects, {resends} resends; longest wait for an ack {:.1} s \
         (median client {:.1} s); stream and Postgres agree: {stored_all:?}",
        worst.as_secs_f64(),
        median.as_secs_f64()
    );
    for record in &records {
        for (channel, seen) in &record.seen {
            if seen.windows(2).any(|w| w[1] <= w[0]) {
                let at = seen.windows(2).position(|w| w[1] <= w[0]).unwrap_or(0);
                let around = &seen[at.saturating_sub(5)..(at + 6).min(seen.len())];
                println!(
                    "client {} channel {channel}: out of order near {around:?} (reconnects {})",
                    record.user, record.reconnects
                );
            }
        }
    }
    if !report.lost_acked_keys.is_empty() {
        // Lost by JetStream, or by the workers? Only worth a scan of the stream when it failed.
        let found = find_in_stream(&cell.nats_urls(), "CHAT_MESSAGES", &report.lost_acked_keys).await;
        println!("{fault}: acked, not stored (Nats-Msg-Id, stream sequence): {found:?}");
    }
    for record in &records {
        for (channel, seen) in &record.seen {
            let missing = missing_seqs(seen);
            if !missing.is_empty() || report.unseen > 0 {
                let last = seen.iter().max().copied().unwrap_or(0);
                println!(
                    "client {} channel {channel}: last saw {last}, never saw {missing:?} below it",
                    record.user
                );
            }
        }
    }
    assert!(report.acked > 500, "the load really ran: {report}\n{}", cell.logs_tail());
    // Acked or not, whatever the stream took is persisted (once: the checker counts duplicates).
    assert!(
        stored_all.is_ok(),
        "{fault}: (in the stream, in Postgres) = {stored_all:?}\n{}",
        cell.logs_tail()
    );
    // The kinds of loss on the left: CI shows that line even when it cuts the output short.
    assert_eq!(
        (report.lost_acked, report.holes, report.unseen, report.duplicated, report.reordered),
        (0, 0, 0, 0, 0),
        "{fault} (acked not stored, holes, unseen, duplicated, reordered): {report}\n{}",
        cell.logs_tail()
    );
    (report, reconnects)
}

/// Waits until Postgres holds as many messages as the message stream; `Err` with both counts
/// after `timeout`.
async fn stored_as_many_as_the_stream(
    cell: &TestCell,
    db: &sqlx::PgPool,
    timeout: Duration,
) -> Result<u64, (u64, u64)> {
    let client = async_nats::connect(cell.nats_urls()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut counts = (0, 0);
    while tokio::time::Instant::now() < deadline {
        // Either count may be unavailable for a moment (an election, a reconnect): try again.
        if let Ok(mut stream) = js.get_stream("CHAT_MESSAGES").await
            && let Ok(info) = stream.info().await
            && let Ok((stored,)) =
                sqlx::query_as::<_, (i64,)>("SELECT count(*) FROM messages").fetch_one(db).await
        {
            counts = (info.state.messages, stored as u64);
            if counts.0 == counts.1 {
                return Ok(counts.0);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(counts)
}

/// The `seq`s below the highest one seen that a client never saw (at most 20 of them).
fn missing_seqs(seen: &[i64]) -> Vec<i64> {
    let seen: std::collections::BTreeSet<i64> = seen.iter().copied().collect();
    let last = seen.last().copied().unwrap_or(0);
    (1..last).filter(|s| !seen.contains(s)).take(20).collect()
}

/// The node that leads the message stream's Raft group.
pub async fn stream_leader(cell: &TestCell) -> String {
    let client = async_nats::connect(cell.nats_urls()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("CHAT_MESSAGES").await.unwrap();
    let info = stream.info().await.unwrap();
    info.cluster.as_ref().and_then(|c| c.leader.clone()).expect("the stream has a leader")
}
