//! A local Redis server.

use super::process::{ChildProcess, ProcessError, find_executable};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct LocalRedis {
    pub host: std::net::Ipv4Addr,
    pub port: u16,
    dir: PathBuf,
    persistent: bool,
    pub process: Option<ChildProcess>,
}

impl LocalRedis {
    /// Starts Redis on `port` with its files in `dir`; `persistent` turns the append-only
    /// file on (the cell runner), off for tests.
    pub async fn start(
        dir: &Path,
        host: std::net::Ipv4Addr,
        port: u16,
        persistent: bool,
    ) -> Result<Self, ProcessError> {
        std::fs::create_dir_all(dir).map_err(|e| ProcessError::Setup(e.to_string()))?;
        let mut redis = Self { host, port, dir: dir.to_owned(), persistent, process: None };
        redis.restart().await?;
        Ok(redis)
    }

    pub async fn restart(&mut self) -> Result<(), ProcessError> {
        let binary = find_executable("redis-server", "CHAT_REDIS_SERVER", &["/usr/bin"])?;
        let mut command = Command::new(binary);
        command
            .args(["--port", &self.port.to_string(), "--bind", &self.host.to_string(), "--dir"])
            .arg(&self.dir)
            .args(["--appendonly", if self.persistent { "yes" } else { "no" }, "--save", ""]);
        self.process = Some(ChildProcess::spawn("redis", command, &self.dir.join("redis.log"))?);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::time::Instant::now() < deadline {
            if ping(self.host, self.port).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(ProcessError::NotReady("redis".into(), self.dir.join("redis.log")))
    }

    pub fn url(&self) -> String {
        format!("redis://{}:{}", self.host, self.port)
    }
}

async fn ping(host: std::net::Ipv4Addr, port: u16) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect((host, port)).await else { return false };
    if stream.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    matches!(stream.read(&mut reply).await, Ok(n) if reply[..n].starts_with(b"+PONG"))
}
