//! A whole cell of local processes: 3 NATS nodes, Postgres, Redis, N gateways and M workers
//! (the real `gateway` and `messages` binaries). The cell runner keeps one in `.cell/` on
//! fixed ports; each test starts its own in a temporary directory on free ports.

use super::client::{ChatClient, ClientError};
use super::containers::{ContainerServers, docker_available};
use super::nats::{NatsCluster, NodePorts};
use super::postgres::LocalPostgres;
use super::process::{ChildProcess, ProcessError, free_ports_on, random_loopback};
use super::redis::LocalRedis;
use crate::ids::ChannelId;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// What to start.
#[derive(Debug, Clone)]
pub struct CellOptions {
    pub gateways: usize,
    pub workers: usize,
    pub partitions: u16,
    /// Where the cell keeps its data; a fresh temporary directory when `None`.
    pub dir: Option<PathBuf>,
    /// Loopback address every server and process of the cell binds; a random 127.x.y.z when
    /// `None`, so cells side by side never collide on ports.
    pub host: Option<Ipv4Addr>,
    /// Fixed ports (the cell runner); free ports when `None`.
    pub ports: Option<CellPorts>,
    /// fsync on in Postgres and append-only Redis (the cell runner), off for tests.
    pub durable: bool,
    /// Directory of the `gateway` and `messages` binaries; found next to the running
    /// executable when `None`.
    pub bin_dir: Option<PathBuf>,
    /// Extra TOML for the processes' config: whole `[section]`s other than those the cell
    /// writes itself (`nats`, `database`, `redis`, `gateway`, `worker`).
    pub extra_config: String,
    /// Extra `key = value` lines under the gateways' `[gateway]` section.
    pub gateway_config: String,
    /// Extra `key = value` lines under the workers' `[worker]` section.
    pub worker_config: String,
    /// Rate limits far above any test's load (a `[limits]` section), unless `extra_config`
    /// has its own. Off for the cell runner, which keeps the real defaults.
    pub raise_limits: bool,
    pub backend: Backend,
    /// Each NATS node in a network namespace of its own (local backend, root only), so tests
    /// can cut and spoil its links (`NatsCluster::net`).
    pub nats_in_namespaces: bool,
    /// Environment variables of the gateways and workers (the S3 store's `AWS_*`).
    pub env: Vec<(String, String)>,
}

/// Where the servers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Containers when a Docker engine answers, local processes otherwise.
    Auto,
    Local,
    Containers,
}

impl Default for CellOptions {
    fn default() -> Self {
        Self {
            gateways: 1,
            workers: 1,
            partitions: 4,
            dir: None,
            host: None,
            ports: None,
            durable: false,
            bin_dir: None,
            extra_config: String::new(),
            gateway_config: String::new(),
            worker_config: String::new(),
            raise_limits: true,
            backend: Backend::Auto,
            nats_in_namespaces: false,
            env: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct CellPorts {
    pub nats: [NodePorts; 3],
    pub postgres: u16,
    pub redis: u16,
    /// Port of the first gateway; the others take the next ones.
    pub gateway: u16,
    /// Admin port (`/metrics`, `/health`, `/ready`) of the first gateway; the other gateways,
    /// then the workers, take the next ones.
    pub admin: u16,
}

/// Limits no test's load reaches: tests that are not about limits measure and check other
/// things.
const RAISED_LIMITS: &str = "\n[limits]\nrest_per_user = { count = 1000000, window_ms = 60000 }\n\
    sends_per_user = { count = 1000000, window_ms = 1000 }\n\
    messages_per_channel = { count = 1000000, window_ms = 60000 }\nsockets_per_user = 100000\n\
    auth_per_ip_burst = 1000000\nauth_per_ip_refill_ms = 1\n";

/// One of the cell's own processes (a gateway or a worker) and how to start it again.
pub struct AppProcess {
    pub name: String,
    binary: PathBuf,
    config: PathBuf,
    log: PathBuf,
    pub process: Option<ChildProcess>,
    /// The HTTP port, for gateways.
    pub port: Option<u16>,
    /// The admin port: `/metrics`, `/health`, `/ready`.
    pub admin_port: u16,
    env: Vec<(String, String)>,
}

impl AppProcess {
    pub fn start(&mut self) -> Result<(), ProcessError> {
        let mut command = Command::new(&self.binary);
        command.arg("--config").arg(&self.config).envs(self.env.iter().map(|(k, v)| (k, v)));
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info");
        }
        self.process = Some(ChildProcess::spawn(&self.name, command, &self.log)?);
        Ok(())
    }

    pub fn kill9(&mut self) {
        if let Some(process) = self.process.as_mut() {
            process.kill9();
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; the exit status if it stopped by itself.
    pub async fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        match self.process.as_mut() {
            Some(process) => process.terminate(grace).await,
            None => None,
        }
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

/// The servers of a cell, as local processes or as containers.
#[allow(clippy::large_enum_variant)] // one per cell; never moved on a hot path
pub enum Servers {
    Local { nats: NatsCluster, postgres: LocalPostgres, redis: LocalRedis },
    Containers(Box<ContainerServers>),
}

impl Servers {
    async fn start(options: &CellOptions, dir: &Path, host: Ipv4Addr) -> Result<Self, ProcessError> {
        let containers = match options.backend {
            Backend::Auto => docker_available() && !options.nats_in_namespaces,
            Backend::Local => false,
            Backend::Containers => true,
        };
        if containers {
            return Ok(Servers::Containers(Box::new(ContainerServers::start().await?)));
        }
        let ports = options.ports;
        let (nats_dir, postgres_dir, redis_dir) = (dir.join("nats"), dir.join("postgres"), dir.join("redis"));
        let nats = async {
            match options.nats_in_namespaces {
                true => NatsCluster::start_in_namespaces(&nats_dir, host, ports.map(|p| p.nats)).await,
                false => NatsCluster::start(&nats_dir, host, ports.map(|p| p.nats)).await,
            }
        };
        let (nats, postgres, redis) = tokio::join!(
            nats,
            LocalPostgres::start(&postgres_dir, host, ports.map_or(0, |p| p.postgres), options.durable),
            LocalRedis::start(&redis_dir, host, ports.map_or(0, |p| p.redis), options.durable),
        );
        let (nats, postgres, redis) = (nats?, postgres?, redis?);
        postgres.create_database(DATABASE).await.map_err(|e| ProcessError::Setup(e.to_string()))?;
        Ok(Servers::Local { nats, postgres, redis })
    }

    pub fn nats_urls(&self) -> Vec<String> {
        match self {
            Servers::Local { nats, .. } => nats.urls(),
            Servers::Containers(c) => c.nats_urls(),
        }
    }

    pub fn database_url(&self) -> String {
        match self {
            Servers::Local { postgres, .. } => postgres.url(DATABASE),
            Servers::Containers(c) => c.database_url(DATABASE),
        }
    }

    pub fn redis_url(&self) -> String {
        match self {
            Servers::Local { redis, .. } => redis.url(),
            Servers::Containers(c) => c.redis_url(),
        }
    }
}

const DATABASE: &str = "chat";

pub struct TestCell {
    /// Kept so the temporary directory lives as long as the cell.
    _temp: Option<tempfile::TempDir>,
    pub dir: PathBuf,
    /// The loopback address the cell's local processes bind.
    pub host: Ipv4Addr,
    pub servers: Servers,
    pub gateways: Vec<AppProcess>,
    pub workers: Vec<AppProcess>,
    pub options: CellOptions,
}

impl TestCell {
    /// Starts every server and process, and waits until each gateway is ready.
    pub async fn start(options: CellOptions) -> Result<Self, ProcessError> {
        let setup = |e: std::io::Error| ProcessError::Setup(e.to_string());
        let (temp, dir) = match &options.dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let temp = tempfile::Builder::new().prefix("chat-cell-").tempdir().map_err(setup)?;
                let dir = temp.path().to_owned();
                (Some(temp), dir)
            }
        };
        std::fs::create_dir_all(&dir).map_err(setup)?;
        let host = options.host.unwrap_or_else(random_loopback);
        // Every port of the cell from one allocation, so no two of them can be the same.
        let apps = options.gateways + options.workers;
        let (ports, gateway_ports, admin_ports): (_, Vec<u16>, Vec<u16>) = match options.ports {
            Some(p) => (
                p,
                (0..options.gateways).map(|i| p.gateway + i as u16).collect(),
                (0..apps).map(|i| p.admin + i as u16).collect(),
            ),
            None => {
                let free = free_ports_on(host, 11 + options.gateways + apps);
                let ports = CellPorts {
                    nats: std::array::from_fn(|i| (free[3 * i], free[3 * i + 1], free[3 * i + 2])),
                    postgres: free[9],
                    redis: free[10],
                    gateway: free[11],
                    admin: free[11 + options.gateways],
                };
                (ports, free[11..11 + options.gateways].to_vec(), free[11 + options.gateways..].to_vec())
            }
        };
        let options = CellOptions { ports: Some(ports), ..options };
        let servers = Servers::start(&options, &dir, host).await?;

        let bin_dir = match &options.bin_dir {
            Some(dir) => dir.clone(),
            None => default_bin_dir()?,
        };
        let mut cell = Self {
            _temp: temp,
            dir: dir.clone(),
            host,
            servers,
            gateways: Vec::new(),
            workers: Vec::new(),
            options: options.clone(),
        };
        let (gateway_admin, worker_admin) = admin_ports.split_at(options.gateways);
        for (i, &admin) in worker_admin.iter().enumerate() {
            let config = cell.config_toml(None, 0, admin);
            let worker =
                cell.app_process(&bin_dir, "messages", &format!("worker-{}", i + 1), config, None, admin)?;
            cell.workers.push(worker);
        }
        for (i, (&port, &admin)) in gateway_ports.iter().zip(gateway_admin).enumerate() {
            let config = cell.config_toml(Some(port), i as u16 + 1, admin);
            let name = format!("gateway-{}", i + 1);
            let gateway = cell.app_process(&bin_dir, "gateway", &name, config, Some(port), admin)?;
            cell.gateways.push(gateway);
        }
        for i in 0..cell.gateways.len() {
            cell.wait_gateway_ready(i, Duration::from_secs(60)).await?;
        }
        // Workers are ready once they pull: faults injected after this hit a working cell.
        for worker in &cell.workers {
            if !cell.wait_admin_ready(worker, Duration::from_secs(60)).await {
                return Err(ProcessError::NotReady(
                    format!("{} ({})", worker.name, tail(&worker.log)),
                    worker.log.clone(),
                ));
            }
        }
        Ok(cell)
    }

    fn app_process(
        &self,
        bin_dir: &Path,
        binary: &str,
        name: &str,
        config: String,
        port: Option<u16>,
        admin_port: u16,
    ) -> Result<AppProcess, ProcessError> {
        let config_path = self.dir.join(format!("{name}.toml"));
        std::fs::write(&config_path, config).map_err(|e| ProcessError::Setup(e.to_string()))?;
        let mut process = AppProcess {
            name: name.to_owned(),
            binary: bin_dir.join(binary),
            config: config_path,
            log: self.dir.join(format!("{name}.log")),
            process: None,
            port,
            admin_port,
            env: self.options.env.clone(),
        };
        process.start()?;
        Ok(process)
    }

    /// The TOML config of a gateway (with its port and node id) or a worker.
    fn config_toml(&self, gateway_port: Option<u16>, node_id: u16, admin_port: u16) -> String {
        let urls: Vec<String> = self.nats_urls().iter().map(|u| format!("\"{u}\"")).collect();
        let mut config = format!(
            "[nats]\nurls = [{}]\npartitions = {}\n\n[database]\nurl = \"{}\"\n\n[redis]\nurl = \"{}\"\n\n",
            urls.join(", "),
            self.options.partitions,
            self.database_url(),
            self.redis_url(),
        );
        let admin = format!("admin_listen = \"{}:{admin_port}\"\n", self.host);
        if let Some(port) = gateway_port {
            config.push_str(&format!(
                "[gateway]\nlisten = \"{}:{port}\"\nnode_id = {node_id}\n{admin}",
                self.host
            ));
            config.push_str(&self.options.gateway_config);
            config.push('\n');
            if !self.options.extra_config.contains("[uploads]") {
                // One directory for every gateway of the cell, as a shared volume would be.
                config.push_str(&format!("[uploads]\nstore = \"{}\"\n", self.dir.join("uploads").display()));
            }
        } else {
            config.push_str(&format!("[worker]\n{admin}"));
            config.push_str(&self.options.worker_config);
            config.push('\n');
        }
        config.push_str(&self.options.extra_config);
        if self.options.raise_limits && !self.options.extra_config.contains("[limits]") {
            config.push_str(RAISED_LIMITS);
        }
        config
    }

    /// The admin endpoint (`/metrics`, `/health`, `/ready`) of a gateway or worker.
    pub fn admin_url(&self, app: &AppProcess) -> String {
        format!("http://{}:{}", self.host, app.admin_port)
    }

    /// What a gateway's or worker's `/metrics` says now (empty if it does not answer).
    pub async fn metrics(&self, app: &AppProcess) -> String {
        let response = reqwest::get(format!("{}/metrics", self.admin_url(app))).await;
        match response {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub fn gateway_url(&self, i: usize) -> String {
        format!("http://{}:{}", self.host, self.gateways[i].port.unwrap_or(0))
    }

    pub fn ws_url(&self, i: usize) -> String {
        format!("ws://{}:{}/ws", self.host, self.gateways[i].port.unwrap_or(0))
    }

    pub fn database_url(&self) -> String {
        self.servers.database_url()
    }

    pub fn nats_urls(&self) -> Vec<String> {
        self.servers.nats_urls()
    }

    pub fn redis_url(&self) -> String {
        self.servers.redis_url()
    }

    pub async fn wait_gateway_ready(&mut self, i: usize, timeout: Duration) -> Result<(), ProcessError> {
        let url = format!("{}/ready", self.gateway_url(i));
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if let Ok(response) = client.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            let gateway = &mut self.gateways[i];
            if let Some(process) = gateway.process.as_mut()
                && !process.is_running()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = self.gateways[i].log.clone();
        Err(ProcessError::NotReady(format!("{} ({})", self.gateways[i].name, tail(&log)), log))
    }

    /// Waits until a gateway's or worker's admin endpoint says it is ready.
    pub async fn wait_admin_ready(&self, app: &AppProcess, timeout: Duration) -> bool {
        let url = format!("{}/ready", self.admin_url(app));
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if client.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Stops gateways and workers gracefully (SIGTERM), then the servers.
    pub async fn stop(&mut self) {
        for app in self.gateways.iter_mut().chain(self.workers.iter_mut()) {
            app.terminate(Duration::from_secs(25)).await;
        }
        // Containers are removed when dropped; local servers stop cleanly here.
        if let Servers::Local { nats, postgres, redis } = &mut self.servers {
            let servers = [redis.process.as_mut(), postgres.process.as_mut()]
                .into_iter()
                .chain(nats.nodes.iter_mut().map(|n| n.process.as_mut()));
            for process in servers.flatten() {
                process.terminate(Duration::from_secs(20)).await;
            }
        }
    }

    /// Alice (on gateway `ga`) and Bob (on gateway `gb`), registered, in a new group channel.
    pub async fn two_members(
        &self,
        ga: usize,
        gb: usize,
    ) -> Result<(ChatClient, ChatClient, ChannelId), ClientError> {
        let alice = ChatClient::register(&self.gateway_url(ga), "alice").await?;
        let bob = ChatClient::register(&self.gateway_url(gb), "bob").await?;
        let channel = alice.create_channel("group", "general", &[bob.user_id]).await?;
        Ok((alice, bob, channel))
    }

    /// Everything gateway `i` has logged so far.
    pub fn gateway_log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.gateways[i].log).unwrap_or_default()
    }

    /// The last lines of every process log, to print when a test fails.
    pub fn logs_tail(&self) -> String {
        self.gateways
            .iter()
            .chain(&self.workers)
            .map(|a| format!("--- {} ---\n{}\n", a.name, tail(&a.log)))
            .collect()
    }
}

impl Drop for TestCell {
    /// A test that panics with a cell up says what its processes said last: their logs live in
    /// a temporary directory that goes with the cell.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("the cell's processes, last lines:\n{}", self.logs_tail());
        }
    }
}

/// The value of one series of a `/metrics` text (`name{labels}` exactly as exported).
pub fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Where cargo put the binaries: `CHAT_BIN_DIR`, or the target directory of the running
/// executable (`target/debug` for tests and examples, which live in `deps/` and `examples/`).
fn default_bin_dir() -> Result<PathBuf, ProcessError> {
    if let Some(dir) = std::env::var_os("CHAT_BIN_DIR") {
        return Ok(dir.into());
    }
    let exe = std::env::current_exe().map_err(|e| ProcessError::Setup(e.to_string()))?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.pop();
    }
    if !dir.join("gateway").is_file() || !dir.join("messages").is_file() {
        return Err(ProcessError::Setup(format!(
            "gateway and messages binaries not found in {}; run `cargo build --bins` first",
            dir.display()
        )));
    }
    Ok(dir)
}
