//! A child process owned by a handle: output to a log file, killed when the handle drops,
//! and the signals a fault test needs.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("starting {name}: {source}")]
    Spawn { name: String, source: std::io::Error },
    #[error("{0} did not become ready in time; see {1}")]
    NotReady(String, PathBuf),
    #[error("{0}")]
    Setup(String),
}

/// A running child process.
pub struct ChildProcess {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ChildProcess {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Self, ProcessError> {
        let spawn_error = |source| ProcessError::Spawn { name: name.to_owned(), source };
        let out = File::options().create(true).append(true).open(log).map_err(spawn_error)?;
        let err = out.try_clone().map_err(spawn_error)?;
        let child = command.stdin(Stdio::null()).stdout(out).stderr(err).spawn().map_err(spawn_error)?;
        Ok(Self { name: name.to_owned(), child, log: log.to_owned() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn signal(&self, signal: Signal) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), signal);
    }

    /// kill -9, and reap.
    pub fn kill9(&mut self) {
        self.signal(Signal::SIGKILL);
        let _ = self.child.wait();
    }

    /// SIGTERM, then kill -9 if the process has not exited within `grace`.
    pub async fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        self.signal(Signal::SIGCONT);
        self.signal(Signal::SIGTERM);
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        tracing::warn!(name = %self.name, "did not stop in time; killing");
        self.kill9();
        None
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if self.is_running() {
            self.kill9();
        }
    }
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    free_port_on(Ipv4Addr::LOCALHOST)
}

/// A TCP port that was free a moment ago on `host`.
pub fn free_port_on(host: Ipv4Addr) -> u16 {
    std::net::TcpListener::bind((host, 0)).and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// `n` distinct TCP ports that were free a moment ago on `host` (all held open together, so
/// none is handed out twice).
pub fn free_ports_on(host: Ipv4Addr, n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> =
        (0..n).filter_map(|_| std::net::TcpListener::bind((host, 0)).ok()).collect();
    listeners.iter().filter_map(|l| l.local_addr().ok()).map(|a| a.port()).collect()
}

/// A random loopback address other than 127.0.0.1. Each test cell binds all its servers on
/// its own address, so cells running side by side can never take each other's ports.
pub fn random_loopback() -> Ipv4Addr {
    let [a, b, c, ..] = uuid::Uuid::new_v4().into_bytes();
    Ipv4Addr::new(127, a.max(1), b, c.clamp(2, 254))
}

/// Finds an executable: `$env_var`, then `PATH`, then the `fallbacks` (globs allowed at
/// the version level, e.g. `/usr/lib/postgresql/*/bin`).
pub fn find_executable(name: &str, env_var: &str, fallback_dirs: &[&str]) -> Result<PathBuf, ProcessError> {
    if let Some(path) = std::env::var_os(env_var) {
        return Ok(PathBuf::from(path));
    }
    let in_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|c| c.is_file()))
        .unwrap_or_default();
    if let Some(path) = in_path {
        return Ok(path);
    }
    for dir in fallback_dirs {
        if let Some((base, rest)) = dir.split_once('*') {
            let base = Path::new(base);
            let mut versions: Vec<PathBuf> = std::fs::read_dir(base.parent().unwrap_or(base))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().starts_with(&*base.to_string_lossy()))
                .collect();
            versions.sort();
            if let Some(found) = versions
                .iter()
                .rev()
                .map(|v| PathBuf::from(format!("{}{rest}", v.display())).join(name))
                .find(|c| c.is_file())
            {
                return Ok(found);
            }
        } else if Path::new(dir).join(name).is_file() {
            return Ok(Path::new(dir).join(name));
        }
    }
    Err(ProcessError::Setup(format!("{name} not found (set {env_var}, or run scripts/setup.sh)")))
}
