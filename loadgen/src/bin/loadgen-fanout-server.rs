//! `loadgen-fanout-server`: baseline (c)'s bare broadcast server, a process of its own so its
//! RSS and CPU can be read from `/proc` like a gateway's. Prints `listening <addr>` on stdout
//! once bound; ends when its stdin closes (loadgen, its parent, is done or gone), on Ctrl-C or
//! SIGTERM, or after `--max-seconds`, whichever comes first.

use clap::Parser;
use loadgen::baseline::fanout::server;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    about = "Baseline (c) of loadgen: a bare tokio-tungstenite broadcast server with the gateway's buffers."
)]
struct Options {
    /// Address to listen on (port 0: any free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Seconds after which the server ends by itself, whatever happens.
    #[arg(long, default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    max_seconds: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    shared::rlimit::raise_open_files();
    let listener = match tokio::net::TcpListener::bind(options.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("loadgen-fanout-server: binding {}: {e}", options.listen);
            return ExitCode::from(2);
        }
    };
    let bound = listener.local_addr().map_or_else(|_| options.listen.to_string(), |a| a.to_string());
    println!("listening {bound}");
    let _ = std::io::stdout().flush();
    let shutdown = CancellationToken::new();
    tokio::spawn(end_on_signals(shutdown.clone(), Duration::from_secs(options.max_seconds)));
    server::serve(listener, shutdown).await;
    ExitCode::SUCCESS
}

/// Cancels `shutdown` on stdin's end, Ctrl-C, SIGTERM or after `limit`.
async fn end_on_signals(shutdown: CancellationToken, limit: Duration) {
    let stdin_closed = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async {
        match term.as_mut() {
            Some(term) => term.recv().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = stdin_closed => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = terminated => {}
        _ = tokio::time::sleep(limit) => {}
    }
    shutdown.cancel();
}
