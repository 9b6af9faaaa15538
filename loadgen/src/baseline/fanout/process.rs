//! The fan-out server as a child process: found next to loadgen's own executable (or in
//! `CHAT_BIN_DIR`), started on a free loopback port, read from `/proc` like a gateway, and
//! stopped by closing its stdin (killed if it does not end in time; never outlives loadgen).

use crate::baseline::error::BaselineError;
use crate::proc_stats::{self, ProcSample};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The server binary's name (`loadgen/src/bin/`).
pub const SERVER_BIN: &str = "loadgen-fanout-server";
/// How long the server may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long it may take to end once its stdin is closed, before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Its own limit, in case loadgen is stopped in a way that leaves it (loadgen's run is
/// bounded by 600 s per baseline, plus set-up).
const SERVER_MAX_SECONDS: u64 = 900;

/// A running fan-out server.
pub struct ServerProcess {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
}

/// Where the server binary is: `CHAT_BIN_DIR`, else beside the running executable (or one
/// level up, from cargo's `deps/` for tests).
pub fn server_path() -> PathBuf {
    if let Some(dir) = std::env::var_os("CHAT_BIN_DIR") {
        return Path::new(&dir).join(SERVER_BIN);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.pop();
    }
    dir.join(SERVER_BIN)
}

/// Starts the server on a free port of 127.0.0.1 and waits for its address.
pub async fn start() -> Result<ServerProcess, BaselineError> {
    let path = server_path();
    let failed = |reason: String| BaselineError::ServerStart { path: path.display().to_string(), reason };
    let mut child = Command::new(&path)
        .args(["--listen", "127.0.0.1:0", "--max-seconds", &SERVER_MAX_SECONDS.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    let pid = child.id().ok_or_else(|| failed("exited at once".into()))?;
    let stdout = child.stdout.take().ok_or_else(|| failed("no stdout".into()))?;
    let mut line = String::new();
    let mut stdout = BufReader::new(stdout);
    let read = stdout.read_line(&mut line);
    match tokio::time::timeout(START_TIMEOUT, read).await {
        Ok(Ok(n)) if n > 0 => {}
        _ => return Err(failed(format!("no address within {} s", START_TIMEOUT.as_secs()))),
    }
    let addr = line.trim().strip_prefix("listening ").and_then(|a| a.parse().ok());
    let addr = addr.ok_or_else(|| failed(format!("said {:?}, not `listening <addr>`", line.trim())))?;
    Ok(ServerProcess { child, pid, addr })
}

impl ServerProcess {
    /// Its RSS and CPU seconds now.
    pub fn sample(&self) -> ProcSample {
        proc_stats::sample(self.pid)
    }

    /// Closes its stdin and waits for it to end (kills it past [`STOP_TIMEOUT`]); true when
    /// it is gone, reaped and out of `/proc`.
    pub async fn stop(mut self) -> bool {
        drop(self.child.stdin.take());
        let exited = tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await;
        if !matches!(exited, Ok(Ok(_))) {
            let _ = self.child.kill().await;
        }
        !Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}
