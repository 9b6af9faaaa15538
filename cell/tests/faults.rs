//! Faults under load: a steady pipelined send load from 20 clients on 2 gateways into 10
//! channels, with 2 worker processes, while one fault is injected; then the checker counts
//! what it cost. Unacked sends may fail (visibly); acked ones must be stored exactly once,
//! in one contiguous order per channel, and seen by every client of the channel once, in order.

use shared::local::cell::{Backend, Servers};
use shared::local::load::{Load, LoadOptions, Report, check, wait_persisted};
use shared::local::{CellOptions, TestCell};
use std::time::Duration;

async fn loaded_cell() -> (TestCell, Load) {
    let options = CellOptions { gateways: 2, workers: 2, backend: Backend::Local, ..Default::default() };
    let cell = TestCell::start(options).await.expect("the cell starts");
    let load = Load::start(&cell, LoadOptions::default()).await.expect("the load starts");
    tokio::time::sleep(Duration::from_secs(3)).await;
    (cell, load)
}

async fn verdict(cell: &TestCell, load: Load, fault: &str) -> Report {
    tokio::time::sleep(Duration::from_secs(3)).await;
    let drained = load.stop_sending(Duration::from_secs(60)).await;
    assert_eq!(drained, 20, "every send got an answer\n{}", cell.logs_tail());
    let persisted = wait_persisted(&cell.nats_urls(), "CHAT_MESSAGES", Duration::from_secs(90)).await;
    assert!(persisted, "the workers caught up\n{}", cell.logs_tail());
    let records = load.finish(Duration::from_secs(60)).await;
    assert_eq!(records.len(), 20, "every client finished");
    let db = sqlx::PgPool::connect(&cell.database_url()).await.unwrap();
    let report = check(&db, &records).await.unwrap();
    let reconnects: usize = records.iter().map(|r| r.reconnects).sum();
    let resends: usize = records.iter().map(|r| r.resends).sum();
    println!("{fault}: {report} — {reconnects} reconnects, {resends} resends");
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
    assert!(report.acked > 500, "the load really ran: {report}\n{}", cell.logs_tail());
    assert_eq!(
        (report.lost, report.duplicated, report.reordered),
        (0, 0, 0),
        "{fault}: {report}\n{}",
        cell.logs_tail()
    );
    report
}

#[tokio::test]
async fn kill_9_a_worker_mid_batch_then_restart_it() {
    let (mut cell, load) = loaded_cell().await;
    for worker in &mut cell.workers {
        worker.kill9();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for worker in &mut cell.workers {
        worker.start().unwrap();
    }
    verdict(&cell, load, "kill -9 the workers").await;
}

#[tokio::test]
async fn kill_9_one_nats_node_then_restart_it() {
    let (mut cell, load) = loaded_cell().await;
    let Servers::Local { nats, .. } = &mut cell.servers else { unreachable!("local backend") };
    let node = nats.node_mut("n2").unwrap();
    node.kill9();
    tokio::time::sleep(Duration::from_secs(4)).await;
    node.start().unwrap();
    verdict(&cell, load, "kill -9 NATS node n2").await;
}

#[tokio::test]
async fn kill_9_a_gateway_its_clients_move_to_the_other_and_sync() {
    let (mut cell, load) = loaded_cell().await;
    cell.gateways[0].kill9();
    tokio::time::sleep(Duration::from_secs(3)).await;
    verdict(&cell, load, "kill -9 gateway-1").await;
}

#[tokio::test]
async fn restart_postgres() {
    let (mut cell, load) = loaded_cell().await;
    let Servers::Local { postgres, .. } = &mut cell.servers else { unreachable!("local backend") };
    postgres.process.as_mut().unwrap().kill9();
    tokio::time::sleep(Duration::from_secs(2)).await;
    postgres.restart().await.unwrap();
    verdict(&cell, load, "kill -9 and restart Postgres").await;
}
