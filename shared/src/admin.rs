//! The admin endpoint every process serves on its own port, apart from client traffic:
//! `/metrics` (Prometheus, OpenMetrics text), `/health` (the process answers) and `/ready`
//! (its dependencies answer and it is not draining). Also [`probe`], the `healthcheck`
//! sub-command a container runs against it, and the metrics both processes export.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What `/ready` reports: each dependency by name, and whether the process drains.
#[derive(Debug, Default)]
pub struct ReadyReport {
    pub checks: Vec<(&'static str, bool)>,
    /// Reported, but not needed to be ready (a dependency whose loss degrades the process
    /// without stopping it).
    pub optional: Vec<(&'static str, bool)>,
    pub draining: bool,
}

impl ReadyReport {
    pub fn ready(&self) -> bool {
        !self.draining && self.checks.iter().all(|(_, ok)| *ok)
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut body = serde_json::Map::new();
        body.insert("ready".into(), self.ready().into());
        for (name, ok) in self.checks.iter().chain(&self.optional) {
            body.insert((*name).into(), (*ok).into());
        }
        body.insert("draining".into(), self.draining.into());
        body.into()
    }
}

/// Runs a process's readiness checks.
pub type ReadyCheck = Arc<dyn Fn() -> BoxFuture<'static, ReadyReport> + Send + Sync>;
/// Brings sampled gauges (pool usage, say) up to date just before a scrape.
pub type BeforeScrape = Arc<dyn Fn() + Send + Sync>;

/// Everything the admin endpoint serves.
pub struct Admin {
    pub registry: Registry,
    pub ready: ReadyCheck,
    pub before_scrape: Vec<BeforeScrape>,
}

impl Admin {
    /// An admin endpoint for `process`, with `chat_build_info` registered.
    pub fn new(process: &'static str, ready: ReadyCheck) -> Self {
        let mut registry = Registry::default();
        let info = Family::<BuildLabels, Gauge>::default();
        info.get_or_create(&BuildLabels { process, version: env!("CARGO_PKG_VERSION") }).set(1);
        registry.register("chat_build_info", "Process kind and version; always 1", info);
        Self { registry, ready, before_scrape: Vec::new() }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    process: &'static str,
    version: &'static str,
}

#[derive(Debug, thiserror::Error)]
#[error("admin endpoint on {addr}: {source}")]
pub struct AdminError {
    addr: SocketAddr,
    source: std::io::Error,
}

/// Binds the admin port now (so a taken port fails the start) and serves it until `stop`.
/// Stop it last: `/ready` should answer "draining" while the process drains.
pub async fn serve(
    listen: SocketAddr,
    admin: Admin,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, AdminError> {
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|source| AdminError { addr: listen, source })?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
        .route("/ready", get(ready))
        .with_state(Arc::new(admin));
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
        if let Err(error) = served {
            tracing::warn!(%error, "admin endpoint stopped");
        }
    }))
}

async fn metrics(State(admin): State<Arc<Admin>>) -> Response {
    for refresh in &admin.before_scrape {
        refresh();
    }
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &admin.registry) {
        Ok(()) => {
            ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
                .into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn ready(State(admin): State<Arc<Admin>>) -> Response {
    let report = (admin.ready)().await;
    let status = if report.ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(report.to_json())).into_response()
}

/// Whether NATS is connected right now.
pub fn nats_connected(nats: &async_nats::Client) -> bool {
    nats.connection_state() == async_nats::connection::State::Connected
}

/// Whether Postgres answers a query.
pub async fn postgres_answers(db: &sqlx::PgPool) -> bool {
    sqlx::query("SELECT 1").execute(db).await.is_ok()
}

/// Connections of the process's pools, sampled at scrape time.
#[derive(Clone, Default)]
pub struct PoolGauges {
    connections: Family<PoolStateLabels, Gauge>,
    max: Family<PoolLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolStateLabels {
    pool: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: &'static str,
}

impl PoolGauges {
    pub fn register(registry: &mut Registry) -> Self {
        let gauges = Self::default();
        registry.register("chat_pool_connections", "Pool connections by state", gauges.connections.clone());
        registry.register("chat_pool_max_connections", "Pool size limit", gauges.max.clone());
        gauges
    }

    pub fn set(&self, pool: &'static str, busy: usize, idle: usize, max: usize) {
        let gauge = |state| self.connections.get_or_create(&PoolStateLabels { pool, state }).clone();
        gauge("busy").set(busy as i64);
        gauge("idle").set(idle as i64);
        self.max.get_or_create(&PoolLabels { pool }).set(max as i64);
    }

    pub fn set_postgres(&self, db: &sqlx::PgPool) {
        let size = db.size() as usize;
        let idle = db.num_idle();
        self.set("postgres", size.saturating_sub(idle), idle, db.options().get_max_connections() as usize);
    }
}

/// The `healthcheck` sub-command: asks the admin endpoint at `listen` for `/health` and says
/// whether it answered 200. Plain blocking HTTP/1.0, so a container needs no curl.
pub fn probe(listen: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let timeout = std::time::Duration::from_secs(3);
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, timeout) else { return false };
    let _ = stream.set_read_timeout(Some(timeout));
    if stream.write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

/// Histogram buckets for latencies, 1 ms to ~16 s.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 16.0].into_iter()
}

/// Histogram buckets for batch sizes, 1 to 1024.
pub fn size_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(1.0, 2.0, 11)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_metrics_health_and_readiness_and_probe_tells_up_from_down() {
        let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = draining.clone();
        let ready: ReadyCheck = Arc::new(move || {
            let draining = flag.load(std::sync::atomic::Ordering::Relaxed);
            Box::pin(async move {
                ReadyReport { checks: vec![("nats", true)], optional: vec![("redis", false)], draining }
            })
        });
        let mut admin = Admin::new("test", ready);
        let pools = PoolGauges::register(&mut admin.registry);
        let sampled = pools.clone();
        admin.before_scrape.push(Arc::new(move || sampled.set("redis", 3, 5, 16)));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let stop = CancellationToken::new();
        let task = serve(addr, admin, stop.clone()).await.unwrap();

        let probe_addr = addr;
        assert!(tokio::task::spawn_blocking(move || probe(probe_addr)).await.unwrap());
        let body = get(addr, "/metrics").await;
        assert!(body.contains("chat_build_info{process=\"test\",version=\""), "{body}");
        assert!(body.contains("chat_pool_connections{pool=\"redis\",state=\"busy\"} 3"), "{body}");
        assert!(body.contains("chat_pool_max_connections{pool=\"redis\"} 16"), "{body}");
        let answer = get(addr, "/ready").await;
        assert!(answer.starts_with("HTTP/1.0 200") && answer.contains("\"redis\":false"), "{answer}");
        draining.store(true, std::sync::atomic::Ordering::Relaxed);
        let answer = get(addr, "/ready").await;
        assert!(answer.starts_with("HTTP/1.0 503") && answer.contains("\"draining\":true"), "{answer}");

        stop.cancel();
        task.await.unwrap();
        assert!(!tokio::task::spawn_blocking(move || probe(addr)).await.unwrap());
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }
}
