//! Measures the cell end to end on this machine: clients in pairs, each pair in its own
//! channel, every client pipelining sends with a bounded window. Prints messages/s from send
//! to ack, and send→ack and send→deliver latency percentiles. Not a test: it prints figures.
//!
//! `cargo build --release --bins && CHAT_BIN_DIR=target/release \
//!  cargo run --release -p cell --example send_throughput -- [clients] [messages-per-client] [window]`

use shared::ids::ChannelId;
use shared::local::client::ChatClient;
use shared::local::{CellOptions, TestCell};
use shared::protocol::ServerFrame;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let clients = args.first().copied().unwrap_or(20).max(2) / 2 * 2;
    let per_client = args.get(1).copied().unwrap_or(500);
    let window = args.get(2).copied().unwrap_or(64);
    let cell = TestCell::start(CellOptions { partitions: 16, ..Default::default() }).await?;
    let base = cell.gateway_url(0);

    let mut users = Vec::new();
    for i in 0..clients {
        users.push(ChatClient::register(&base, &format!("user{i:04}")).await?);
    }
    let mut channels = Vec::new();
    for pair in users.chunks(2) {
        channels.push(pair[0].create_channel("group", "bench", &[pair[1].user_id]).await?);
    }
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let socket = user.connect(&cell.ws_url(0)).await?;
        tasks.push(tokio::spawn(run_client(
            socket,
            channels[i / 2],
            i,
            per_client,
            window,
            sent_at.clone(),
            clients,
        )));
    }
    let mut acks = Vec::new();
    let mut delivers = Vec::new();
    for task in tasks {
        let (a, d) = task.await??;
        acks.extend(a);
        delivers.extend(d);
    }
    let elapsed = started.elapsed();
    let total = clients * per_client;
    println!(
        "{clients} clients × {per_client} messages, window {window}, 1 gateway, 1 worker, 16 partitions"
    );
    println!("throughput (send→ack): {:.0} msg/s over {elapsed:.2?}", total as f64 / elapsed.as_secs_f64());
    report("send→ack", &mut acks);
    report("send→deliver", &mut delivers);
    Ok(())
}

type Latencies = Vec<Duration>;

async fn run_client(
    mut socket: shared::local::client::ChatSocket,
    channel: ChannelId,
    me: usize,
    count: usize,
    window: usize,
    sent_at: Arc<Mutex<HashMap<String, Instant>>>,
    _clients: usize,
) -> anyhow::Result<(Latencies, Latencies)> {
    let (mut next, mut acked, mut delivered) = (0, 0, 0);
    let (mut acks, mut delivers) = (Vec::new(), Vec::new());
    // Each client expects its own messages and its peer's on the channel.
    while acked < count || delivered < 2 * count {
        while next < count && next - acked < window {
            let id = format!("{me}-{next}");
            sent_at.lock().unwrap().insert(id.clone(), Instant::now());
            socket
                .send_message(channel, &id, "benchmark message of typical length, about sixty bytes")
                .await?;
            next += 1;
        }
        match socket.next_frame(Duration::from_secs(30)).await? {
            Some(ServerFrame::MessageAck { id, .. }) => {
                acked += 1;
                if let Some(t) = sent_at.lock().unwrap().get(&id.0) {
                    acks.push(t.elapsed());
                }
            }
            Some(ServerFrame::MessageNew { payload }) => {
                delivered += 1;
                if !payload.client_id.0.starts_with(&format!("{me}-"))
                    && let Some(t) = sent_at.lock().unwrap().get(&payload.client_id.0)
                {
                    delivers.push(t.elapsed());
                }
            }
            Some(ServerFrame::Error { payload, .. }) => anyhow::bail!("error frame: {payload:?}"),
            Some(_) => {}
            None => anyhow::bail!("stalled: {acked} acks, {delivered} deliveries"),
        }
    }
    Ok((acks, delivers))
}

fn report(what: &str, latencies: &mut [Duration]) {
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "{what:>13}: p50 {:.1?}  p90 {:.1?}  p99 {:.1?}  max {:.1?}  (n = {})",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0),
        latencies.len()
    );
}
