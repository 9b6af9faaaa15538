//! The cell's servers as containers through `testcontainers`, used instead of local processes
//! when a Docker engine is reachable (e.g. on CI runners): 3 NATS nodes on a private network,
//! Postgres and Redis, each published on a free host port. The gateway and worker binaries
//! still run as local processes.

use super::nats::NodeConfig;
use super::process::{ProcessError, free_port};
use std::time::Duration;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

/// Images, pinned like the local servers.
const NATS_IMAGE: (&str, &str) = ("nats", "2.15.1");
const POSTGRES_IMAGE: (&str, &str) = ("postgres", "15-alpine");
const REDIS_IMAGE: (&str, &str) = ("redis", "7-alpine");

/// True when a Docker engine answers (`CHAT_TEST_BACKEND=local|docker` decides instead).
pub fn docker_available() -> bool {
    match std::env::var("CHAT_TEST_BACKEND").as_deref() {
        Ok("docker") => return true,
        Ok("local") => return false,
        _ => {}
    }
    std::process::Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Running containers; they are removed when this is dropped.
pub struct ContainerServers {
    pub nats: Vec<ContainerAsync<GenericImage>>,
    pub nats_ports: Vec<u16>,
    pub postgres: ContainerAsync<GenericImage>,
    pub postgres_port: u16,
    pub redis: ContainerAsync<GenericImage>,
    pub redis_port: u16,
}

fn setup(error: impl std::fmt::Display) -> ProcessError {
    ProcessError::Setup(format!("containers: {error}"))
}

impl ContainerServers {
    pub async fn start() -> Result<Self, ProcessError> {
        let network = format!("chat-cell-{}", uuid::Uuid::new_v4().simple());
        let routes: String = (1..=3).map(|i| format!("    nats-route://n{i}:6222\n")).collect();
        let mut nats = Vec::new();
        let mut nats_ports = Vec::new();
        for i in 1..=3 {
            let name = format!("n{i}");
            let config = NodeConfig {
                name: &name,
                host: "0.0.0.0",
                ports: (4222, 6222, 8222),
                store_dir: "/data/jetstream",
                routes: &routes,
                no_advertise: true,
                sync_interval: "always",
            }
            .render();
            let host_port = free_port();
            let container = GenericImage::new(NATS_IMAGE.0, NATS_IMAGE.1)
                .with_wait_for(WaitFor::message_on_stderr("Server is ready"))
                .with_network(network.clone())
                .with_container_name(format!("{network}-{name}"))
                .with_hostname(name.clone())
                .with_copy_to("/etc/nats/cell.conf", config.into_bytes())
                .with_cmd(["-c", "/etc/nats/cell.conf"])
                .with_mapped_port(host_port, 4222.tcp())
                .with_startup_timeout(Duration::from_secs(120))
                .start()
                .await
                .map_err(setup)?;
            nats.push(container);
            nats_ports.push(host_port);
        }
        let postgres_port = free_port();
        let postgres = GenericImage::new(POSTGRES_IMAGE.0, POSTGRES_IMAGE.1)
            .with_wait_for(WaitFor::message_on_stderr("database system is ready to accept connections"))
            .with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust")
            .with_env_var("POSTGRES_DB", "chat")
            .with_cmd(["postgres", "-c", "fsync=off", "-c", "max_connections=300"])
            .with_mapped_port(postgres_port, 5432.tcp())
            .with_startup_timeout(Duration::from_secs(120))
            .start()
            .await
            .map_err(setup)?;
        let redis_port = free_port();
        let redis = GenericImage::new(REDIS_IMAGE.0, REDIS_IMAGE.1)
            .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
            .with_mapped_port(redis_port, 6379.tcp())
            .start()
            .await
            .map_err(setup)?;
        let servers = Self { nats, nats_ports, postgres, postgres_port, redis, redis_port };
        // The image's first "ready" is its init server on a unix socket; wait for the real one.
        if !super::postgres::wait_accepting(&servers.database_url("chat"), Duration::from_secs(60)).await {
            return Err(setup("postgres did not accept connections"));
        }
        if !super::nats::wait_jetstream(&servers.nats_urls(), Duration::from_secs(60)).await {
            return Err(setup("NATS JetStream did not answer"));
        }
        Ok(servers)
    }

    pub fn nats_urls(&self) -> Vec<String> {
        self.nats_ports.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect()
    }

    pub fn database_url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.postgres_port)
    }

    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.redis_port)
    }
}
