//! Measures a gateway's memory per open WebSocket on this machine: opens N idle sockets (one
//! user per 5, each in one channel with its neighbours), reads the gateway's resident memory
//! before and after from `/proc`, and prints the difference per socket. Not a test: it prints
//! figures (docs/benchmarks.md records them).
//!
//! `cargo build --release --bins && CHAT_BIN_DIR=target/release \
//!  cargo run --release -p cell --example connection_memory -- [sockets]`

use shared::local::client::ChatClient;
use shared::local::{CellOptions, TestCell};
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sockets: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    shared::rlimit::raise_open_files();
    let cell = TestCell::start(CellOptions::default()).await?;
    let base = cell.gateway_url(0);
    let users_needed = sockets.div_ceil(5);
    let mut users = Vec::with_capacity(users_needed);
    for i in 0..users_needed {
        users.push(ChatClient::register(&base, &format!("mem{i:05}")).await?);
    }
    for pair in users.chunks(2) {
        let members: Vec<_> = pair.iter().skip(1).map(|u| u.user_id).collect();
        pair[0].create_channel("group", "memory", &members).await?;
    }
    let pid = cell.gateways[0].process.as_ref().map(|p| p.pid()).unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rss_kib(pid);
    let mut open = Vec::with_capacity(sockets);
    for i in 0..sockets {
        let mut socket = users[i / 5].connect(&cell.ws_url(0)).await?;
        socket.sync(&[]).await?;
        open.push(socket);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(pid);
    let per_socket = (after.saturating_sub(before)) as f64 * 1024.0 / sockets as f64;
    println!(
        "{sockets} idle sockets: gateway RSS {before} KiB -> {after} KiB, {per_socket:.0} bytes per socket \
         (80,000 sockets ≈ {:.1} GiB)",
        per_socket * 80_000.0 / (1u64 << 30) as f64
    );
    drop(open);
    Ok(())
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
