//! `loadgen`: parses the flags, runs the load until done (or Ctrl-C), prints the summary,
//! writes `--out`, and exits 0 on a clean verdict, 1 on loss/duplicates/reordering (the
//! baselines' included), 2 on error (a baseline that could not be measured included).

use clap::Parser;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    let args = loadgen::Args::parse();
    if let Some(spec) = &args.hold_child {
        return match loadgen::hold::child(spec).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("loadgen holder: {e}");
                ExitCode::from(2)
            }
        };
    }
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    let out = args.out.clone();
    let summary = match loadgen::run::run(args, stop).await {
        Ok(summary) => summary,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    println!("{summary}");
    if let Some(path) = out
        && let Err(e) = summary.write_json(&path)
    {
        eprintln!("loadgen: {e}");
        return ExitCode::from(2);
    }
    if summary.baselines.failed() {
        eprintln!("loadgen: a baseline could not be measured (see above)");
        return ExitCode::from(2);
    }
    if summary.clean() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
