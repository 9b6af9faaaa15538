//! The baselines as the human summary prints them: each one's figures (or why there are
//! none), then the scenario as ratios of them beside issue 14's targets, and whether those
//! ratios say anything about capacity.

use crate::baseline::figures::{
    self, BaselineSetup, Baselines, ConsumeFigures, FanoutFigures, InsertFigures, Outcome, PublishFigures,
    WorkerPersist,
};
use crate::baseline::params::BaselineKind;
use crate::measure::Percentiles;
use std::fmt::{self, Formatter};

/// How the scenario went, for the note under the ratios; none when no scenario ran.
#[derive(Debug, Clone, Copy)]
pub struct ScenarioLoad {
    /// Every due send was sent and acked: acked/s is the offered rate.
    pub kept_up: bool,
}

/// Writes the block (nothing when no baseline was asked for).
pub fn write(f: &mut Formatter<'_>, baselines: &Baselines, scenario: Option<ScenarioLoad>) -> fmt::Result {
    let Some(setup) = &baselines.setup else { return Ok(()) };
    let when = if scenario.is_some() { "after the scenario, on its servers" } else { "alone" };
    write!(f, "\n  baselines, {when}")?;
    if setup.kinds.iter().any(|k| *k != BaselineKind::Fanout) {
        write!(
            f,
            ": {} messages of {} B (JSON), {} in flight, {} partitions, R{}",
            setup.messages, setup.payload_bytes, setup.inflight, setup.partitions, setup.replicas
        )?;
    }
    writeln!(f)?;
    match &baselines.publish {
        None => writeln!(f, "    (a) publish   not run")?,
        Some(outcome) => failed_or(f, "(a) publish", outcome, publish)?,
    }
    match &baselines.consume {
        None => writeln!(f, "    (b) consume   not run")?,
        Some(outcome) => failed_or(f, "(b) consume", outcome, |f, b| consume(f, b, setup))?,
    }
    match &baselines.fanout {
        None => writeln!(f, "    (c) fanout    not run")?,
        Some(outcome) => failed_or(f, "(c) fanout", outcome, fanout)?,
    }
    match &baselines.insert {
        None => writeln!(f, "    (d) insert    not run")?,
        Some(outcome) => failed_or(f, "(d) insert", outcome, insert)?,
    }
    if let Some(worker) = &baselines.worker {
        worker_line(f, worker)?;
    }
    match scenario {
        Some(load) => ratios(f, baselines, setup.inflight, load),
        None => write!(f, "    no scenario ran (--baseline-only): no ratios"),
    }
}

fn failed_or<T>(
    f: &mut Formatter<'_>,
    name: &str,
    outcome: &Outcome<T>,
    measured: impl Fn(&mut Formatter<'_>, &T) -> fmt::Result,
) -> fmt::Result {
    match outcome {
        Outcome::Measured(figures) => measured(f, figures),
        Outcome::Failed { error } => writeln!(f, "    {name:<13} FAILED: {error}"),
    }
}

fn spread(p: &Percentiles) -> String {
    format!("p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2} ms", p.p50, p.p90, p.p99, p.max)
}

/// ` (why n, why n)` when anything failed.
fn why(errors: &std::collections::BTreeMap<String, u64>) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let each: Vec<String> = errors.iter().map(|(why, n)| format!("{why} {n}")).collect();
    format!(" ({})", each.join(", "))
}

fn gone(deleted: bool, what: &str) -> String {
    format!("{what} {}", if deleted { "removed" } else { "LEFT BEHIND" })
}

fn publish(f: &mut Formatter<'_>, a: &PublishFigures) -> fmt::Result {
    writeln!(f, "    (a) publish   {:.1} msg/s  PubAck {}", a.msg_per_s, spread(&a.puback_ms))?;
    writeln!(
        f,
        "                  acked {} of {}, failed {}{}, duplicates {}; {}",
        a.acked,
        a.messages,
        a.failed,
        why(&a.errors),
        a.duplicates,
        gone(a.stream_deleted, "stream")
    )
}

fn consume(f: &mut Formatter<'_>, b: &ConsumeFigures, setup: &BaselineSetup) -> fmt::Result {
    let ack = serde_json::to_value(b.ack).ok().and_then(|v| v.as_str().map(str::to_owned));
    let (batch, state) = (setup.consume_batch, if setup.consumer_memory { "memory" } else { "file" });
    writeln!(
        f,
        "    (b) consume   {:.1} msg/s consumed (publish {:.1} msg/s), {} consumers ({state} state), batches ≤ {batch}, {} ack, {} batch(es) acking at once",
        b.consumed_per_s,
        b.publish.msg_per_s,
        b.consumers,
        ack.unwrap_or_default(),
        b.ack_batches
    )?;
    writeln!(f, "                  publish→ack {}", spread(&b.latency_ms))?;
    let l = &b.ledger;
    writeln!(
        f,
        "                  consumed {} of {} acked publishes ({} asked), missing {}, duplicated {}, unexpected {}, acks failed {}; {}",
        l.consumed,
        l.expected,
        b.publish.messages,
        l.missing,
        l.duplicated,
        l.unexpected,
        b.acks_failed,
        gone(b.publish.stream_deleted, "stream")
    )
}

fn kib(value: Option<u64>) -> String {
    value.map_or("?".to_owned(), |k| k.to_string())
}

fn fanout(f: &mut Formatter<'_>, c: &FanoutFigures) -> fmt::Result {
    writeln!(
        f,
        "    (c) fanout    {:.1} deliveries/s to {} sockets  send→deliver {}",
        c.deliveries_per_s,
        c.connected,
        spread(&c.latency_ms)
    )?;
    let rate = c.rate.map_or("as fast as the window allows".to_owned(), |r| format!("at {r} msg/s"));
    let l = &c.ledger;
    writeln!(
        f,
        "                  {} of {} messages of {} B sent by {} sender(s), window {}, {rate}{}",
        c.sent,
        c.messages,
        c.content_bytes,
        c.senders,
        c.window,
        if c.stalled { ", STALLED" } else { "" }
    )?;
    writeln!(
        f,
        "                  delivered {} of {} (missing {}, duplicated {}, unexpected {}), sockets {} of {} connected, {} closed early",
        l.delivered,
        l.expected,
        l.missing,
        l.duplicated,
        l.unexpected,
        c.connected,
        c.sockets,
        c.sockets_closed
    )?;
    let s = &c.server;
    let per_socket = s.bytes_per_idle_socket.map_or("?".to_owned(), |b| format!("{b:.0}"));
    let cpu = s.cpu_s.map_or("?".to_owned(), |c| format!("{c:.2}"));
    writeln!(
        f,
        "                  server pid {}: rss {} KiB bare → {} KiB idle ({per_socket} B per socket) → {} KiB loaded; cpu {cpu} s under the load; {}",
        s.pid,
        kib(s.rss_bare_kib),
        kib(s.rss_idle_kib),
        kib(s.rss_loaded_kib),
        if s.exited { "gone" } else { "STILL RUNNING" }
    )
}

fn insert(f: &mut Formatter<'_>, d: &InsertFigures) -> fmt::Result {
    writeln!(f, "    (d) insert    {:.1} rows/s  batch {}", d.rows_per_s, spread(&d.batch_ms))?;
    writeln!(
        f,
        "                  inserted {} of {} in {} batches ({} failed); {}",
        d.inserted,
        d.rows,
        d.batches,
        d.failed_batches,
        gone(d.table_dropped, "table")
    )
}

fn worker_line(f: &mut Formatter<'_>, w: &WorkerPersist) -> fmt::Result {
    writeln!(
        f,
        "    worker        {:.1} rows per persist-second ({} rows in {} batches, mean {:.1}, {:.3} s persisting)",
        w.rows_per_persist_s, w.persisted, w.batches, w.mean_batch, w.persist_s
    )
}

fn ratio(value: Option<f64>) -> String {
    value.map_or("—".to_owned(), |r| format!("{r:.3}"))
}

fn ratios(f: &mut Formatter<'_>, b: &Baselines, inflight: usize, load: ScenarioLoad) -> fmt::Result {
    let r = &b.ratios;
    writeln!(f, "    ratios (issue 14's targets; (a) and (b) ran {inflight} in flight):")?;
    let many = "at ≈1,000 sends in flight";
    writeln!(
        f,
        "      acked/s ÷ (a)  {:<8} target ≥ {:.2} {many}",
        ratio(r.acked_vs_publish),
        figures::PUBLISH_TARGET
    )?;
    writeln!(
        f,
        "      acked/s ÷ (b)  {:<8} target ≥ {:.2} {many}",
        ratio(r.acked_vs_consume),
        figures::CONSUME_TARGET
    )?;
    match (r.ack_p50_ms, r.ack_p50_bound_ms) {
        (Some(p50), Some(bound)) => {
            let verdict = if p50 <= bound { "within" } else { "ABOVE" };
            writeln!(
                f,
                "      send→ack p50 {p50:.2} ms vs 2 × p50(a) + 1 ms = {bound:.2} ms: {verdict} (target at ≈80 in flight)"
            )?;
        }
        _ => writeln!(f, "      send→ack p50 vs 2 × p50(a) + 1 ms: —")?,
    }
    writeln!(
        f,
        "      worker ÷ (d)   {:<8} target ≥ {:.2}",
        ratio(r.worker_vs_insert),
        figures::INSERT_TARGET
    )?;
    if r.drain_vs_insert.is_some() {
        writeln!(
            f,
            "      drain ÷ (d)    {:<8} target ≥ {:.2} (the worker with full batches, --backlog)",
            ratio(r.drain_vs_insert),
            figures::INSERT_TARGET
        )?;
    }
    fanout_ratios(f, b)?;
    let in_flight = r.scenario_in_flight.map_or("?".to_owned(), |n| format!("{n:.1}"));
    write!(f, "      the scenario had ≈{in_flight} sends in flight (acked/s × mean send→ack)")?;
    if load.kept_up {
        write!(f, "; it kept up with its offered rate, so acked/s is that rate, not the cell's capacity")?;
    }
    Ok(())
}

/// Target 4 (fan-out) and target 5 (memory per socket) against (c).
fn fanout_ratios(f: &mut Formatter<'_>, b: &Baselines) -> fmt::Result {
    let r = &b.ratios;
    let absolute = figures::FANOUT_DELIVERIES_TARGET;
    match r.delivered_per_s {
        Some(per_s) => writeln!(
            f,
            "      delivered/s ÷ (c) {:<8} target ≥ {:.2}, or ≥ {absolute:.0} deliveries/s (the broadcast: {per_s:.1}/s; at 10,000 members)",
            ratio(r.delivered_vs_fanout),
            figures::FANOUT_TARGET
        )?,
        None => writeln!(f, "      delivered/s ÷ (c) —        (the broadcast scenario only)")?,
    }
    let fanout = b.fanout.as_ref().and_then(Outcome::measured).and_then(|c| c.server.bytes_per_idle_socket);
    let bytes = |v: Option<f64>| v.map_or("?".to_owned(), |b| format!("{b:.0} B"));
    writeln!(
        f,
        "      rss/socket ÷ (c) {:<8} gateway {} vs (c) {} per socket; target ≤ {:.0} B per idle socket at 10k",
        ratio(r.socket_memory_vs_fanout),
        bytes(r.gateway_bytes_per_socket),
        bytes(fanout),
        figures::SOCKET_MEMORY_TARGET
    )
}
