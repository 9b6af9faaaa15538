//! Runs baseline (c): the server started, its RSS read bare, the sockets opened and its RSS
//! read with them idle, the messages sent and settled, its RSS and CPU read under the load,
//! the sockets closed and the server stopped; then every delivery accounted for.

use crate::baseline::error::BaselineError;
use crate::baseline::fanout::ledger::FanoutLedger;
use crate::baseline::fanout::process::{self, ServerProcess};
use crate::baseline::fanout::receive::{self, Progress, Received};
use crate::baseline::fanout::send::{self, SendPlan, Sent, Sink};
use crate::baseline::fanout::sockets::{self, ClientSocket};
use crate::baseline::figures::{FanoutFigures, FanoutServer};
use crate::baseline::params::BaselineParams;
use crate::proc_stats::ProcSample;
use futures::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// From the last socket opened to the idle reading: the server's tasks settle.
const IDLE_PAUSE: Duration = Duration::from_millis(500);
/// From the first send to the last message sent, plus this, for the deliveries to come.
const SETTLE: Duration = Duration::from_secs(30);
/// How often the settle looks at the deliveries.
const POLL: Duration = Duration::from_millis(10);
/// How long the socket tasks may take to hand back their records once told to finish.
const FINISH_GRACE: Duration = Duration::from_secs(10);
/// How long a socket's close may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs baseline (c) on a server process of its own.
pub async fn measure(
    params: &BaselineParams,
    deadline: Instant,
    stop: &CancellationToken,
) -> Result<FanoutFigures, BaselineError> {
    let server = process::start().await?;
    let figures = run(&server, params, deadline, stop).await;
    let exited = server.stop().await;
    let mut figures = figures?;
    figures.server.exited = exited;
    Ok(figures)
}

/// The readings of the server around the load.
struct Readings {
    bare: ProcSample,
    idle: ProcSample,
    loaded: ProcSample,
}

async fn run(
    server: &ServerProcess,
    params: &BaselineParams,
    deadline: Instant,
    stop: &CancellationToken,
) -> Result<FanoutFigures, BaselineError> {
    let bare = server.sample();
    let opened = sockets::open_all(server.addr, params.sockets, stop).await?;
    tokio::time::sleep(IDLE_PAUSE).await;
    let idle = server.sample();
    let connected = opened.len() as u64;
    let senders = params.senders.clamp(1, opened.len().max(1)) as u64;
    let plan = SendPlan {
        messages: params.fanout_messages as u64,
        senders,
        window: params.fanout_window as u64,
        rate: params.fanout_rate,
        bytes: params.content_bytes,
        deadline,
    };
    let progress = Arc::new(Progress::new(connected));
    let finish = CancellationToken::new();
    let (mut sending, mut receiving) = spawn(opened, plan, &progress, &finish, stop);
    let (mut sinks, mut sent) = (Vec::new(), Vec::new());
    while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, sending.join_next()).await {
        if let Ok((sink, by)) = joined {
            sinks.push(sink);
            sent.push(by);
        }
    }
    let total: u64 = sent.iter().map(|s| s.sent).sum();
    let settle_by = deadline.min(Instant::now() + SETTLE);
    while progress.delivered() < total * connected && Instant::now() < settle_by && !stop.is_cancelled() {
        tokio::time::sleep(POLL).await;
    }
    let loaded = server.sample();
    finish.cancel();
    sending.abort_all();
    let mut received = Vec::new();
    let grace = Instant::now() + FINISH_GRACE;
    while let Ok(Some(joined)) = tokio::time::timeout_at(grace, receiving.join_next()).await {
        received.extend(joined.ok());
    }
    receiving.abort_all();
    for mut sink in sinks {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
    }
    let readings = Readings { bare, idle, loaded };
    Ok(figures(params, &plan, &sent, &received, &progress, readings, connected))
}

/// A task per socket receiving; for the first `plan.senders`, a second one sending on it.
fn spawn(
    opened: Vec<ClientSocket>,
    plan: SendPlan,
    progress: &Arc<Progress>,
    finish: &CancellationToken,
    stop: &CancellationToken,
) -> (JoinSet<(Sink, Sent)>, JoinSet<Received>) {
    let (mut sending, mut receiving) = (JoinSet::new(), JoinSet::new());
    let start = Instant::now();
    let messages = plan.messages;
    for (index, socket) in opened.into_iter().enumerate() {
        let (progress, finish) = (progress.clone(), finish.clone());
        if (index as u64) < plan.senders {
            let (mut sink, stream) = socket.split();
            let (p, stop) = (progress.clone(), stop.clone());
            sending.spawn(async move {
                let sent = send::send(&mut sink, index as u64, plan, &p, start, &stop).await;
                (sink, sent)
            });
            receiving
                .spawn(async move { receive::receive(stream, index, messages, &progress, &finish).await.1 });
        } else {
            receiving.spawn(async move {
                let (mut socket, received) =
                    receive::receive(socket, index, messages, &progress, &finish).await;
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.close(None)).await;
                received
            });
        }
    }
    (sending, receiving)
}

fn figures(
    params: &BaselineParams,
    plan: &SendPlan,
    sent: &[Sent],
    received: &[Received],
    progress: &Progress,
    readings: Readings,
    connected: u64,
) -> FanoutFigures {
    let total: u64 = sent.iter().map(|s| s.sent).sum();
    let ledgers: Vec<_> = received.iter().map(|r| r.ledger.clone()).collect();
    let ledger = FanoutLedger::reconcile(total, connected, &ledgers);
    let first = sent.iter().filter_map(|s| s.first).min();
    let last = received.iter().filter_map(|r| r.last).max();
    let elapsed_s = first.zip(last).map_or(0.0, |(first, last)| last.duration_since(first).as_secs_f64());
    let deliveries = ledger.delivered + ledger.duplicated;
    FanoutFigures {
        sockets: params.sockets as u64,
        connected,
        senders: plan.senders,
        messages: plan.messages,
        sent: total,
        stalled: sent.iter().any(|s| s.stalled),
        content_bytes: plan.bytes,
        window: plan.window,
        rate: plan.rate,
        ledger,
        sockets_closed: received.iter().filter(|r| r.closed_early).count() as u64,
        elapsed_s,
        deliveries_per_s: if elapsed_s > 0.0 { deliveries as f64 / elapsed_s } else { 0.0 },
        latency_ms: progress.latency().percentiles(),
        server: FanoutServer::new(readings.bare, readings.idle, readings.loaded, connected),
    }
}
