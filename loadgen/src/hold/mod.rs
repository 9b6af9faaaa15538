//! The `hold` scenario (issue 14, target 5): many idle, authenticated, synced sockets, several
//! per user, spread over the gateways, over source addresses 127.0.0.1–250 and over holder
//! processes (each under the fd limit), held for `--duration` seconds while the gateway's
//! pings come and go; then what they cost each gateway, each holder and the kernel, per
//! socket, and whether every one of them was still open at the end.

pub mod holder;
pub mod holders;
pub mod plan;
pub mod spec;

use crate::cli::Args;
use crate::error::LoadgenError;
use crate::hold_figures::{HoldFigures, ProcessCost};
use crate::kernel;
use crate::kernel::KernelSockets;
use crate::proc_stats::{self, ProcDelta, ProcSample};
use crate::report::Summary;
use crate::scenario::{self, Plan, Target};
use holders::Holder;
use plan::Placement;
use spec::{HeldUser, HolderSpec, Opened, Released};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Sockets each holder opens at once.
const HOLDER_CONCURRENCY: usize = 16;
/// From the last socket opened to the reading of what they cost: the gateways' per-socket
/// work (presence, subscriptions) is done by then.
const SETTLE: Duration = Duration::from_secs(3);

/// Readings of the gateways, the holders and the kernel at one moment.
struct Readings {
    gateways: Vec<ProcSample>,
    holders: Vec<ProcSample>,
    kernel: KernelSockets,
}

impl Readings {
    fn take(gateway_pids: &[u32], holders: &[Holder]) -> Self {
        Self {
            gateways: gateway_pids.iter().map(|p| proc_stats::sample(*p)).collect(),
            holders: holders.iter().map(|h| proc_stats::sample(h.pid)).collect(),
            kernel: kernel::sample(),
        }
    }
}

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
    // Their REST clients' kept-alive connections go: the gateways' memory before the sockets
    // is then the memory of their sockets' absence, not of a thousand idle HTTP connections.
    drop(members);
    tokio::time::sleep(SETTLE).await;
    let dir = std::env::temp_dir().join(format!("loadgen-hold-{run_id}"));
    std::fs::create_dir_all(&dir)
        .map_err(|source| LoadgenError::Write { path: dir.display().to_string(), source })?;
    let bare = Readings::take(&target.gateway_pids, &[]);
    let started = Instant::now();
    let mut holders = start_holders(args, target, &dir, &users, &placed)?;
    let opened: Vec<Opened> =
        futures::future::try_join_all(holders.iter_mut().map(|h| h.report::<Opened>())).await?;
    let open_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(SETTLE).await;
    let held = Readings::take(&target.gateway_pids, &holders);
    let others_before: Vec<_> = target.pids.iter().map(|p| proc_stats::sample(*p)).collect();
    let hold_start = Instant::now();
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(args.duration)) => {}
        _ = stop.cancelled() => {}
    }
    let held_s = hold_start.elapsed().as_secs_f64();
    let end = Readings::take(&target.gateway_pids, &holders);
    for h in &mut holders {
        h.release().await;
    }
    let released: Vec<Released> =
        futures::future::try_join_all(holders.iter_mut().map(|h| h.report::<Released>())).await?;
    let holder_pids: Vec<u32> = holders.iter().map(|h| h.pid).collect();
    futures::future::join_all(holders.into_iter().map(Holder::finish)).await;
    let _ = std::fs::remove_dir(&dir);

    let mut figures = HoldFigures {
        sockets: placed.len(),
        users: users.len(),
        sockets_per_user: args.sockets_per_user,
        processes: args.processes,
        open_s,
        held_s,
        ..HoldFigures::default()
    };
    figures.add_reports(&opened, &released);
    figures.add_costs(target, &placed, &holder_pids, &opened, [&bare, &held, &end]);
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

/// One holder process per `--processes`, each with its share of `placed`.
fn start_holders(
    args: &Args,
    target: &Target,
    dir: &std::path::Path,
    users: &[HeldUser],
    placed: &[Placement],
) -> Result<Vec<Holder>, LoadgenError> {
    let binary = match &args.child_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe().map_err(|e| LoadgenError::Holder(format!("own executable: {e}")))?,
    };
    let ws_urls: Vec<String> = target.bases.iter().map(|b| scenario::ws_url(b)).collect();
    (0..args.processes)
        .map(|p| {
            let sockets = placed.iter().filter(|s| s.process == p).copied().collect();
            let spec = HolderSpec {
                ws_urls: ws_urls.clone(),
                users: users.to_vec(),
                sockets,
                concurrency: HOLDER_CONCURRENCY,
            };
            Holder::start(&binary, dir, p, &spec)
        })
        .collect()
}

impl HoldFigures {
    /// The holders' two reports, summed.
    fn add_reports(&mut self, opened: &[Opened], released: &[Released]) {
        for o in opened {
            self.opened += o.opened;
            self.failed += o.failed;
            for (error, n) in &o.errors {
                *self.open_errors.entry(error.clone()).or_default() += n;
            }
        }
        for r in released {
            self.held += r.held;
            self.frames += r.frames;
            for (reason, n) in &r.dropped {
                *self.dropped.entry(reason.clone()).or_default() += n;
            }
        }
        self.opened_per_s = self.opened as f64 / self.open_s.max(1e-9);
    }

    /// What the gateways, the holders and the kernel grew by: readings before the sockets,
    /// with them held, and at the end of the hold.
    fn add_costs(
        &mut self,
        target: &Target,
        placed: &[Placement],
        holder_pids: &[u32],
        opened: &[Opened],
        [bare, held, end]: [&Readings; 3],
    ) {
        self.kernel_before = bare.kernel;
        self.kernel_held = held.kernel;
        self.kernel_per_socket = kernel::per_socket(&bare.kernel, &held.kernel, self.opened);
        self.gateways = (0..target.gateway_pids.len())
            .map(|g| ProcessCost {
                pid: target.gateway_pids[g],
                sockets: placed.iter().filter(|s| s.gateway == g).count(),
                rss_before_kib: bare.gateways[g].rss_kib,
                rss_held_kib: held.gateways[g].rss_kib,
                rss_end_kib: end.gateways[g].rss_kib,
            })
            .collect();
        self.holders = holder_pids
            .iter()
            .enumerate()
            .map(|(i, pid)| ProcessCost {
                pid: *pid,
                sockets: opened[i].opened,
                rss_before_kib: Some(opened[i].rss_before_kib),
                rss_held_kib: held.holders[i].rss_kib,
                rss_end_kib: end.holders[i].rss_kib,
            })
            .collect();
    }
}

/// Runs a holder process (`--hold-child SPEC`).
pub async fn child(path: &std::path::Path) -> Result<(), LoadgenError> {
    holder::run(path).await.map_err(LoadgenError::Holder)
}
