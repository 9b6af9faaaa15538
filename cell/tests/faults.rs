//! Faults under load: a steady pipelined send load from 20 clients on 2 gateways into 10
//! channels, with 2 worker processes, while one fault is injected; then the checker counts
//! what it cost. Unacked sends may fail (visibly); acked ones must be stored exactly once,
//! in one contiguous order per channel, and seen by every client of the channel once, in order.

mod common;

use common::{loaded_cell, loaded_cell_with, stream_leader, verdict};
use shared::local::cell::{Backend, Servers};
use shared::local::{CellOptions, TestCell};
use std::time::Duration;

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

#[tokio::test]
async fn kill_9_the_stream_leader_then_restart_it() {
    let (mut cell, load) = loaded_cell().await;
    let leader = stream_leader(&cell).await;
    let Servers::Local { nats, .. } = &mut cell.servers else { unreachable!("local backend") };
    let node = nats.node_mut(&leader).unwrap();
    node.kill9();
    tokio::time::sleep(Duration::from_secs(4)).await;
    node.start().unwrap();
    verdict(&cell, load, &format!("kill -9 the stream leader {leader}")).await;
}

#[tokio::test]
async fn sigstop_the_stream_leader_past_the_election_timeout_then_sigcont() {
    let (mut cell, load) = loaded_cell().await;
    let leader = stream_leader(&cell).await;
    let Servers::Local { nats, .. } = &mut cell.servers else { unreachable!("local backend") };
    let process = nats.node_mut(&leader).unwrap().process.as_ref().unwrap();
    process.signal(nix::sys::signal::Signal::SIGSTOP);
    // NATS elects a new leader after a few seconds without heartbeats from a stalled one.
    tokio::time::sleep(Duration::from_secs(8)).await;
    process.signal(nix::sys::signal::Signal::SIGCONT);
    verdict(&cell, load, &format!("SIGSTOP the stream leader {leader} for 8 s")).await;
}

/// The drain of a deploy: every worker, then every gateway, gets SIGTERM under load and is
/// started again once it has exited by itself. Gateways close their sockets with 1012 spread
/// over the drain window after answering every in-flight send; clients reconnect to the other
/// gateway and `sync`.
#[tokio::test]
async fn a_rolling_restart_of_every_worker_and_gateway_loses_nothing() {
    let options = CellOptions { gateway_config: "drain_window = 2000\n".into(), ..Default::default() };
    let (mut cell, load) = loaded_cell_with(options).await;
    for i in 0..cell.workers.len() {
        let status = cell.workers[i].terminate(Duration::from_secs(25)).await;
        assert!(status.is_some_and(|s| s.success()), "worker {i} drained and exited: {status:?}");
        cell.workers[i].start().unwrap();
        assert!(cell.wait_admin_ready(&cell.workers[i], Duration::from_secs(60)).await, "worker {i} back");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for i in 0..cell.gateways.len() {
        let status = cell.gateways[i].terminate(Duration::from_secs(25)).await;
        assert!(status.is_some_and(|s| s.success()), "gateway {i} drained and exited: {status:?}");
        let log = std::fs::read_to_string(cell.gateways[i].log_path()).unwrap_or_default();
        assert!(log.contains("draining sockets"), "gateway {i} drained its sockets");
        cell.gateways[i].start().unwrap();
        cell.wait_gateway_ready(i, Duration::from_secs(60)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (report, reconnects) = verdict(&cell, load, "rolling restart of 2 workers and 2 gateways").await;
    assert!(reconnects >= 20, "every client was moved at least once: {report}, {reconnects} reconnects");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_while_others_keep_receiving() {
    use shared::local::client::ChatClient;
    use shared::protocol::ServerFrame;
    let options = CellOptions { backend: Backend::Local, ..Default::default() };
    let cell = TestCell::start(options).await.expect("the cell starts");
    let base = cell.gateway_url(0);
    let alice = ChatClient::register(&base, "alice").await.unwrap();
    let bob = ChatClient::register(&base, "bob").await.unwrap();
    let carol = ChatClient::register(&base, "carol").await.unwrap();
    let channel = alice.create_channel("group", "firehose", &[bob.user_id, carol.user_id]).await.unwrap();
    let mut alice_ws = alice.connect(&cell.ws_url(0)).await.unwrap();
    let mut bob_ws = bob.connect(&cell.ws_url(0)).await.unwrap();
    let mut carol_ws = carol.connect(&cell.ws_url(0)).await.unwrap(); // never reads until the end

    // About 12 MB towards carol: more than her TCP buffers and her socket's queue hold.
    const TOTAL: usize = 3000;
    let body = "x".repeat(3900);
    let bob_reader = tokio::spawn(async move {
        let mut seqs = Vec::new();
        while seqs.len() < TOTAL {
            match bob_ws.next_frame(Duration::from_secs(60)).await {
                Ok(Some(ServerFrame::MessageNew { payload })) => seqs.push(payload.seq.0),
                Ok(Some(_)) => {}
                other => panic!("bob stopped receiving after {}: {other:?}", seqs.len()),
            }
        }
        seqs
    });
    for chunk in 0..TOTAL / 100 {
        for i in 0..100 {
            alice_ws.send_message(channel, &format!("f-{}", chunk * 100 + i), &body).await.unwrap();
        }
        let mut acks = 0;
        while acks < 100 {
            match alice_ws.next_frame(Duration::from_secs(60)).await.unwrap() {
                Some(ServerFrame::MessageAck { .. }) => acks += 1,
                Some(ServerFrame::Error { payload, .. }) => panic!("send failed: {payload:?}"),
                Some(_) => {}
                None => panic!("no acks\n{}", cell.logs_tail()),
            }
        }
    }
    let bob_seqs = bob_reader.await.unwrap();
    assert_eq!(bob_seqs, (1..=TOTAL as i64).collect::<Vec<_>>(), "bob got everything, in order");

    // Carol's socket was closed under her: she reads what was buffered, then the end.
    let mut carol_seen = 0usize;
    let ended = loop {
        match carol_ws.next_frame(Duration::from_secs(30)).await {
            Ok(Some(ServerFrame::MessageNew { .. })) => carol_seen += 1,
            Ok(Some(_)) => {}
            Ok(None) => break "still open".to_string(),
            Err(error) => break error.to_string(),
        }
    };
    println!("slow consumer: carol read {carol_seen} of {TOTAL} before the end ({ended})");
    assert_ne!(ended, "still open", "the slow socket was closed");
    assert!(carol_seen < TOTAL, "carol was cut off before the end");
    let last = carol_ws.last_seq.get(&channel).map_or(0, |s| s.0);

    // She resumes and gets exactly the rest.
    let mut carol_ws = carol.resume(&cell.ws_url(0), &[(channel, last)]).await.unwrap();
    let mut rest = Vec::new();
    loop {
        match carol_ws.next_frame(Duration::from_secs(30)).await.unwrap() {
            Some(ServerFrame::MessageNew { payload }) => rest.push(payload.seq.0),
            Some(ServerFrame::SyncDone { payload }) if !payload.truncated => break,
            Some(ServerFrame::SyncDone { payload }) => {
                // More than one backlog's worth: continue from where it stopped.
                carol_ws.sync(&[(channel, payload.last_seq.0)]).await.unwrap();
            }
            Some(_) => {}
            None => panic!("resume stalled after {} messages", rest.len()),
        }
    }
    assert_eq!(rest, (last + 1..=TOTAL as i64).collect::<Vec<_>>(), "the resume fills exactly the rest");
}

/// The whole NATS cluster gone (an outage, or a cell torn down in the wrong order): a
/// gateway and a worker told to stop still stop by themselves, within their grace, instead of
/// waiting forever for a NATS that would take their last flush.
#[tokio::test]
async fn a_gateway_and_a_worker_stop_on_sigterm_with_every_nats_node_gone() {
    let options = CellOptions {
        backend: Backend::Local,
        gateway_config: "shutdown_grace = 3\ndrain_window = 200\n".into(),
        worker_config: "shutdown_grace = 3\n".into(),
        ..Default::default()
    };
    let mut cell = TestCell::start(options).await.expect("the cell starts");
    let Servers::Local { nats, .. } = &mut cell.servers else { unreachable!("local backend") };
    for node in &mut nats.nodes {
        node.kill9();
    }
    // Past the clients' first reconnect attempts: they are retrying when the signal comes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Each grace is 3 s; 30 s before the SIGKILL is ten times that.
    let status = cell.gateways[0].terminate(Duration::from_secs(30)).await;
    assert!(status.is_some_and(|s| s.success()), "the gateway exited by itself: {status:?}");
    let status = cell.workers[0].terminate(Duration::from_secs(30)).await;
    assert!(status.is_some_and(|s| s.success()), "the worker exited by itself: {status:?}");
}
