//! The baselines, short, against real servers: a local cell started by `loadgen --local`
//! itself (after a tiny scenario; and alone, with plain acks), and a cell started here and
//! given by URL (baselines only, request acks of 8 batches at once, two insert loops), whose
//! servers are then searched for anything left behind.
//! The fan-out baseline (c) alone and after a small broadcast: every message delivered to
//! every socket exactly once, its server process gone afterwards.
//! Counts only: every publish acked, every message consumed exactly once, every row inserted,
//! the scratch stream and table gone; no timing is asserted. Needs the `gateway` and
//! `messages` binaries (`cargo build -p gateway -p messages --bins`).

use clap::Parser;
use futures::TryStreamExt;
use loadgen::baseline::figures::{ConsumeFigures, FanoutFigures, InsertFigures, Outcome, PublishFigures};
use loadgen::{Args, Summary};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A whole test: starting the cell, the run, the baselines and the cell's stop.
const TEST_LIMIT: Duration = Duration::from_secs(300);
const MESSAGES: u64 = 2_000;

async fn run(flags: &[&str]) -> Summary {
    let args = Args::parse_from(["loadgen"].iter().chain(flags));
    tokio::time::timeout(TEST_LIMIT, loadgen::run::run(args, CancellationToken::new()))
        .await
        .expect("the run ends within its limit")
        .expect("the run completes")
}

fn measured<'a, T>(outcome: &'a Option<Outcome<T>>, summary: &Summary) -> &'a T {
    match outcome {
        Some(Outcome::Measured(figures)) => figures,
        _ => panic!("not measured:\n{summary}"),
    }
}

fn assert_published(a: &PublishFigures, summary: &Summary) {
    assert_eq!((a.messages, a.published, a.acked), (MESSAGES, MESSAGES, MESSAGES), "{summary}");
    assert_eq!((a.failed, a.duplicates), (0, 0), "{summary}");
    assert!(a.stream_deleted, "{summary}");
    assert_eq!(a.puback_ms.count, MESSAGES, "{summary}");
}

fn assert_consumed_once(b: &ConsumeFigures, summary: &Summary) {
    assert_published(&b.publish, summary);
    let l = &b.ledger;
    assert_eq!((l.expected, l.consumed), (MESSAGES, MESSAGES), "{summary}");
    assert_eq!((l.missing, l.duplicated, l.unexpected), (0, 0, 0), "{summary}");
    assert_eq!(b.acks_failed, 0, "{summary}");
    assert_eq!(b.latency_ms.count, MESSAGES, "{summary}");
}

fn assert_inserted(d: &InsertFigures, summary: &Summary) {
    assert_eq!((d.rows, d.inserted, d.batches, d.failed_batches), (MESSAGES, MESSAGES, 2, 0), "{summary}");
    assert!(d.table_dropped, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_scenario_on_the_local_cell() {
    let out = std::env::temp_dir().join(format!("loadgen-baselines-{}.json", std::process::id()));
    let out_flag = out.display().to_string();
    let flags = [
        "--local",
        "--scenario",
        "pairs",
        "--clients",
        "2",
        "--rate",
        "20",
        "--duration",
        "1",
        "--baseline",
        "publish,consume,insert",
        "--baseline-messages",
        "2000",
        "--baseline-inflight",
        "64",
        "--out",
        &out_flag,
    ];
    let summary = run(&flags).await;
    assert!(summary.verdict.clean() && summary.acked == summary.scheduled, "{summary}");
    let b = &summary.baselines;
    assert_published(measured(&b.publish, &summary), &summary);
    assert_consumed_once(measured(&b.consume, &summary), &summary);
    assert_inserted(measured(&b.insert, &summary), &summary);
    assert!(b.clean() && !b.failed(), "{summary}");
    assert!(b.ratios.acked_vs_publish.is_some() && b.ratios.ack_p50_bound_ms.is_some(), "{summary}");
    assert!(b.worker.is_some_and(|w| w.persisted == summary.acked), "{summary}");
    summary.write_json(&out).expect("the result is written");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("readable")).expect("JSON");
    assert_eq!(json["baselines"]["consume"]["status"], "measured");
    assert_eq!(json["baselines"]["consume"]["ledger"]["missing"], 0);
    assert_eq!(json["baselines"]["setup"]["inflight"], 64);
    let _ = std::fs::remove_file(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alone_on_servers_given_by_url_leave_nothing_behind() {
    let mut cell = shared::local::TestCell::start(Default::default()).await.expect("the cell starts");
    let (nats, postgres) = (cell.nats_urls(), cell.database_url());
    let mut flags = vec!["--baseline-only", "--postgres", &postgres];
    for url in &nats {
        flags.extend(["--nats", url.as_str()]);
    }
    flags.extend([
        "--baseline",
        "publish,consume,insert",
        "--baseline-ack",
        "request",
        "--baseline-ack-batches",
        "8",
    ]);
    flags.extend(["--baseline-messages", "2000", "--baseline-inflight", "64"]);
    flags.extend(["--baseline-insert-concurrency", "2", "--baseline-partitions", "16"]);
    let summary = run(&flags).await;
    let left = leftovers(&nats, &postgres).await;
    cell.stop().await;
    assert!(summary.scenario.is_none(), "{summary}");
    let b = &summary.baselines;
    assert_published(measured(&b.publish, &summary), &summary);
    let consume = measured(&b.consume, &summary);
    assert_consumed_once(consume, &summary);
    assert_eq!(consume.consumers, 16, "{summary}");
    assert_inserted(measured(&b.insert, &summary), &summary);
    assert_eq!(b.ratios, Default::default(), "no scenario, no ratios");
    assert_eq!(left, (Vec::new(), Vec::new()), "scratch streams and tables left behind");
}

/// Streams and tables of the baselines still on the servers.
async fn leftovers(nats: &[String], postgres: &str) -> (Vec<String>, Vec<String>) {
    let client = async_nats::connect(nats).await.expect("NATS answers");
    let js = async_nats::jetstream::new(client);
    let streams: Vec<String> = js.stream_names().try_collect().await.expect("streams are listed");
    let streams = streams.into_iter().filter(|s| s.starts_with("LOADGEN_BASELINE_")).collect();
    let db = sqlx::PgPool::connect(postgres).await.expect("Postgres answers");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE tablename LIKE 'loadgen\\_baseline\\_%'",
    )
    .fetch_all(&db)
    .await
    .expect("tables are listed");
    (streams, tables)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_acks_alone_on_the_local_cell() {
    let flags = ["--local", "--baseline-only", "--baseline", "consume", "--baseline-ack", "plain"];
    let summary =
        run(&[&flags[..], &["--baseline-messages", "2000", "--baseline-inflight", "64"]].concat()).await;
    let consume = measured(&summary.baselines.consume, &summary);
    assert_consumed_once(consume, &summary);
    assert!(summary.baselines.publish.is_none() && summary.baselines.worker.is_none(), "{summary}");
    assert!(summary.to_string().contains("plain ack"), "{summary}");
}

#[tokio::test]
async fn a_baseline_whose_server_is_down_fails_alone() {
    let flags = ["--baseline-only", "--baseline", "publish", "--nats", "nats://127.0.0.1:1"];
    let summary = run(&flags).await;
    assert!(matches!(summary.baselines.publish, Some(Outcome::Failed { .. })), "{summary}");
    assert!(summary.baselines.failed(), "{summary}");
    assert!(summary.baselines.consume.is_none() && summary.baselines.insert.is_none());
    assert!(summary.to_string().contains("(a) publish   FAILED"), "{summary}");
}

fn assert_fanned_out_once(c: &FanoutFigures, sockets: u64, messages: u64, summary: &Summary) {
    assert_eq!((c.sockets, c.connected, c.sockets_closed), (sockets, sockets, 0), "{summary}");
    assert_eq!((c.messages, c.sent), (messages, messages), "{summary}");
    let l = &c.ledger;
    assert_eq!((l.expected, l.delivered), (messages * sockets, messages * sockets), "{summary}");
    assert_eq!((l.missing, l.duplicated, l.unexpected), (0, 0, 0), "{summary}");
    assert_eq!(c.latency_ms.count, messages * sockets, "{summary}");
    assert!(c.server.exited, "{summary}");
    assert!(!std::path::Path::new(&format!("/proc/{}", c.server.pid)).exists(), "{summary}");
    assert!(c.server.rss_idle_kib.is_some() && c.server.bytes_per_idle_socket.is_some(), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_alone_delivers_every_message_to_every_socket_once() {
    let flags = ["--baseline-only", "--baseline", "fanout", "--baseline-sockets", "50"];
    let more = ["--baseline-fanout-messages", "200", "--senders", "2", "--message-bytes", "200"];
    let summary = run(&[&flags[..], &more].concat()).await;
    let fanout = measured(&summary.baselines.fanout, &summary);
    assert_fanned_out_once(fanout, 50, 200, &summary);
    assert_eq!(fanout.senders, 2, "{summary}");
    assert!(summary.baselines.clean() && !summary.baselines.failed(), "{summary}");
    assert!(summary.to_string().contains("(c) fanout"), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_after_a_broadcast_has_its_ratios() {
    let flags = ["--local", "--scenario", "broadcast", "--members", "8", "--rate", "20", "--duration", "1"];
    let more = ["--baseline", "fanout", "--baseline-fanout-messages", "100", "--baseline-fanout-rate", "500"];
    let summary = run(&[&flags[..], &more].concat()).await;
    assert!(summary.verdict.clean() && summary.acked == summary.scheduled, "{summary}");
    let fanout = measured(&summary.baselines.fanout, &summary);
    assert_fanned_out_once(fanout, 8, 100, &summary);
    let r = &summary.baselines.ratios;
    assert!(r.delivered_vs_fanout.is_some() && r.delivered_per_s.is_some(), "{summary}");
    assert!(summary.gateway_bytes_per_socket.is_some(), "{summary}");
}
