//! One NATS (a single JetStream node), one Postgres and one Redis for a whole test process,
//! started on first use and shared by every test in it, each test in a namespace of its own:
//! its own database, subject prefix (which also prefixes its Redis keys) and stream names,
//! so tests run side by side without seeing each other (zero-to-production's `spawn_app`).
//! Under `cargo test` every test of a binary shares them; nextest runs each test in a process
//! of its own, which starts them for itself: a fraction of a second, since the Postgres
//! cluster is copied from a template made once per machine instead of `initdb`.
//!
//! The servers live in a `static`, which is never dropped: a reaper process (`sh`) reads a
//! pipe whose only writer is this process, and when the process ends, however it ends, the
//! pipe closes and the reaper kills the servers and removes their directory.

use super::postgres::LocalPostgres;
use super::process::{ChildProcess, ProcessError, find_executable, free_ports_on, random_loopback};
use super::redis::LocalRedis;
use crate::config::Config;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::sync::OnceCell;

/// The servers of this test process.
pub struct TestServers {
    pub host: Ipv4Addr,
    pub nats_url: String,
    pub redis_url: String,
    pub postgres: LocalPostgres,
    /// Where the servers keep their data; removed by the reaper.
    pub dir: PathBuf,
    _nats: ChildProcess,
    _redis: LocalRedis,
    /// The write end of the reaper's pipe: held until the process exits.
    _lifeline: std::process::ChildStdin,
}

static SERVERS: OnceCell<TestServers> = OnceCell::const_new();

/// The servers of this test process, started by the first caller.
pub async fn test_servers() -> &'static TestServers {
    SERVERS.get_or_try_init(TestServers::start).await.expect("the test servers start")
}

/// What one test owns on the shared servers.
pub struct Namespace {
    /// A short random id; the names below are made of it.
    pub id: String,
    pub database: String,
    pub subject_prefix: String,
    pub stream: String,
    pub dead_letter_stream: String,
}

impl TestServers {
    async fn start() -> Result<Self, ProcessError> {
        let setup = |e: std::io::Error| ProcessError::Setup(e.to_string());
        let root = std::env::temp_dir().join("chat-test-servers");
        std::fs::create_dir_all(&root).map_err(setup)?;
        remove_dead_runs(&root);
        let dir = root.join(format!("run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(setup)?;
        let (pids, lifeline) = start_reaper(&dir)?;
        let host = random_loopback();
        let ports = free_ports_on(host, 3);
        let (nats_port, postgres_port, redis_port) = (ports[0], ports[1], ports[2]);
        Self::start_in(&dir, host, (nats_port, postgres_port, redis_port), pids, lifeline).await
    }

    async fn start_in(
        dir: &Path,
        host: Ipv4Addr,
        (nats_port, postgres_port, redis_port): (u16, u16, u16),
        mut pids: std::fs::File,
        lifeline: std::process::ChildStdin,
    ) -> Result<Self, ProcessError> {
        let nats = super::nats::start_single_node(&dir.join("nats"), host, nats_port)?;
        record(&mut pids, "KILL", &nats);
        let (postgres_dir, redis_dir) = (dir.join("postgres"), dir.join("redis"));
        copy_template_cluster(&postgres_dir)?;
        let (postgres, redis) = tokio::join!(
            LocalPostgres::start(&postgres_dir, host, postgres_port, false),
            LocalRedis::start(&redis_dir, host, redis_port, false),
        );
        // Recorded before either error is returned, so whichever started is reaped.
        if let Ok(postgres) = &postgres
            && let Some(process) = &postgres.process
        {
            // An immediate shutdown: the postmaster stops its backends too.
            record(&mut pids, "QUIT", process);
        }
        if let Ok(redis) = &redis
            && let Some(process) = &redis.process
        {
            record(&mut pids, "KILL", process);
        }
        let (postgres, redis) = (postgres?, redis?);
        let nats_url = format!("nats://{host}:{nats_port}");
        if !super::nats::wait_jetstream(std::slice::from_ref(&nats_url), Duration::from_secs(30)).await {
            return Err(ProcessError::NotReady("nats".into(), dir.join("nats/nats.log")));
        }
        Ok(Self {
            host,
            nats_url,
            redis_url: redis.url(),
            postgres,
            dir: dir.to_owned(),
            _nats: nats,
            _redis: redis,
            _lifeline: lifeline,
        })
    }

    /// A new namespace: a fresh database (empty; the app migrates it) and names of its own.
    pub async fn namespace(&self) -> Namespace {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let namespace = Namespace {
            database: format!("test_{id}"),
            subject_prefix: format!("t{id}"),
            stream: format!("T{id}_MESSAGES"),
            dead_letter_stream: format!("T{id}_DEAD_LETTERS"),
            id,
        };
        self.postgres.create_database(&namespace.database).await.expect("the test database is created");
        namespace
    }

    /// A config for `namespace` on these servers: one replica, a few partitions, every
    /// listener on a free port of 127.0.0.1, small pools and short drains. Uploads still go
    /// to the default directory: point `uploads.store` at the test's own.
    pub fn config(&self, namespace: &Namespace) -> Config {
        let mut config = Config::default();
        config.nats.urls = vec![self.nats_url.clone()];
        config.nats.subject_prefix = namespace.subject_prefix.clone();
        config.nats.stream = namespace.stream.clone();
        config.nats.dead_letter_stream = namespace.dead_letter_stream.clone();
        config.nats.replicas = 1;
        config.nats.partitions = 2;
        config.database.url = self.postgres.url(&namespace.database).into();
        config.database.max_connections = 8;
        config.redis.url = self.redis_url.clone().into();
        config.redis.pool_size = 4;
        let any_port = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        config.gateway.listen = any_port;
        config.gateway.admin_listen = any_port;
        config.worker.admin_listen = any_port;
        config.gateway.drain_window = Duration::from_millis(100);
        config.gateway.shutdown_grace = Duration::from_secs(2);
        config.worker.shutdown_grace = Duration::from_secs(2);
        config
    }
}

/// Appends `signal pid` to the reaper's list.
fn record(pids: &mut std::fs::File, signal: &str, process: &ChildProcess) {
    let _ = writeln!(pids, "{signal} {}", process.pid());
    let _ = pids.flush();
}

/// Waits for the end of its stdin (this process's end, closed by the kernel at exit), then
/// signals every pid listed in `$1/pids`, waits up to 5 s for each to go, and removes `$1`.
const REAPER: &str = r#"
while read -r _; do :; done
[ -f "$1/pids" ] && while read -r signal pid; do kill -s "$signal" "$pid" 2>/dev/null; done < "$1/pids"
[ -f "$1/pids" ] && while read -r signal pid; do
  i=0
  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
  kill -s KILL "$pid" 2>/dev/null
done < "$1/pids"
rm -rf "$1"
"#;

/// Starts the reaper of `dir`: the pids file to list servers in, and the pipe end to hold.
fn start_reaper(dir: &Path) -> Result<(std::fs::File, std::process::ChildStdin), ProcessError> {
    let setup = |e: std::io::Error| ProcessError::Setup(format!("reaper: {e}"));
    let pids = std::fs::File::create(dir.join("pids")).map_err(setup)?;
    // Its own process group: a Ctrl-C of the test run reaches it only through the pipe,
    // after the servers' own.
    let mut child = std::os::unix::process::CommandExt::process_group(
        Command::new("sh").args(["-c", REAPER, "reaper"]).arg(dir),
        0,
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .map_err(setup)?;
    // The child is never waited for: it outlives this process by design, and init reaps it.
    let lifeline = child.stdin.take().ok_or_else(|| ProcessError::Setup("reaper: no stdin".into()))?;
    Ok((pids, lifeline))
}

/// Removes the directories of earlier runs whose process is gone (a run killed with
/// SIGKILL takes its reaper with it when they share a process group).
fn remove_dead_runs(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("run-").and_then(|p| p.parse::<i32>().ok()) else { continue };
        let gone =
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) == Err(nix::errno::Errno::ESRCH);
        if gone {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Puts an initialised Postgres cluster in `dir/data` (where `LocalPostgres::start` looks for
/// one) by copying a template made once per machine: `initdb` costs a second per process.
fn copy_template_cluster(dir: &Path) -> Result<(), ProcessError> {
    let setup = |e: std::io::Error| ProcessError::Setup(format!("postgres template: {e}"));
    let initdb = find_executable("initdb", "CHAT_PG_INITDB", &["/usr/lib/postgresql/*/bin"])?;
    // `/usr/lib/postgresql/<version>/bin/initdb`, wherever it was found through.
    let initdb = std::fs::canonicalize(&initdb).unwrap_or(initdb);
    let version = initdb.parent().and_then(Path::parent).and_then(Path::file_name);
    let version = version.map(|v| v.to_string_lossy().into_owned()).unwrap_or_default();
    let template =
        std::env::temp_dir().join("chat-test-servers").join(format!("postgres-{version}-template"));
    if !template.join("PG_VERSION").exists() {
        make_template(&initdb, &template)?;
    }
    std::fs::create_dir_all(dir).map_err(setup)?;
    // `-a` keeps the owner (the postgres user, when this runs as root) and the 0700 mode.
    let copied = Command::new("cp").arg("-a").arg(&template).arg(dir.join("data")).status().map_err(setup)?;
    if !copied.success() {
        return Err(ProcessError::Setup(format!("copying {} failed", template.display())));
    }
    Ok(())
}

/// `initdb` into a directory of its own, then renamed to `template` (atomic: of processes
/// racing, one wins and the others drop theirs).
fn make_template(initdb: &Path, template: &Path) -> Result<(), ProcessError> {
    let setup = |e: std::io::Error| ProcessError::Setup(format!("postgres template: {e}"));
    let parent = template.parent().unwrap_or(Path::new("/tmp"));
    let building = parent.join(format!("postgres-template-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    std::fs::create_dir_all(parent).map_err(setup)?;
    let mut command = Command::new(initdb);
    command.arg("-D").arg(&building).args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
    if nix::unistd::geteuid().is_root() {
        let user = nix::unistd::User::from_name("postgres").ok().flatten();
        let user = user.ok_or_else(|| ProcessError::Setup("no postgres user to run initdb as".into()))?;
        // initdb creates `building` itself, inside `parent`: the postgres user must write there.
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o1777);
        std::fs::set_permissions(parent, mode).map_err(setup)?;
        std::os::unix::process::CommandExt::uid(&mut command, user.uid.as_raw());
        std::os::unix::process::CommandExt::gid(&mut command, user.gid.as_raw());
    }
    let output = command.output().map_err(setup)?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&building);
        return Err(ProcessError::Setup(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    if std::fs::rename(&building, template).is_err() {
        let _ = std::fs::remove_dir_all(&building);
    }
    Ok(())
}
