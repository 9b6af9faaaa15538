//! A local 3-node NATS JetStream cluster on loopback ports, from `nats/node.conf.template`;
//! and a single node, for tests that need no cluster. The cluster's nodes can also run in
//! network namespaces of their own (`netns`), for real partitions.

use super::netns::NetLab;
use super::process::{ChildProcess, ProcessError, find_executable, free_ports_on};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A single JetStream node with its files in `dir`, for tests that need no cluster. Its
/// storage limit is far above the disk: every stream reserves
/// its `max_bytes` (10 GiB) against it, and a test process creates many streams.
pub fn start_single_node(dir: &Path, host: Ipv4Addr, port: u16) -> Result<ChildProcess, ProcessError> {
    let setup = |e: std::io::Error| ProcessError::Setup(format!("nats dir {}: {e}", dir.display()));
    std::fs::create_dir_all(dir.join("jetstream")).map_err(setup)?;
    let config = format!(
        "server_name: test\nhost: \"{host}\"\nport: {port}\njetstream {{\n  store_dir: \"{}\"\n  \
         max_file_store: 100TB\n  max_memory_store: 1GB\n}}\n",
        dir.join("jetstream").display()
    );
    let config_path = dir.join("nats.conf");
    std::fs::write(&config_path, config).map_err(setup)?;
    let mut command = Command::new(find_executable("nats-server", "CHAT_NATS_SERVER", &[])?);
    command.arg("-c").arg(&config_path);
    ChildProcess::spawn("nats", command, &dir.join("nats.log"))
}

const TEMPLATE: &str = include_str!("../../../nats/node.conf.template");

/// One node's ports and files.
pub struct NatsNode {
    pub name: String,
    pub host: Ipv4Addr,
    pub client_port: u16,
    pub cluster_port: u16,
    pub http_port: u16,
    config: PathBuf,
    dir: PathBuf,
    /// The network namespace it runs in, if any (`ip netns exec`).
    namespace: Option<String>,
    pub process: Option<ChildProcess>,
}

impl NatsNode {
    pub fn url(&self) -> String {
        format!("nats://{}:{}", self.host, self.client_port)
    }

    /// kill -9 the node.
    pub fn kill9(&mut self) {
        if let Some(process) = self.process.as_mut() {
            process.kill9();
        }
    }

    /// Starts (or restarts) the node's server process.
    pub fn start(&mut self) -> Result<(), ProcessError> {
        let binary = find_executable("nats-server", "CHAT_NATS_SERVER", &[])?;
        let mut command = match &self.namespace {
            // `ip netns exec` execs the server: its pid is the server's, for signals.
            Some(namespace) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", namespace]).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command.arg("-c").arg(&self.config);
        self.process = Some(ChildProcess::spawn(&self.name, command, &self.dir.join("nats.log"))?);
        Ok(())
    }
}

/// What a node's config is rendered from.
pub struct NodeConfig<'a> {
    pub name: &'a str,
    pub host: &'a str,
    pub ports: NodePorts,
    pub store_dir: &'a str,
    /// `nats-route://…` lines, one per node.
    pub routes: &'a str,
    pub no_advertise: bool,
    /// `always` in every real cell; benchmarks compare it with the server default (`2m`).
    pub sync_interval: &'a str,
}

impl NodeConfig<'_> {
    /// `nats/node.conf.template` filled in.
    pub fn render(&self) -> String {
        let (client, cluster, http) = self.ports;
        TEMPLATE
            .replace("{{name}}", self.name)
            .replace("{{host}}", self.host)
            .replace("{{client_port}}", &client.to_string())
            .replace("{{cluster_port}}", &cluster.to_string())
            .replace("{{http_port}}", &http.to_string())
            .replace("{{store_dir}}", self.store_dir)
            .replace("{{cluster_name}}", "chat-cell")
            .replace("{{no_advertise}}", if self.no_advertise { "true" } else { "false" })
            .replace("{{sync_interval}}", self.sync_interval)
            .replace("{{routes}}", self.routes.trim_end())
    }
}

pub struct NatsCluster {
    /// Dropped before `net`: the servers stop before their namespaces go.
    pub nodes: Vec<NatsNode>,
    /// The nodes' namespaces and links, when they run in a network lab.
    pub net: Option<NetLab>,
}

/// Ports of one node: (client, cluster, http).
pub type NodePorts = (u16, u16, u16);

impl NatsCluster {
    /// Starts 3 nodes with their data under `dir`, on `ports` or free ports, and waits until
    /// JetStream answers on every node.
    pub async fn start(
        dir: &Path,
        host: Ipv4Addr,
        ports: Option<[NodePorts; 3]>,
    ) -> Result<Self, ProcessError> {
        Self::start_with_sync(dir, host, ports, "always").await
    }

    /// [`NatsCluster::start`] with another `sync_interval`, for measuring what `always` costs.
    pub async fn start_with_sync(
        dir: &Path,
        host: Ipv4Addr,
        ports: Option<[NodePorts; 3]>,
        sync_interval: &str,
    ) -> Result<Self, ProcessError> {
        let ports = ports.unwrap_or_else(|| free_node_ports(host));
        Self::start_nodes(dir, ports, None, [host; 3], sync_interval).await
    }

    /// [`NatsCluster::start`] with each node in a network namespace of its own, on an address
    /// of its own (see [`NetLab`]); `seed` (the cell's loopback address) picks the subnet.
    pub async fn start_in_namespaces(
        dir: &Path,
        seed: Ipv4Addr,
        ports: Option<[NodePorts; 3]>,
    ) -> Result<Self, ProcessError> {
        let net = NetLab::create(seed, &["n1", "n2", "n3"])?;
        let hosts = ["n1", "n2", "n3"].map(|n| net.addr(n).expect("the lab has every node"));
        let ports = ports.unwrap_or_else(|| free_node_ports(seed));
        Self::start_nodes(dir, ports, Some(net), hosts, "always").await
    }

    async fn start_nodes(
        dir: &Path,
        ports: [NodePorts; 3],
        net: Option<NetLab>,
        hosts: [Ipv4Addr; 3],
        sync_interval: &str,
    ) -> Result<Self, ProcessError> {
        let routes: String = ports
            .iter()
            .zip(hosts)
            .map(|((_, cluster, _), host)| format!("    nats-route://{host}:{cluster}\n"))
            .collect();
        let mut nodes = Vec::new();
        for (i, ((client_port, cluster_port, http_port), host)) in ports.into_iter().zip(hosts).enumerate() {
            let name = format!("n{}", i + 1);
            let node_dir = dir.join(&name);
            std::fs::create_dir_all(node_dir.join("jetstream"))
                .map_err(|e| ProcessError::Setup(e.to_string()))?;
            let config = NodeConfig {
                name: &name,
                host: &host.to_string(),
                ports: (client_port, cluster_port, http_port),
                store_dir: &node_dir.join("jetstream").display().to_string(),
                routes: &routes,
                no_advertise: false,
                sync_interval,
            }
            .render();
            let config_path = node_dir.join("nats.conf");
            std::fs::write(&config_path, config).map_err(|e| ProcessError::Setup(e.to_string()))?;
            let namespace = net.as_ref().and_then(|n| n.namespace(&name)).map(str::to_owned);
            let mut node = NatsNode {
                name,
                host,
                client_port,
                cluster_port,
                http_port,
                config: config_path,
                dir: node_dir,
                namespace,
                process: None,
            };
            node.start()?;
            nodes.push(node);
        }
        let cluster = Self { nodes, net };
        cluster.wait_ready(Duration::from_secs(60)).await?;
        Ok(cluster)
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsNode::url).collect()
    }

    /// Waits until JetStream answers through a client of the cluster (a meta leader exists).
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), ProcessError> {
        if wait_jetstream(&self.urls(), timeout).await {
            return Ok(());
        }
        let log = self.nodes.first().map(|n| n.dir.join("nats.log")).unwrap_or_default();
        Err(ProcessError::NotReady("NATS JetStream cluster".into(), log))
    }

    /// The node named `name` (`n1`, `n2`, `n3`).
    pub fn node(&self, name: &str) -> Option<&NatsNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The node named `name`, to stop or start it.
    pub fn node_mut(&mut self, name: &str) -> Option<&mut NatsNode> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }
}

/// Three nodes' (client, cluster, http) ports, free on `host`.
fn free_node_ports(host: Ipv4Addr) -> [NodePorts; 3] {
    let free = free_ports_on(host, 9);
    std::array::from_fn(|i| (free[3 * i], free[3 * i + 1], free[3 * i + 2]))
}

/// Waits until JetStream answers at `urls` (a meta leader exists); false after `timeout`.
pub async fn wait_jetstream(urls: &[String], timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if let Ok(client) = async_nats::connect(urls.to_vec()).await {
            // A short timeout: while no meta leader exists every request would wait 5 s.
            let js = async_nats::jetstream::ContextBuilder::new()
                .timeout(Duration::from_millis(500))
                .build(client);
            if js.query_account().await.is_ok() {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}
