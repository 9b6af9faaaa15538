//! What an operator sees: after real traffic, the processes' `/metrics` moved by exactly what
//! happened, every metric of `docs/metrics.md` is exported, readiness answers on the admin
//! port, the `healthcheck` sub-command tells up from down, and one message's trace id travels
//! from the gateway through the stream to its delivery.

use futures::StreamExt;
use shared::local::cell::{AppProcess, metric_value as value};
use shared::local::client::ChatSocket;
use shared::local::{CellOptions, TestCell};
use shared::protocol::ServerFrame;
use std::collections::HashSet;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn metrics_move_with_traffic_and_every_documented_metric_is_exported() {
    let cell = TestCell::start(CellOptions::default()).await.expect("cell starts");
    let (alice, bob, channel) = cell.two_members(0, 0).await.unwrap();
    let mut alice_ws = alice.connect(&cell.ws_url(0)).await.unwrap();
    let mut bob_ws = bob.connect(&cell.ws_url(0)).await.unwrap();
    let (gateway, worker) = (&cell.gateways[0], &cell.workers[0]);
    let before = cell.metrics(gateway).await;
    assert_eq!(value(&before, "chat_gateway_connections"), Some(2.0), "{before}");

    const SENDS: usize = 20;
    for i in 0..SENDS {
        alice_ws.send_message(channel, &format!("m-{i}"), "hello").await.unwrap();
    }
    alice_ws.send_text("{not json".into()).await.unwrap();
    read_until(&mut alice_ws, SENDS, SENDS, &cell).await;
    read_until(&mut bob_ws, 0, SENDS, &cell).await;
    bob_ws.close().await;

    let gw = wait_for(&cell, gateway, "chat_gateway_connections_closed_total{code=\"1000\"}", 1.0).await;
    assert_eq!(value(&gw, "chat_gateway_connections"), Some(1.0), "{gw}");
    assert_eq!(value(&gw, "chat_gateway_connections_opened_total"), Some(2.0));
    assert_eq!(value(&gw, "chat_gateway_sends_total{outcome=\"acked\"}"), Some(SENDS as f64));
    assert_eq!(value(&gw, "chat_gateway_frames_in_total{type=\"message.send\"}"), Some(SENDS as f64));
    assert_eq!(value(&gw, "chat_gateway_frames_in_total{type=\"invalid\"}"), Some(1.0));
    assert_eq!(value(&gw, "chat_gateway_frames_out_total{type=\"message.ack\"}"), Some(SENDS as f64));
    assert_eq!(value(&gw, "chat_gateway_frames_out_total{type=\"error\"}"), Some(1.0));
    assert_eq!(value(&gw, "chat_gateway_frames_out_total{type=\"message.new\"}"), Some(2.0 * SENDS as f64));
    assert_eq!(value(&gw, "chat_gateway_send_ack_seconds_count"), Some(SENDS as f64));
    assert_eq!(value(&gw, "chat_gateway_send_deliver_seconds_count"), Some(SENDS as f64));
    let batches = value(&gw, "chat_gateway_publish_batch_size_count").unwrap();
    assert!((1.0..=SENDS as f64).contains(&batches), "{batches} batches");
    assert_eq!(value(&gw, "chat_gateway_publish_batch_size_sum"), Some(SENDS as f64));
    // Two registrations and one channel: 201; the socket upgrades: 101.
    assert_eq!(value(&gw, "chat_gateway_http_requests_total{status=\"201\"}"), Some(3.0));
    assert_eq!(value(&gw, "chat_gateway_http_requests_total{status=\"101\"}"), Some(2.0));
    assert_eq!(value(&gw, "chat_gateway_draining"), Some(0.0));
    assert_eq!(value(&gw, "chat_pool_max_connections{pool=\"redis\"}"), Some(16.0));

    let wk = wait_for(&cell, worker, "chat_worker_messages_persisted_total", SENDS as f64).await;
    assert_eq!(value(&wk, "chat_worker_persist_batch_size_sum"), Some(SENDS as f64));
    assert!(value(&wk, "chat_worker_persist_seconds_count").unwrap() >= 1.0);
    assert_eq!(value(&wk, "chat_worker_dead_lettered_total{reason=\"rejected\"}"), Some(0.0));
    // One lag gauge per partition, sampled from the server.
    let lag: Vec<&str> =
        wk.lines().filter(|l| l.starts_with("chat_worker_consumer_pending_messages{")).collect();
    assert_eq!(lag.len(), 4, "{wk}");
    assert!(wk.contains("chat_build_info{process=\"messages\""));

    // Every metric of the contract is exported by one of the two processes.
    let exported: HashSet<String> = gw
        .lines()
        .chain(wk.lines())
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    let documented = documented_metrics();
    assert!(documented.len() >= 25, "{documented:?}");
    for name in documented {
        let base = name.strip_suffix("_total").unwrap_or(&name);
        assert!(exported.contains(base), "{name} is documented but not exported: {exported:?}");
    }
}

#[tokio::test]
async fn admin_readiness_healthcheck_and_trace_ids_across_processes() {
    let cell = TestCell::start(CellOptions::default()).await.expect("cell starts");
    for app in cell.gateways.iter().chain(&cell.workers) {
        let ready = reqwest::get(format!("{}/ready", cell.admin_url(app))).await.unwrap();
        assert_eq!(ready.status(), 200, "{} ready", app.name);
        let body: serde_json::Value = ready.json().await.unwrap();
        assert_eq!((body["nats"].as_bool(), body["postgres"].as_bool()), (Some(true), Some(true)), "{body}");
    }
    // `healthcheck` with the same config as the running process: up; against a free port: down.
    let bin = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join("gateway");
    let config = cell.dir.join("gateway-1.toml");
    let up =
        std::process::Command::new(&bin).arg("healthcheck").arg("--config").arg(&config).status().unwrap();
    assert!(up.success(), "healthcheck of a running gateway");
    let down = std::process::Command::new(&bin)
        .arg("healthcheck")
        .env("CHAT__GATEWAY__ADMIN_LISTEN", "127.0.0.1:1")
        .status()
        .unwrap();
    assert!(!down.success(), "healthcheck of nothing");

    // The trace of one message: on its stream copy and on its delivery, the same trace id.
    let (alice, _bob, channel) = cell.two_members(0, 0).await.unwrap();
    let nats = async_nats::connect(cell.nats_urls()).await.unwrap();
    let mut deliveries = nats.subscribe(format!("chat.deliver.{channel}")).await.unwrap();
    let mut socket = alice.connect(&cell.ws_url(0)).await.unwrap();
    socket.send_message(channel, "traced", "follow me").await.unwrap();
    read_until(&mut socket, 1, 1, &cell).await;
    // The subject also carries presence and typing signals: the delivery is the one with a seq.
    let delivery = loop {
        let next = tokio::time::timeout(WAIT, deliveries.next()).await.unwrap().unwrap();
        if next.headers.as_ref().is_some_and(|h| h.get("Chat-Seq").is_some()) {
            break next;
        }
    };
    let delivered_trace = delivery.headers.as_ref().and_then(|h| h.get("traceparent")).unwrap().to_string();
    let js = async_nats::jetstream::new(nats);
    let stream = js.get_stream("CHAT_MESSAGES").await.unwrap();
    let stored = stream.direct_get(1).await.unwrap();
    let published_trace = stored.headers.get("traceparent").unwrap().to_string();
    assert_eq!(delivered_trace, published_trace);
    let parts: Vec<&str> = published_trace.split('-').collect();
    assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [2, 32, 16, 2], "{published_trace}");
}

/// The metric names of the contract's tables in `docs/metrics.md` (the cell's own, not the
/// recording rules' or other exporters'), but those marked reserved (not built yet).
fn documented_metrics() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md")).unwrap();
    doc.lines()
        .filter(|l| !l.contains("Reserved:"))
        .filter_map(|l| l.strip_prefix("| `chat_"))
        .filter_map(|l| l.split('`').next())
        .map(|name| format!("chat_{name}"))
        .collect()
}

/// Scrapes until `series` reaches `at_least` (counters move asynchronously), then returns the
/// scrape.
async fn wait_for(cell: &TestCell, app: &AppProcess, series: &str, at_least: f64) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let metrics = cell.metrics(app).await;
        if value(&metrics, series).is_some_and(|v| v >= at_least) || Instant::now() > deadline {
            return metrics;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads until `acks` acks (and as many errors for invalid frames as come) and `news`
/// deliveries arrived.
async fn read_until(socket: &mut ChatSocket, acks: usize, news: usize, cell: &TestCell) {
    let (mut acked, mut delivered) = (0, 0);
    let deadline = Instant::now() + WAIT;
    while acked < acks || delivered < news {
        match socket.next_frame(deadline.saturating_duration_since(Instant::now())).await.unwrap() {
            Some(ServerFrame::MessageAck { .. }) => acked += 1,
            Some(ServerFrame::MessageNew { .. }) => delivered += 1,
            Some(_) => {}
            None => panic!("timed out at {acked} acks, {delivered} deliveries\n{}", cell.logs_tail()),
        }
    }
}
