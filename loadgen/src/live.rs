//! Live progress on the terminal while the load runs: elapsed time, sends, acks and
//! deliveries so far. Drawn on stderr, and hidden when stderr is not a terminal.

use crate::measure::Progress;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the line is redrawn.
const TICK: Duration = Duration::from_millis(250);

/// Redraws the progress line until `done`; the bar counts seconds of sending.
pub async fn show(progress: Arc<Progress>, duration: Duration, done: CancellationToken) {
    let bar = ProgressBar::new(duration.as_secs());
    let style = ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} s  {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(TICK);
    while !done.is_cancelled() {
        tokio::select! {
            _ = done.cancelled() => break,
            _ = tick.tick() => {}
        }
        let [sent, acked, delivered, expected] = progress.counts();
        bar.set_position(started.elapsed().as_secs().min(duration.as_secs()));
        bar.set_message(format!("sent {sent}  acked {acked}  delivered {delivered}/{expected}"));
    }
    bar.finish_and_clear();
}
