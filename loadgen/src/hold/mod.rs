//! The `hold` scenario (issue 14, target 5): many idle, authenticated, synced sockets, several
//! per user, spread over the gateways, over source addresses 127.0.0.1–250 and over holder
//! processes (each under the fd limit), held for `--duration` seconds while the gateway's
//! pings come and go; then what they cost each gateway, each holder and the kernel, per
//! socket, and whether every one of them was still open at the end.

pub mod figures;
pub mod holder;
pub mod holders;
pub mod kernel;
pub mod plan;
pub mod spec;

use crate::cli::Args;
use crate::error::LoadgenError;
use crate::proc_stats::{self, ProcDelta};
use crate::report::Summary;
use crate::scenario::{self, Plan, Target};
use figures::{HoldFigures, ProcessCost};
use holders::Holder;
use spec::{HeldUser, HolderSpec, Opened, Released};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Sockets each holder opens at once.
const HOLDER_CONCURRENCY: usize = 16;
/// From the last socket opened to the reading of what they cost: the gateways' per-socket
/// work (presence, subscriptions) is done by then.
const SETTLE: Duration = Duration::from_secs(3);

/// Builds the users and channels, opens every socket through the holders, measures, holds,
/// releases.
pub async fn drive(
    args: &Args,
    plan: &Plan,
    target: &Target,
    stop: CancellationToken,
    run_id: &str,
) -> Result<Summary, LoadgenError> {
    let members = scenario::build(plan, &target.bases, run_id, args.create_with).await?;
    let placed = plan::place(members.len(), args.sockets_per_user, target.bases.len(), args.processes);
    let users: Vec<HeldUser> = members
        .iter()
        .map(|m| HeldUser { access_token: m.client.access_token.clone(), channel: m.channel })
        .collect();
    let user_count = members.len();
    // Their REST clients' kept-alive connections go: the gateways' memory before the sockets
    // is then the memory of their sockets' absence, not of a thousand idle HTTP connections.
    drop(members);
    tokio::time::sleep(SETTLE).await;
    let ws_urls: Vec<String> = target.bases.iter().map(|b| scenario::ws_url(b)).collect();
    let binary = match &args.child_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe().map_err(|e| LoadgenError::Holder(format!("own executable: {e}")))?,
    };
    let dir = std::env::temp_dir().join(format!("loadgen-hold-{run_id}"));
    std::fs::create_dir_all(&dir)
        .map_err(|source| LoadgenError::Write { path: dir.display().to_string(), source })?;
    let gateways_bare: Vec<_> = target.gateway_pids.iter().map(|p| proc_stats::sample(*p)).collect();
    let kernel_before = kernel::sample();
    let started = Instant::now();
    let mut holders = Vec::with_capacity(args.processes);
    for p in 0..args.processes {
        let sockets = placed.iter().filter(|s| s.process == p).copied().collect();
        let spec =
            HolderSpec { ws_urls: ws_urls.clone(), users: users.clone(), sockets, concurrency: HOLDER_CONCURRENCY };
        holders.push(Holder::start(&binary, &dir, p, &spec)?);
    }
    let opened: Vec<Opened> =
        futures::future::try_join_all(holders.iter_mut().map(|h| h.report::<Opened>())).await?;
    let open_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(SETTLE).await;
    let gateways_held: Vec<_> = target.gateway_pids.iter().map(|p| proc_stats::sample(*p)).collect();
    let holders_held: Vec<_> = holders.iter().map(|h| proc_stats::sample(h.pid)).collect();
    let kernel_held = kernel::sample();
    let others_before: Vec<_> = target.pids.iter().map(|p| proc_stats::sample(*p)).collect();
    let hold_start = Instant::now();
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(args.duration)) => {}
        _ = stop.cancelled() => {}
    }
    let held_s = hold_start.elapsed().as_secs_f64();
    let gateways_end: Vec<_> = target.gateway_pids.iter().map(|p| proc_stats::sample(*p)).collect();
    let holders_end: Vec<_> = holders.iter().map(|h| proc_stats::sample(h.pid)).collect();
    for h in &mut holders {
        h.release().await;
    }
    let released: Vec<Released> =
        futures::future::try_join_all(holders.iter_mut().map(|h| h.report::<Released>())).await?;
    let holder_sockets: Vec<(u32, usize)> = holders.iter().map(|h| (h.pid, h.sockets)).collect();
    futures::future::join_all(holders.into_iter().map(Holder::finish)).await;
    let _ = std::fs::remove_dir(&dir);

    let mut figures = HoldFigures {
        sockets: placed.len(),
        users: user_count,
        sockets_per_user: args.sockets_per_user,
        processes: args.processes,
        open_s,
        held_s,
        kernel_before,
        kernel_held,
        ..HoldFigures::default()
    };
    for o in &opened {
        figures.opened += o.opened;
        figures.failed += o.failed;
        for (error, n) in &o.errors {
            *figures.open_errors.entry(error.clone()).or_default() += n;
        }
    }
    for r in &released {
        figures.held += r.held;
        figures.frames += r.frames;
        for (reason, n) in &r.dropped {
            *figures.dropped.entry(reason.clone()).or_default() += n;
        }
    }
    figures.opened_per_s = figures.opened as f64 / open_s.max(1e-9);
    figures.kernel_per_socket = kernel::per_socket(&kernel_before, &kernel_held, figures.opened);
    figures.gateways = (0..target.gateway_pids.len())
        .map(|g| ProcessCost {
            pid: target.gateway_pids[g],
            sockets: placed.iter().filter(|s| s.gateway == g).count(),
            rss_before_kib: gateways_bare[g].rss_kib,
            rss_held_kib: gateways_held[g].rss_kib,
            rss_end_kib: gateways_end[g].rss_kib,
        })
        .collect();
    figures.holders = holder_sockets
        .iter()
        .enumerate()
        .map(|(i, (pid, _))| ProcessCost {
            pid: *pid,
            sockets: opened[i].opened,
            rss_before_kib: Some(opened[i].rss_before_kib),
            rss_held_kib: holders_held[i].rss_kib,
            rss_end_kib: holders_end[i].rss_kib,
        })
        .collect();
    let processes = others_before
        .into_iter()
        .map(|b| ProcDelta { pid: b.pid, before: b, after: proc_stats::sample(b.pid) })
        .collect();
    Ok(Summary {
        scenario: Some(args.scenario),
        targets: target.bases.clone(),
        sockets: figures.sockets,
        duration_s: args.duration as f64,
        settled: true,
        processes,
        gateway_bytes_per_socket: figures.gateway_bytes_per_socket(),
        hold: Some(figures),
        ..Summary::without_scenario(args)
    })
}

/// Runs a holder process (`--hold-child SPEC`).
pub async fn child(path: &std::path::Path) -> Result<(), LoadgenError> {
    holder::run(path).await.map_err(LoadgenError::Holder)
}
