//! The result of a run: a human summary (`Display`) and the same as JSON for `--out`.

use crate::audit::Audit;
use crate::baseline::Baselines;
use crate::baseline::display::{self, ScenarioLoad};
use crate::baseline::figures::{DrainFigures, Outcome, ScenarioFigures};
use crate::check::Verdict;
use crate::cli::Args;
use crate::dm_figures::DmFigures;
use crate::error::LoadgenError;
use crate::hold_figures::HoldFigures;
use crate::measure::{Percentiles, Tally};
use crate::proc_stats::ProcDelta;
use crate::storm::StormFigures;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// None with `--baseline-only`: every scenario figure below is then zero.
    pub scenario: Option<crate::cli::ScenarioKind>,
    pub params: Args,
    pub targets: Vec<String>,
    pub sockets: usize,
    pub senders: usize,
    /// Seconds of sending (the schedule), the denominator of the rates.
    pub duration_s: f64,
    /// Whether every in-flight send and delivery came in before the settle deadline.
    pub settled: bool,
    pub scheduled: u64,
    pub sent: u64,
    pub acked: u64,
    pub failed: u64,
    pub skipped_window_full: u64,
    pub unacked: u64,
    pub delivered: u64,
    pub expected_deliveries: u64,
    pub acked_per_s: f64,
    pub delivered_per_s: f64,
    pub ack_ms: Percentiles,
    pub deliver_ms: Percentiles,
    pub errors: BTreeMap<String, u64>,
    pub reconnects: u64,
    /// reconnect-storm: the kill and the clients' recovery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storm: Option<StormFigures>,
    /// dm-storm: the dm creations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dm: Option<DmFigures>,
    /// hold: the sockets held and what they cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<HoldFigures>,
    /// `--backlog`: the workers' drain of the stream once the sending ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain: Option<Outcome<DrainFigures>>,
    pub processes: Vec<ProcDelta>,
    /// The measured gateways' RSS growth from before their sockets connected to the "before"
    /// reading (sockets open, idle), per socket (a local cell only).
    pub gateway_bytes_per_socket: Option<f64>,
    pub verdict: Verdict,
    /// `--audit`: the cell's stores judged for the run's channels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<Outcome<Audit>>,
    /// The same-run baselines (`--baseline`), and the scenario as ratios of them.
    pub baselines: Baselines,
}

impl Summary {
    /// The figures of a run from its merged tally.
    pub fn figures(&mut self, tally: &Tally) {
        self.scheduled = tally.scheduled;
        self.sent = tally.sent;
        self.acked = tally.acked;
        self.failed = tally.failed;
        self.skipped_window_full = tally.skipped_window_full;
        self.unacked = tally.unacked;
        self.delivered = tally.delivered;
        self.acked_per_s = tally.acked as f64 / self.duration_s;
        self.delivered_per_s = tally.delivered as f64 / self.duration_s;
        self.ack_ms = tally.ack.percentiles();
        self.deliver_ms = tally.deliver.percentiles();
        self.errors = tally.errors.clone();
        self.reconnects = tally.recovery.reconnects;
    }

    /// A summary of no scenario, for `--baseline-only` (and the zeros a scenario's summary
    /// starts from).
    pub fn without_scenario(args: &Args) -> Self {
        Self {
            scenario: None,
            params: args.clone(),
            targets: Vec::new(),
            sockets: 0,
            senders: 0,
            duration_s: 0.0,
            settled: true,
            scheduled: 0,
            sent: 0,
            acked: 0,
            failed: 0,
            skipped_window_full: 0,
            unacked: 0,
            delivered: 0,
            expected_deliveries: 0,
            acked_per_s: 0.0,
            delivered_per_s: 0.0,
            ack_ms: Percentiles::default(),
            deliver_ms: Percentiles::default(),
            errors: BTreeMap::new(),
            reconnects: 0,
            storm: None,
            dm: None,
            hold: None,
            drain: None,
            processes: Vec::new(),
            gateway_bytes_per_socket: None,
            verdict: Verdict::default(),
            audit: None,
            baselines: Baselines::default(),
        }
    }

    /// What the baselines' ratios need of the scenario (none when no scenario ran).
    pub fn scenario_figures(&self) -> Option<ScenarioFigures> {
        self.scenario?;
        Some(ScenarioFigures {
            acked_per_s: self.acked_per_s,
            ack_p50_ms: self.ack_ms.p50,
            ack_mean_ms: self.ack_ms.mean,
            delivered_per_s: self.delivered_per_s,
            broadcast: self.scenario == Some(crate::cli::ScenarioKind::Broadcast),
            gateway_bytes_per_socket: self.gateway_bytes_per_socket,
        })
    }

    /// A clean verdict over a run that settled, and every baseline that ran lost, duplicated
    /// and left nothing. A run that did not settle judged only what came before its deadline:
    /// a cell that acked nothing would look clean.
    pub fn clean(&self) -> bool {
        self.settled
            && self.verdict.clean()
            && self.baselines.clean()
            && self.hold.as_ref().is_none_or(HoldFigures::clean)
            && !matches!(self.drain, Some(Outcome::Failed { .. }))
            && self.audit.as_ref().is_none_or(|a| a.measured().is_some_and(Audit::clean))
    }

    /// Writes the summary as pretty JSON to `path`.
    pub fn write_json(&self, path: &Path) -> Result<(), LoadgenError> {
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(path, json + "\n")
            .map_err(|source| LoadgenError::Write { path: path.display().to_string(), source })
    }
}

fn percentiles(f: &mut fmt::Formatter<'_>, name: &str, p: &Percentiles) -> fmt::Result {
    writeln!(
        f,
        "  {name:<13} p50 {:.2}  p90 {:.2}  p99 {:.2}  p999 {:.2}  max {:.2} ms  (n={})",
        p.p50, p.p90, p.p99, p.p999, p.max, p.count
    )
}

fn storm_lines(f: &mut fmt::Formatter<'_>, s: &StormFigures) -> fmt::Result {
    match &s.killed {
        Some(k) => writeln!(
            f,
            "  killed pid {} ({}, {} sockets) at {:.1} s{}",
            k.pid,
            k.gateway.as_deref().unwrap_or("gateway"),
            k.sockets.map_or("?".into(), |n| n.to_string()),
            k.at_s,
            k.error.as_ref().map_or(String::new(), |e| format!(" FAILED: {e}"))
        )?,
        None => writeln!(f, "  killed nothing (no gateway to kill)")?,
    }
    writeln!(
        f,
        "  sockets dropped {}  reconnects {} ({} attempts, {} gave up)  resends {}",
        s.sockets_dropped, s.reconnects, s.reconnect_attempts, s.gave_up, s.resends
    )?;
    writeln!(
        f,
        "  caught up {} of {} drops, {} within 10 s",
        s.caught_up, s.sockets_dropped, s.caught_up_within_10s
    )?;
    percentiles(f, "drop→caught up", &s.catch_up_ms)
}

fn drain_line(f: &mut fmt::Formatter<'_>, d: &DrainFigures) -> fmt::Result {
    writeln!(
        f,
        "  drain {:.1} rows/s: {} of {} persisted in {} batches (mean {:.1}); first row {:.2} s, last {:.2} s after the workers started",
        d.rows_per_s, d.persisted, d.backlog, d.batches, d.mean_batch, d.first_row_s, d.total_s
    )
}

fn dm_lines(f: &mut fmt::Formatter<'_>, d: &DmFigures) -> fmt::Result {
    writeln!(
        f,
        "  dms opened {} of {} ({} created, {} existed) in {:.2} s: {:.1}/s  retries {}  failed {}",
        d.opened, d.planned, d.created, d.existed, d.storm_s, d.opened_per_s, d.retries, d.failed
    )?;
    percentiles(f, "dm create", &d.create_ms)?;
    writeln!(f, "  dm errors {:?}", d.errors)?;
    writeln!(
        f,
        "  not_a_member resends {}  gap syncs {}  catch-up syncs {} (deliveries by sync {})",
        d.not_a_member_resends, d.gap_syncs, d.catch_up_syncs, d.delivered_by_sync
    )
}

/// The audit's figures, or why there are none.
fn audit_line(f: &mut fmt::Formatter<'_>, audit: Option<&Outcome<Audit>>) -> fmt::Result {
    match audit {
        Some(Outcome::Measured(a)) => writeln!(
            f,
            "  audit {}: {} channels, {} acked; Postgres {} rows, stream {}; acked not stored {}, stored twice {}, seq holes {}, seqs reused {} (waited {:.1} s)",
            if a.clean() { "OK" } else { "FAIL" },
            a.channels,
            a.acked,
            a.stored,
            a.in_stream,
            a.acked_not_stored,
            a.stored_twice,
            a.seq_holes,
            a.seq_reused,
            a.waited_s
        ),
        Some(Outcome::Failed { error }) => writeln!(f, "  audit FAILED: {error}"),
        None => Ok(()),
    }
}

impl Summary {
    /// The load the run was asked for: a dm storm's shape or a rate's.
    fn load_line(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.dm {
            Some(_) => writeln!(
                f,
                "  sockets {}, {} dms each, {} messages into each, {} B; rates over the storm's {:.2} s",
                self.sockets,
                self.params.dms,
                self.params.dm_messages,
                self.params.message_bytes,
                self.duration_s
            ),
            None => writeln!(
                f,
                "  sockets {} (senders {}), target {} msg/s for {} s, window {}, {} B",
                self.sockets,
                self.senders,
                self.params.rate,
                self.duration_s,
                self.params.window,
                self.params.message_bytes
            ),
        }
    }

    /// Each watched process's RSS and CPU, and the gateway's memory per socket.
    fn process_lines(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.processes {
            let rss = |s: &crate::proc_stats::ProcSample| s.rss_kib.map_or("?".into(), |k| k.to_string());
            let cpu = p.cpu_seconds().map_or("?".into(), |c| format!("{c:.2}"));
            writeln!(f, "  pid {}: rss {} → {} KiB, cpu {cpu} s", p.pid, rss(&p.before), rss(&p.after))?;
        }
        if let Some(bytes) = self.gateway_bytes_per_socket {
            writeln!(f, "  gateway rss per socket {bytes:.0} B (growth over the sockets' connection)")?;
        }
        Ok(())
    }

    /// The checker's verdict on every delivery.
    fn verdict_line(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = &self.verdict;
        let word = match (v.clean(), self.settled) {
            (false, _) => "FAIL",
            (true, false) => "UNSETTLED (only what came before the deadline was judged)",
            (true, true) => "OK",
        };
        write!(
            f,
            "  verdict {word}: lost {} / duplicated {} / reordered {} (gaps {})",
            v.lost, v.duplicated, v.reordered, v.gaps
        )
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scenario.is_none() {
            write!(f, "loadgen: baselines only, no scenario")?;
            return display::write(f, &self.baselines, None);
        }
        let kind = serde_json::to_value(self.scenario).ok().and_then(|v| v.as_str().map(str::to_owned));
        writeln!(f, "loadgen: {} on {}", kind.unwrap_or_default(), self.targets.join(", "))?;
        if let Some(hold) = &self.hold {
            write!(f, "{hold}")?;
            let word = if hold.clean() { "OK" } else { "FAIL" };
            write!(f, "  verdict {word}: {} of {} sockets held to the end", hold.held, hold.sockets)?;
            return display::write(f, &self.baselines, None);
        }
        self.load_line(f)?;
        writeln!(
            f,
            "  scheduled {}  sent {}  acked {}  failed {}  skipped_window_full {}  unacked {}",
            self.scheduled, self.sent, self.acked, self.failed, self.skipped_window_full, self.unacked
        )?;
        writeln!(
            f,
            "  acked {:.1}/s  delivered {} of {} ({:.1}/s)  settled {}  reconnects {}",
            self.acked_per_s,
            self.delivered,
            self.expected_deliveries,
            self.delivered_per_s,
            self.settled,
            self.reconnects
        )?;
        percentiles(f, "send→ack", &self.ack_ms)?;
        percentiles(f, "send→deliver", &self.deliver_ms)?;
        writeln!(f, "  errors {:?}", self.errors)?;
        if let Some(storm) = &self.storm {
            storm_lines(f, storm)?;
        }
        if let Some(dm) = &self.dm {
            dm_lines(f, dm)?;
        }
        match &self.drain {
            Some(Outcome::Measured(d)) => drain_line(f, d)?,
            Some(Outcome::Failed { error }) => writeln!(f, "  drain FAILED: {error}")?,
            None => {}
        }
        self.process_lines(f)?;
        audit_line(f, self.audit.as_ref())?;
        self.verdict_line(f)?;
        let kept_up = self.acked == self.scheduled && self.scheduled > 0;
        display::write(f, &self.baselines, Some(ScenarioLoad { kept_up }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn a_clean_verdict_of_a_run_that_did_not_settle_is_not_clean() {
        let args = crate::cli::Args::try_parse_from(["loadgen", "--local"]).expect("parses");
        let mut summary = Summary { scenario: Some(args.scenario), ..Summary::without_scenario(&args) };
        assert!(summary.clean(), "{summary}");
        assert!(summary.to_string().contains("verdict OK"), "{summary}");
        summary.settled = false;
        assert!(!summary.clean());
        assert!(summary.to_string().contains("verdict UNSETTLED"), "{summary}");
    }
}
