//! The gateway in-process, for router-level tests over real HTTP: `spawn_app` runs
//! `gateway::run` on 127.0.0.1:0 against the servers this test process shares
//! (`shared::local::test_servers`), in a namespace of its own (database, subjects, streams,
//! Redis keys), and with its own token keys, so a test can forge tokens the app accepts.

pub mod cases;
pub mod tokens;

use gateway::GatewayError;
use shared::config::{Config, LimitsConfig, Rate};
use shared::local::client::ChatClient;
use shared::local::{Namespace, test_servers};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One gateway (and, if asked for, one message worker) running in this test's runtime.
/// Dropping it cancels both.
pub struct TestApp {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    pub client: reqwest::Client,
    pub shutdown: CancellationToken,
    pub config: Config,
    pub namespace: Namespace,
    _gateway: JoinHandle<Result<(), GatewayError>>,
    _worker: Option<JoinHandle<Result<(), messages::WorkerError>>>,
    _dir: tempfile::TempDir,
}

/// What to run besides the gateway, and with which limits.
#[derive(Default)]
pub struct AppOptions {
    /// Runs the message worker too (`messages::run`): for tests that need stored messages.
    pub worker: bool,
    /// The limits; far above any test's load when `None`.
    pub limits: Option<LimitsConfig>,
}

/// The gateway alone, with limits no test reaches.
pub async fn spawn_app() -> TestApp {
    AppOptions::default().spawn().await
}

/// Limits no test's load reaches: tests that are not about limits check other things.
pub fn raised_limits() -> LimitsConfig {
    let many = |window_ms| Rate { count: 1_000_000, window_ms };
    LimitsConfig {
        rest_per_user: many(60_000),
        sends_per_user: many(1_000),
        messages_per_channel: many(60_000),
        sockets_per_user: 10_000,
        auth_per_ip_burst: 1_000_000,
        auth_per_ip_refill_ms: 1,
        ..LimitsConfig::default()
    }
}

impl AppOptions {
    /// The config of an app in a namespace of its own, and the directory its files live in.
    pub async fn config(&self) -> (Config, Namespace, tempfile::TempDir) {
        let servers = test_servers().await;
        let namespace = servers.namespace().await;
        let dir = tempfile::Builder::new().prefix("chat-app-").tempdir().expect("a temporary directory");
        let mut config = servers.config(&namespace);
        config.limits = self.limits.clone().unwrap_or_else(raised_limits);
        config.uploads.store = dir.path().join("uploads").display().to_string();
        config.gateway.jwt_keys_dir = Some(tokens::write_key_dir(dir.path()));
        (config, namespace, dir)
    }

    pub async fn spawn(self) -> TestApp {
        let (config, namespace, dir) = self.config().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("the bound address");
        let shutdown = CancellationToken::new();
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("a client");
        let worker = self.worker.then(|| tokio::spawn(messages::run(config.clone(), shutdown.child_token())));
        let mut gateway = tokio::spawn(gateway::run(config.clone(), listener, shutdown.child_token()));
        wait_ready(&client, &format!("http://{addr}/ready"), &mut gateway).await;
        TestApp {
            addr,
            base_url: format!("http://{addr}"),
            client,
            shutdown,
            config,
            namespace,
            _gateway: gateway,
            _worker: worker,
            _dir: dir,
        }
    }
}

/// Waits until `/ready` answers 200; panics with the gateway's error if it stopped first.
async fn wait_ready(client: &reqwest::Client, url: &str, gateway: &mut JoinHandle<Result<(), GatewayError>>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if client.get(url).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        if gateway.is_finished() {
            panic!("the gateway stopped before it was ready: {:?}", gateway.await);
        }
        assert!(tokio::time::Instant::now() < deadline, "the gateway was not ready within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Registers `username` (password `password-<username>`).
    pub async fn register(&self, username: &str) -> ChatClient {
        ChatClient::register(&self.base_url, username).await.expect("registration succeeds")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
