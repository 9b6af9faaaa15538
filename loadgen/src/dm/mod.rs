//! dm-storm: channel creation under load. Every user has a socket open; at one instant they
//! all start opening their dms through the REST API and send the first messages into each
//! as soon as it is opened. Measured: dm creations per second and their latency, errors by
//! status and code, and the sends and deliveries of those first messages with the usual
//! verdict (the peers learn of each dm from its first message).

pub mod open;
pub mod user;

use crate::check;
use crate::cli::Args;
use crate::client::Controls;
use crate::dm_figures::DmFigures;
use crate::error::LoadgenError;
use crate::measure::Tally;
use crate::proc_stats::{self, ProcDelta};
use crate::record::SocketRecord;
use crate::report::Summary;
use crate::scenario::{self, DmPlan, Target};
use futures::{StreamExt, TryStreamExt};
use open::OpenTally;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use user::{DmUser, FollowTally, Timing, UserResult};

/// Sockets opening at once.
const CONNECT_CONCURRENCY: usize = 16;
/// From the last socket connected to the storm.
const LEAD_IN: Duration = Duration::from_millis(200);
/// How long the storm (every dm opened) may take at most.
const STORM_LIMIT: Duration = Duration::from_secs(600);
/// After the storm, how long deliveries may take before the users are told to catch up by
/// listing their channels (at most half of `--settle`).
const LIVE_GRACE: Duration = Duration::from_secs(5);
const FINISH_GRACE: Duration = Duration::from_secs(10);

/// The figures of the storm from the users' merged tallies.
fn figures(planned: usize, open: &OpenTally, follow: &FollowTally) -> DmFigures {
    let storm = match (open.first_request, open.last_answer) {
        (Some(first), Some(last)) => last.saturating_duration_since(first).as_secs_f64(),
        _ => 0.0,
    };
    let opened = open.created + open.existed;
    DmFigures {
        planned,
        opened,
        created: open.created,
        existed: open.existed,
        retries: open.retries,
        failed: open.failed,
        storm_s: storm,
        opened_per_s: if storm > 0.0 { opened as f64 / storm } else { 0.0 },
        create_ms: open.latency.percentiles(),
        errors: open.errors.clone(),
        not_a_member_resends: follow.not_a_member_resends,
        gap_syncs: follow.gap_syncs,
        catch_up_syncs: follow.catch_up_syncs,
        delivered_by_sync: follow.delivered_by_sync,
    }
}

/// Registers, connects, storms, settles (catching up if deliveries are missing) and checks.
pub async fn drive(
    args: &Args,
    plan: &DmPlan,
    target: &Target,
    stop: CancellationToken,
    run_id: &str,
) -> Result<Summary, LoadgenError> {
    let clients = scenario::register(plan.users, &target.bases, run_id).await?;
    let ws: Vec<String> = target.bases.iter().map(|b| scenario::ws_url(b)).collect();
    let sockets: Vec<_> = futures::stream::iter(clients.iter().enumerate())
        .map(|(u, c)| {
            let url = ws[u % ws.len()].clone();
            async move { c.resume(&url, &[]).await }
        })
        .buffered(CONNECT_CONCURRENCY)
        .try_collect()
        .await?;
    let before: Vec<_> = target.pids.iter().map(|p| proc_stats::sample(*p)).collect();
    let controls = Controls::new(&stop);
    let epoch = Instant::now();
    let timing = Timing {
        epoch,
        start: epoch + LEAD_IN,
        catch_up: CancellationToken::new(),
        users_done: Arc::new(AtomicUsize::new(0)),
    };
    let mut tasks = JoinSet::new();
    for (index, socket) in sockets.into_iter().enumerate() {
        let peers = plan.peers[index].iter().map(|p| (*p, clients[*p].user_id)).collect();
        let user = DmUser {
            index,
            client: clients[index].clone(),
            peers,
            messages: plan.messages,
            message_bytes: args.message_bytes,
        };
        tasks.spawn(user::run(user, socket, timing.clone(), controls.clone()));
    }
    let settled = storm_and_settle(args, plan, &controls, &timing).await;
    controls.finish.cancel();
    let results = crate::join::within(tasks, FINISH_GRACE).await;
    let processes = before
        .into_iter()
        .map(|b| ProcDelta { pid: b.pid, before: b, after: proc_stats::sample(b.pid) })
        .collect();
    let mut summary = summary(args, plan, target, results, processes);
    summary.settled = settled;
    summary.expected_deliveries = controls.progress.expected();
    Ok(summary)
}

/// Waits for the storm (every dm opened, every first message written and answered), then
/// for the deliveries; if some are still missing after `LIVE_GRACE`, tells every user to
/// catch up, and waits the rest of `--settle`. True when everything arrived.
async fn storm_and_settle(args: &Args, plan: &DmPlan, controls: &Controls, timing: &Timing) -> bool {
    let progress = &controls.progress;
    let storm_end = Instant::now() + STORM_LIMIT;
    let live = tokio::spawn(crate::live::show(progress.clone(), Duration::ZERO, controls.finish.clone()));
    while Instant::now() < storm_end && !controls.stop.is_cancelled() {
        let done = timing.users_done.load(Ordering::Relaxed);
        if done >= plan.users && progress.in_flight() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let limit = Duration::from_secs(args.settle);
    let grace = LIVE_GRACE.min(limit / 2);
    let mut settled = progress.settle(grace, &controls.stop).await;
    if !settled {
        timing.catch_up.cancel();
        settled = progress.settle(limit - grace, &controls.stop).await;
    }
    live.abort();
    settled
}

fn summary(
    args: &Args,
    plan: &DmPlan,
    target: &Target,
    results: Vec<UserResult>,
    processes: Vec<ProcDelta>,
) -> Summary {
    let (mut tally, mut open, mut follow) = (Tally::default(), OpenTally::default(), FollowTally::default());
    let mut records: Vec<SocketRecord> = Vec::new();
    let mut opened = Vec::new();
    for result in results {
        tally.merge(&result.tally);
        open.merge(&result.open);
        follow.merge(&result.follow);
        records.extend(result.records);
        opened.extend(result.opened);
    }
    // A peer that never heard of a dm it is in still owes its messages.
    let known: HashSet<_> = records.iter().map(|r| (r.index, r.channel)).collect();
    for (channel, peer) in opened {
        if !known.contains(&(peer, channel)) {
            records.push(SocketRecord::new(peer, channel));
        }
    }
    let dm = figures(plan.dms(), &open, &follow);
    let mut summary = Summary {
        scenario: Some(args.scenario),
        targets: target.bases.clone(),
        sockets: plan.users,
        senders: plan.users,
        duration_s: dm.storm_s.max(f64::MIN_POSITIVE),
        settled: false,
        processes,
        verdict: check::check(&records),
        ..Summary::without_scenario(args)
    };
    summary.figures(&tally);
    summary.dm = Some(dm);
    summary
}
