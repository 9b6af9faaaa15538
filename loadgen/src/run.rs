//! One run from start to end: the target (a remote cell or a local one started here), the
//! scenario built, the sockets connected, the load sent and settled, the records checked.

use crate::audit::{self, Stores};
use crate::baseline::figures::Outcome;
use crate::baseline::{self, BaselineParams, BaselineServers, Baselines};
use crate::check;
use crate::cli::{Args, ScenarioKind};
use crate::client::{self, Controls, SendPlan};
use crate::drain;
use crate::error::LoadgenError;
use crate::measure::Tally;
use crate::proc_stats::{self, ProcDelta};
use crate::rate::Schedule;
use crate::reconnect::Redial;
use crate::record::SocketRecord;
use crate::report::Summary;
use crate::scenario::{self, Member, Plan, Shape, Target};
use crate::storm::{self, StormFigures};
use futures::{StreamExt, TryStreamExt};
use shared::config::NatsConfig;
use shared::local::client::ChatSocket;
use shared::local::{CellOptions, TestCell};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Sockets opening at once.
const CONNECT_CONCURRENCY: usize = 16;
/// From the last socket connected to the first send.
const LEAD_IN: Duration = Duration::from_millis(200);
/// How long the socket tasks may take to hand back their records once told to finish.
const FINISH_GRACE: Duration = Duration::from_secs(10);

/// Runs the load the arguments describe, then the baselines asked for; `stop` (Ctrl-C) ends
/// the sending early and skips the baselines not started yet.
pub async fn run(args: Args, stop: CancellationToken) -> Result<Summary, LoadgenError> {
    args.validate()?;
    let shape = if args.baseline_only { None } else { Some(scenario::plan(&args)?) };
    shared::rlimit::raise_open_files();
    let run_id = run_id();
    let mut summary = if args.local {
        let mut cell = start_local(&args).await?;
        let summary = on_local_cell(&args, shape.as_ref(), &mut cell, &stop, &run_id).await;
        cell.stop().await;
        summary?
    } else {
        let bases: Vec<String> = args.gateways.iter().map(|g| g.trim_end_matches('/').to_owned()).collect();
        let audit = match (&args.postgres, args.audit) {
            (Some(postgres), true) => Some(stores(&args, postgres.clone(), args.nats.clone())),
            _ => None,
        };
        let target =
            Target { bases, pids: args.pids.clone(), gateway_pids: Vec::new(), sending_over: None, audit };
        let mut summary = match &shape {
            Some(shape) => scenario_run(&args, shape, &target, stop.clone(), &run_id).await?,
            None => Summary::without_scenario(&args),
        };
        let servers = BaselineServers { nats: args.nats.clone(), postgres: args.postgres.clone() };
        let partitions = NatsConfig::default().partitions;
        summary.baselines = measure_baselines(&args, &servers, partitions, &run_id, &stop).await;
        summary
    };
    let scenario = summary.scenario_figures();
    summary.baselines.relate(scenario);
    Ok(summary)
}

/// The scenario of `shape` on `target`.
async fn scenario_run(
    args: &Args,
    shape: &Shape,
    target: &Target,
    stop: CancellationToken,
    run_id: &str,
) -> Result<Summary, LoadgenError> {
    match shape {
        Shape::Groups(plan) if args.scenario == ScenarioKind::Hold => {
            crate::hold::drive(args, plan, target, stop, run_id).await
        }
        Shape::Groups(plan) => drive(args, plan, target, stop, run_id).await,
        Shape::Dms(plan) => crate::dm::drive(args, plan, target, stop, run_id).await,
    }
}

/// The scenario on the local cell (with `--backlog`, its workers held back until the
/// sending ends and the drain timed), its workers' persist figures, then the baselines on the
/// cell's own NATS cluster and Postgres (its gateways and workers up, and idle).
async fn on_local_cell(
    args: &Args,
    shape: Option<&Shape>,
    cell: &mut TestCell,
    stop: &CancellationToken,
    run_id: &str,
) -> Result<Summary, LoadgenError> {
    let bases: Vec<String> = (0..cell.gateways.len()).map(|g| cell.gateway_url(g)).collect();
    let gateway_pids: Vec<u32> =
        cell.gateways.iter().filter_map(|g| g.process.as_ref().map(|p| p.pid())).collect();
    let mut pids = gateway_pids.clone();
    pids.extend(&args.pids);
    let backlog = (args.backlog && shape.is_some()).then(|| Arc::new(Notify::new()));
    let audit = args.audit.then(|| stores(args, cell.database_url(), cell.nats_urls()));
    let target = Target { bases, pids, gateway_pids, sending_over: backlog.clone(), audit };
    let mut summary = match (shape, backlog) {
        (Some(shape), Some(sending_over)) => {
            drain::hold_workers(cell).await;
            let ended = stop.child_token();
            // A run that settled had every message persisted: the drain ends by itself at its
            // next reading. One that did not ends the drain with it.
            let scenario = async {
                let summary = scenario_run(args, shape, &target, stop.clone(), run_id).await;
                if !summary.as_ref().is_ok_and(|s| s.settled) {
                    ended.cancel();
                }
                summary
            };
            let (summary, drained) = tokio::join!(scenario, drain::drain(cell, &sending_over, &ended));
            let mut summary = summary?;
            summary.drain = Some(match drained {
                Ok(figures) => Outcome::Measured(figures),
                Err(error) => Outcome::Failed { error: error.to_string() },
            });
            summary
        }
        (Some(shape), None) => scenario_run(args, shape, &target, stop.clone(), run_id).await?,
        (None, _) => Summary::without_scenario(args),
    };
    let worker = match shape.is_some() && !args.baselines.is_empty() {
        true => baseline::worker::scrape(cell).await,
        false => None,
    };
    let servers = BaselineServers { nats: cell.nats_urls(), postgres: Some(cell.database_url()) };
    summary.baselines = measure_baselines(args, &servers, cell.options.partitions, run_id, stop).await;
    summary.baselines.worker = worker;
    summary.baselines.drain = summary.drain.as_ref().and_then(Outcome::measured).copied();
    Ok(summary)
}

/// The baselines of `--baseline` on `servers` (nothing when none was asked for);
/// `partitions` unless `--baseline-partitions` says otherwise.
async fn measure_baselines(
    args: &Args,
    servers: &BaselineServers,
    partitions: u16,
    run_id: &str,
    stop: &CancellationToken,
) -> Baselines {
    if args.baselines.is_empty() {
        return Baselines::default();
    }
    let params = BaselineParams {
        kinds: args.baseline_kinds(),
        messages: args.baseline_messages,
        inflight: args.baseline_inflight,
        ack: args.baseline_ack,
        ack_batches: args.baseline_ack_batches,
        consumer_memory: args.baseline_consumer_memory,
        content_bytes: args.message_bytes,
        partitions: args.baseline_partitions.unwrap_or(partitions),
        replicas: args.baseline_replicas,
        insert_concurrency: args.baseline_insert_concurrency,
        sockets: args.fanout_sockets(),
        senders: args.senders,
        fanout_messages: args.baseline_fanout_messages,
        fanout_window: args.baseline_fanout_window,
        fanout_rate: args.baseline_fanout_rate,
        run_id: run_id.to_owned(),
    };
    baseline::runner::run(&params, servers, stop).await
}

/// The stores `--audit` judges.
fn stores(args: &Args, postgres: String, nats: Vec<String>) -> Stores {
    Stores {
        postgres,
        nats,
        subject_prefix: args.audit_subject_prefix.clone(),
        stream: args.audit_stream.clone(),
        wait: Duration::from_secs(args.audit_wait),
    }
}

async fn start_local(args: &Args) -> Result<TestCell, LoadgenError> {
    let options = CellOptions { gateways: args.local_gateways, ..Default::default() };
    TestCell::start(options).await.map_err(|e| LoadgenError::LocalCell(e.to_string()))
}

/// Builds, connects, sends (killing a gateway mid-run in reconnect-storm), settles and checks.
async fn drive(
    args: &Args,
    plan: &Plan,
    target: &Target,
    stop: CancellationToken,
    run_id: &str,
) -> Result<Summary, LoadgenError> {
    let members = scenario::build(plan, &target.bases, run_id, args.create_with).await?;
    let bare: Vec<_> = target.gateway_pids.iter().map(|p| proc_stats::sample(*p)).collect();
    let sockets: Vec<_> = futures::stream::iter(members)
        .map(|m| async move { client::connect(&m).await.map(|s| (m, s)) })
        .buffered(CONNECT_CONCURRENCY)
        .try_collect()
        .await?;
    let storm = args.scenario == ScenarioKind::ReconnectStorm;
    let victim = storm.then(|| {
        let on: Vec<usize> = sockets.iter().map(|(m, _)| m.gateway).collect();
        storm::victim(args, &target.gateway_pids, &on)
    });
    let before: Vec<_> = target.pids.iter().map(|p| proc_stats::sample(*p)).collect();
    let gateway_bytes_per_socket = proc_stats::growth_per(&bare, &before, sockets.len());
    let controls = Controls::new(&stop);
    let epoch = Instant::now();
    let start = epoch + LEAD_IN;
    let end = start + Duration::from_secs(args.duration);
    let redial = storm
        .then(|| Redial { ws_urls: Arc::new(target.bases.iter().map(|b| scenario::ws_url(b)).collect()) });
    let tasks = spawn_sockets(args, plan, sockets, redial, &controls, (epoch, start, end));
    let kill = victim.flatten().map(|v| {
        let at = start + Duration::from_secs_f64(args.kill_at_secs());
        tokio::spawn(storm::kill_at(v, target.bases.clone(), start, at))
    });
    let live =
        tokio::spawn(crate::live::show(controls.progress.clone(), end - epoch, controls.finish.clone()));
    tokio::select! {
        _ = tokio::time::sleep_until(end) => {}
        _ = stop.cancelled() => {}
    }
    if let Some(sending_over) = &target.sending_over {
        sending_over.notify_one();
    }
    let settled = controls.progress.settle(Duration::from_secs(args.settle), &stop).await;
    controls.finish.cancel();
    let _ = live.await;
    let mut records = crate::join::within(tasks, FINISH_GRACE).await;
    records.sort_by_key(|r| r.index);
    let processes = before
        .into_iter()
        .map(|b| ProcDelta { pid: b.pid, before: b, after: proc_stats::sample(b.pid) })
        .collect();
    let mut summary = summary(args, plan, &target.bases, &records, processes);
    summary.settled = settled;
    summary.expected_deliveries = controls.progress.expected();
    summary.gateway_bytes_per_socket = gateway_bytes_per_socket;
    if storm {
        let killed = match kill {
            Some(kill) => kill.await.ok(),
            None => None,
        };
        summary.storm = Some(StormFigures::new(killed, &merged(&records).recovery));
    }
    if let Some(stores) = &target.audit {
        summary.audit = Some(match audit::audit(stores, &crate::record::acked_by_channel(&records)).await {
            Ok(audit) => Outcome::Measured(audit),
            Err(error) => Outcome::Failed { error: error.to_string() },
        });
    }
    Ok(summary)
}

/// One task per socket, each sender on its own slot of the schedule.
fn spawn_sockets(
    args: &Args,
    plan: &Plan,
    sockets: Vec<(Member, ChatSocket)>,
    redial: Option<Redial>,
    controls: &Controls,
    (epoch, start, end): (Instant, Instant, Instant),
) -> JoinSet<SocketRecord> {
    let mut tasks = JoinSet::new();
    let senders = plan.senders();
    let mut rank = 0;
    for (member, socket) in sockets {
        let schedule = member.sends.then(|| {
            rank += 1;
            Schedule::for_sender(start, end, args.rate, senders, rank - 1)
        });
        let send = SendPlan { schedule, window: args.window, message_bytes: args.message_bytes, epoch };
        tasks.spawn(client::run(member, socket, send, redial.clone(), controls.clone()));
    }
    tasks
}

fn summary(
    args: &Args,
    plan: &Plan,
    bases: &[String],
    records: &[SocketRecord],
    processes: Vec<ProcDelta>,
) -> Summary {
    let tally = merged(records);
    let mut summary = Summary {
        scenario: Some(args.scenario),
        targets: bases.to_vec(),
        sockets: plan.users(),
        senders: plan.senders(),
        duration_s: args.duration as f64,
        settled: false,
        processes,
        verdict: check::check(records),
        ..Summary::without_scenario(args)
    };
    summary.figures(&tally);
    summary
}

/// The tallies of every record, merged.
pub fn merged(records: &[SocketRecord]) -> Tally {
    let mut tally = Tally::default();
    for record in records {
        tally.merge(&record.tally);
    }
    tally
}

/// Eight hex digits unique enough to keep this run's usernames apart from earlier runs'.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{:08x}", (nanos.as_nanos() as u64 ^ u64::from(std::process::id())) as u32)
}
