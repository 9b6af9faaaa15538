//! What `sync_interval: always` costs: the raw JetStream publish rate into an R3 stream on a
//! local 3-node cluster, with `always` (every write fsynced before its ack) and with the server
//! default (`2m`), one after the other in one run. Prints messages/s for each.
//!
//! `cargo run --release -p cell --example jetstream_sync_cost -- [messages] [window]`

use shared::local::nats::NatsCluster;
use shared::local::process::random_loopback;
use std::time::Instant;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let messages = args.first().copied().unwrap_or(20_000);
    let window = args.get(1).copied().unwrap_or(1_000);
    for sync_interval in ["always", "2m"] {
        let dir = tempfile::tempdir()?;
        let cluster =
            NatsCluster::start_with_sync(dir.path(), random_loopback(), None, sync_interval).await?;
        let client = async_nats::connect(cluster.urls()).await?;
        let js = async_nats::jetstream::ContextBuilder::new()
            .max_ack_inflight(window)
            .backpressure_on_inflight(true)
            .build(client);
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "BENCH".into(),
            subjects: vec!["bench.>".into()],
            num_replicas: 3,
            ..Default::default()
        })
        .await?;
        let payload = bytes::Bytes::from(vec![b'x'; 256]);
        let started = Instant::now();
        // Each ack is awaited by its own task: an ack future holds its in-flight permit until
        // it is polled to the end, so holding them all unpolled would stall at the window.
        let mut acks = tokio::task::JoinSet::new();
        for i in 0..messages {
            acks.spawn(js.publish(format!("bench.{}", i % 16), payload.clone()).await?.into_future());
        }
        while let Some(ack) = acks.join_next().await {
            ack??;
        }
        let elapsed = started.elapsed();
        println!(
            "sync_interval {sync_interval:>6}: {messages} × 256 B into R3, window {window}: {:.0} msg/s ({elapsed:.2?})",
            messages as f64 / elapsed.as_secs_f64()
        );
    }
    Ok(())
}
