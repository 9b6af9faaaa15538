//! The run's side of its holder processes: each started as `loadgen --hold-child SPEC` with
//! its spec in a file, its two reports read from its stdout, its release written to its stdin.

use crate::error::LoadgenError;
use crate::hold::spec::HolderSpec;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long a holder may take to exit once it has reported its release.
const EXIT_GRACE: Duration = Duration::from_secs(10);

/// One running holder process.
pub struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    pub pid: u32,
    spec: PathBuf,
}

impl Holder {
    /// Writes `spec` to `dir` and starts `binary --hold-child` on it.
    pub fn start(binary: &Path, dir: &Path, index: usize, spec: &HolderSpec) -> Result<Self, LoadgenError> {
        let path = dir.join(format!("holder-{index}.json"));
        let write = |e: std::io::Error| LoadgenError::Write { path: path.display().to_string(), source: e };
        std::fs::write(&path, serde_json::to_vec(spec)?).map_err(write)?;
        let mut child = Command::new(binary)
            .arg("--hold-child")
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| LoadgenError::Holder(format!("starting {}: {e}", binary.display())))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(LoadgenError::Holder("no pipes to the holder".into()));
        };
        Ok(Self {
            pid: child.id().unwrap_or_default(),
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout).lines(),
            spec: path,
        })
    }

    /// The holder's next report.
    pub async fn report<T: DeserializeOwned>(&mut self) -> Result<T, LoadgenError> {
        let gone = || LoadgenError::Holder(format!("holder {} ended without its report", self.pid));
        let line = self.stdout.next_line().await.map_err(|e| LoadgenError::Holder(e.to_string()))?;
        let line = line.ok_or_else(gone)?;
        serde_json::from_str(&line)
            .map_err(|e| LoadgenError::Holder(format!("holder {}: {e}: {line}", self.pid)))
    }

    /// Tells the holder to close its sockets.
    pub async fn release(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"release\n").await;
        }
    }

    /// Waits for the holder to exit (killing it past a grace) and removes its spec.
    pub async fn finish(mut self) {
        if tokio::time::timeout(EXIT_GRACE, self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
        let _ = std::fs::remove_file(&self.spec);
    }
}
