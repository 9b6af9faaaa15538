//! A local Postgres server. `initdb` and `postgres` refuse to run as root, so when this
//! process is root they run as the `postgres` system user, with the data directory owned by it.

use super::process::{ChildProcess, ProcessError, find_executable};
use sqlx::Connection;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const PG_BIN_DIRS: &[&str] = &["/usr/lib/postgresql/*/bin"];

pub struct LocalPostgres {
    pub host: std::net::Ipv4Addr,
    pub port: u16,
    dir: PathBuf,
    durable: bool,
    pub process: Option<ChildProcess>,
}

impl LocalPostgres {
    /// Starts Postgres on `port` with its cluster in `dir` (created with `initdb` the first
    /// time). `durable` keeps fsync on (the cell runner); tests turn it off.
    pub async fn start(
        dir: &Path,
        host: std::net::Ipv4Addr,
        port: u16,
        durable: bool,
    ) -> Result<Self, ProcessError> {
        let setup = |e: std::io::Error| ProcessError::Setup(format!("postgres dir {}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(setup)?;
        let owner = run_as();
        if let Some((uid, gid)) = owner {
            nix::unistd::chown(dir, Some(uid.into()), Some(gid.into())).map_err(|e| setup(e.into()))?;
        }
        let data = dir.join("data");
        if !data.join("PG_VERSION").exists() {
            let mut initdb = Command::new(find_executable("initdb", "CHAT_PG_INITDB", PG_BIN_DIRS)?);
            initdb.arg("-D").arg(&data).args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
            if let Some((uid, gid)) = owner {
                initdb.uid(uid).gid(gid);
            }
            let output = initdb.output().map_err(setup)?;
            if !output.status.success() {
                return Err(ProcessError::Setup(format!(
                    "initdb failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                )));
            }
        }
        let mut postgres = Self { host, port, dir: dir.to_owned(), durable, process: None };
        postgres.restart().await?;
        Ok(postgres)
    }

    /// (Re)starts the server on the existing cluster and waits until it accepts connections.
    pub async fn restart(&mut self) -> Result<(), ProcessError> {
        let mut command = Command::new(find_executable("postgres", "CHAT_PG_POSTGRES", PG_BIN_DIRS)?);
        command
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string(), "-c", &format!("listen_addresses={}", self.host), "-k"])
            .arg(&self.dir)
            .args(["-c", "max_connections=300", "-c", "shared_buffers=128MB"]);
        if !self.durable {
            // Survives a crash of the server process (the OS keeps its writes), not of the
            // machine. Commits stay synchronous: a worker acks only what Postgres has in its WAL.
            command.args(["-c", "fsync=off", "-c", "full_page_writes=off"]);
        }
        if let Some((uid, gid)) = run_as() {
            command.uid(uid).gid(gid);
        }
        self.process = Some(ChildProcess::spawn("postgres", command, &self.dir.join("postgres.log"))?);
        if wait_accepting(&self.url("postgres"), Duration::from_secs(30)).await {
            return Ok(());
        }
        Err(ProcessError::NotReady("postgres".into(), self.dir.join("postgres.log")))
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@{}:{}/{database}", self.host, self.port)
    }

    /// Creates `database` unless it exists.
    pub async fn create_database(&self, database: &str) -> Result<(), sqlx::Error> {
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres")).await?;
        let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(database)
            .fetch_optional(&mut conn)
            .await?;
        if exists.is_none() {
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{}\"", database.replace('"', ""))))
                .execute(&mut conn)
                .await?;
        }
        Ok(())
    }
}

/// Waits until a Postgres server accepts connections at `url`; false after `timeout`.
pub async fn wait_accepting(url: &str, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if sqlx::PgConnection::connect(url).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The uid and gid of the `postgres` user when this process is root.
fn run_as() -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let user = nix::unistd::User::from_name("postgres").ok().flatten()?;
    Some((user.uid.as_raw(), user.gid.as_raw()))
}
