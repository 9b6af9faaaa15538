//! Configuration of the cell's processes, layered: defaults in code, then an optional TOML
//! file, then environment variables `CHAT__SECTION__KEY` (e.g. `CHAT__DATABASE__URL`).
//! Config is a plain struct handed down; nothing below `main` reads the environment.

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::SecretString;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    pub nats: NatsConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub gateway: GatewayConfig,
    pub worker: WorkerConfig,
    pub limits: LimitsConfig,
    pub uploads: UploadsConfig,
    pub calls: CallsConfig,
    pub log: LogConfig,
}

/// Calls: the cell relays their signaling; media goes peer to peer, or through the TURN
/// servers (or an SFU) the operator runs. Clients get the ICE servers from
/// `GET /api/v1/calls/ice-servers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CallsConfig {
    /// STUN servers, as `stun:host:port`.
    pub stun_urls: Vec<String>,
    /// TURN servers (`turn:host:3478?transport=udp`, `turns:host:5349`), given out with a
    /// credential of coturn's `use-auth-secret` scheme when `turn_secret` is set.
    pub turn_urls: Vec<String>,
    /// coturn's `static-auth-secret`. Unset: no TURN server is given out.
    pub turn_secret: Option<SecretString>,
    /// How long a TURN credential works.
    #[serde(with = "secs")]
    pub turn_credential_ttl: Duration,
}

impl Default for CallsConfig {
    fn default() -> Self {
        Self {
            stun_urls: Vec::new(),
            turn_urls: Vec::new(),
            turn_secret: None,
            turn_credential_ttl: Duration::from_secs(3600),
        }
    }
}

/// Rate and connection limits, shared by every gateway of a cell through Redis (sliding
/// windows). When Redis does not answer, every limit fails open (chat keeps working; the
/// per-socket bounds still hold) and `chat_gateway_rate_limiter_errors_total` counts it.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// Authenticated REST requests per user.
    #[serde(deserialize_with = "rates::rest_per_user")]
    pub rest_per_user: Rate,
    /// `message.send` frames per user, over all their sockets and gateways.
    #[serde(deserialize_with = "rates::sends_per_user")]
    pub sends_per_user: Rate,
    /// Messages per channel, from all its members.
    #[serde(deserialize_with = "rates::messages_per_channel")]
    pub messages_per_channel: Rate,
    /// Open WebSocket connections per user; the next one gets 429 before the upgrade.
    pub sockets_per_user: u32,
    /// How long an open socket counts without its gateway renewing it (a crashed gateway's
    /// sockets stop counting after this).
    #[serde(with = "secs")]
    pub socket_lease: Duration,
    /// Rate-limited frames in a row after which the socket is closed with 4029.
    pub strikes_before_close: u32,
    /// Register, login and refresh per client IP (in-process, per gateway): a burst of this
    /// many …
    pub auth_per_ip_burst: u32,
    /// … refilled by one every this many milliseconds.
    pub auth_per_ip_refill_ms: u64,
    /// How long a limiter call may take before the limit fails open.
    #[serde(with = "millis")]
    pub redis_timeout: Duration,
}

/// At most `count` events per sliding `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Rate {
    pub count: u32,
    pub window_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            rest_per_user: Rate { count: 100, window_ms: 60_000 },
            sends_per_user: Rate { count: 10, window_ms: 1_000 },
            messages_per_channel: Rate { count: 1_000, window_ms: 60_000 },
            sockets_per_user: 5,
            socket_lease: Duration::from_secs(60),
            strikes_before_close: 10,
            auth_per_ip_burst: 10,
            auth_per_ip_refill_ms: 6_000,
            redis_timeout: Duration::from_millis(250),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct NatsConfig {
    /// Seed URLs of the cluster; the client learns the other nodes from the server.
    pub urls: Vec<String>,
    /// Prefix of every subject of this cell.
    pub subject_prefix: String,
    /// Name of the message stream.
    pub stream: String,
    /// Partitions of the message stream: one consumer, and one worker at a time, each.
    pub partitions: u16,
    /// Replicas of the stream and its consumers (3 in a real cell).
    pub replicas: usize,
    /// How long JetStream remembers a `Nats-Msg-Id` to drop resends.
    #[serde(with = "secs")]
    pub duplicate_window: Duration,
    /// Stream keeping messages that could not be persisted (and the server's notices of
    /// messages past `max_deliver`), for an operator to inspect and replay.
    pub dead_letter_stream: String,
    /// Keep the partition consumers' state (what was delivered and acked) in memory on each
    /// of their replicas instead of on disk. Off by default. On, a consumer's acks are no
    /// longer written and fsynced on every replica; a node that restarts catches up from its
    /// peers, but a restart of the whole cluster at once forgets every position, and each
    /// partition is then delivered again from the start of the stream (persisting is
    /// idempotent, so that costs time, never a duplicate). Set it before the consumers are
    /// created (nats/README.md says how to switch a running cell).
    pub consumer_state_in_memory: bool,
    /// How often gateways and workers ping their NATS server. A server that stops answering
    /// (cut off by a partition while it keeps running, so no TCP reset comes) is given up
    /// after about three intervals and the client reconnects to another node; async-nats's
    /// own default, 60 s, left a gateway failing every send for minutes (cell/tests/partitions.rs).
    #[serde(with = "secs")]
    pub ping_interval: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    pub url: SecretString,
    pub max_connections: u32,
    /// Run the embedded migrations at start (they take an advisory lock, so several
    /// processes may do it at once).
    pub migrate: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RedisConfig {
    pub url: SecretString,
    pub pool_size: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// Connections the kernel queues for `listen` before they are accepted (the kernel caps it
    /// at `net.core.somaxconn`). Thousands of clients reconnect at once when a gateway dies;
    /// past the queue their SYNs are dropped and each waits a retransmission (1 s, then 3 s).
    pub listen_backlog: u32,
    /// `/metrics`, `/health` and `/ready`, apart from client traffic.
    pub admin_listen: SocketAddr,
    /// Snowflake node id, unique per gateway of a cell (0–1023).
    pub node_id: u16,
    /// Directory of the access-token keys (Ed25519): `signing.pem` + `signing.kid` sign, every
    /// `<kid>.pub` verifies (the signing key's own among them; older ones during a rotation).
    /// Unset: built-in development keys (never in production).
    pub jwt_keys_dir: Option<std::path::PathBuf>,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    #[serde(with = "secs")]
    pub access_token_ttl: Duration,
    #[serde(with = "secs")]
    pub refresh_token_ttl: Duration,
    /// A publish batch is flushed after this long …
    #[serde(with = "millis")]
    pub publish_linger: Duration,
    /// … or when it holds this many messages.
    pub publish_batch_max: usize,
    /// Publishes awaiting their PubAck, at most; senders wait beyond that.
    pub publish_max_inflight: usize,
    /// How long to wait for a PubAck before answering `publish_failed`.
    #[serde(with = "millis")]
    pub publish_ack_timeout: Duration,
    /// Bytes of live frames queued (or held during a sync) for one socket, at most; past that
    /// the socket is closed with 4008. A sync's backlog is queued outside this budget.
    pub socket_queue_bytes: usize,
    /// Messages a `sync` sends per channel, at most; above that `sync.done` says `truncated`.
    pub sync_backlog_max: usize,
    /// `presence.update` goes out over channels of at most this many members. Every
    /// transition of a member reaches every member, so a channel of N members costs N² frames
    /// as they come and go; members of larger channels read presence from `GET /users/{id}`.
    pub presence_max_members: u32,
    /// Members of channels of at most this many members are told each other's read
    /// positions (`receipt.updated`). Each position that moves reaches every member, so a
    /// message read by all N members costs N² frames; larger channels show none.
    pub receipts_max_members: u32,
    /// Largest WebSocket message accepted, in bytes.
    pub max_ws_message_bytes: usize,
    /// Largest WebSocket frame accepted, in bytes (a message may span frames).
    pub max_ws_frame_bytes: usize,
    /// Browser origins (`https://chat.example.com`) allowed to open WebSockets and call the
    /// REST API (CORS), besides the gateway's own (a page whose `Origin` is the request's
    /// `Host`) and `public_url`'s; `["*"]`: any origin (development only). Clients that send
    /// no `Origin` (not browsers) are never refused for it.
    pub allowed_origins: Vec<String>,
    /// The URL clients reach the cell at (`https://chat.example.com`), when a proxy or load
    /// balancer stands in front of the gateways: its origin is allowed as the gateway's own.
    pub public_url: Option<String>,
    /// A built web client (`web/dist`) to serve at `/`: its files, and its `index.html` for any
    /// other path outside `/api/`, so the client and the API share one origin. None: no pages.
    pub web_dir: Option<std::path::PathBuf>,
    /// Open WebSockets this gateway accepts, at most; the next upgrade gets 503.
    pub max_connections: usize,
    /// The server pings each socket this often …
    #[serde(with = "secs")]
    pub ping_interval: Duration,
    /// … and closes one it heard nothing from (not even a pong) for this long, with 4000.
    #[serde(with = "secs")]
    pub idle_timeout: Duration,
    /// On shutdown, sockets are closed with 1012 each at a random moment of this window, so
    /// their clients reconnect to other gateways spread out rather than all at once.
    #[serde(with = "millis")]
    pub drain_window: Duration,
    /// How long shutdown waits for in-flight work before giving up; above `drain_window`
    /// plus `publish_ack_timeout`.
    #[serde(with = "secs")]
    pub shutdown_grace: Duration,
    /// A connection must deliver a request's headers (a WebSocket handshake's included)
    /// within this long of starting it, or it is closed (slowloris).
    #[serde(with = "millis")]
    pub header_read_timeout: Duration,
    /// A REST request (body included) must be answered within this long: 408 otherwise.
    #[serde(with = "millis")]
    pub request_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct WorkerConfig {
    /// `/metrics`, `/health` and `/ready`.
    pub admin_listen: SocketAddr,
    /// Messages persisted in one transaction, at most.
    pub batch_max: usize,
    /// JetStream redelivers a message not acked in time; the n-th delivery waits the n-th of
    /// these (the last one repeats), so the first is the ack wait. A worker busy with a batch
    /// extends it with progress acks.
    #[serde(with = "secs_list")]
    pub redelivery_backoff: Vec<Duration>,
    /// Deliveries of one message, at most; past that the server gives up on it and its notice
    /// lands in the dead-letter stream. Must exceed the length of `redelivery_backoff`.
    pub max_deliver: i64,
    /// How long a partition stays pinned to a worker that stopped pulling.
    #[serde(with = "secs")]
    pub pin_timeout: Duration,
    #[serde(with = "secs")]
    pub shutdown_grace: Duration,
}

/// Files users upload (`POST /api/v1/upload`), kept in an object store.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct UploadsConfig {
    /// Where the files go: a local directory (every gateway of a cell must see the same one),
    /// or `s3://bucket/prefix` for any S3-compatible store, its credentials, region and
    /// endpoint taken from the usual `AWS_*` environment variables (`AWS_ENDPOINT` for MinIO
    /// and the like).
    pub store: String,
    /// Largest file accepted, in bytes; above it: 413.
    pub max_bytes: u64,
    /// Uploads one gateway receives at once, at most; the next gets 503. Each holds up to
    /// 15 MiB (a 5 MiB part filling while two are sent), so 16 bound them to 240 MiB.
    pub max_in_progress: usize,
    /// Uploads one user sends through one gateway at once, at most; the next gets 429.
    pub max_in_progress_per_user: usize,
    /// An upload request (its whole body) must be done within this long: 408 otherwise.
    #[serde(with = "secs")]
    pub request_timeout: Duration,
    /// How long a signed link (`GET /api/v1/upload/{id}/link`) works.
    #[serde(with = "secs")]
    pub link_ttl: Duration,
    /// The key signed links are signed with (at least 32 bytes); the same on every gateway.
    /// Unset: a random key per process, so a link works only on the gateway that signed it.
    pub link_key: Option<SecretString>,
    /// Bytes one user's uploads (not deleted) may take, in all; an upload past it: 413
    /// `quota_exceeded`. Checked as an upload starts: uploads in progress at once (2 per gateway)
    /// may overshoot it by a few files.
    pub quota_bytes_per_user: u64,
    /// Downloads one gateway serves at once, at most; the next gets 503.
    pub max_downloads_in_progress: usize,
    /// Downloads of one user (or of one signed link) at once through one gateway; the next
    /// gets 429.
    pub max_downloads_in_progress_per_user: usize,
    /// Longest an upload may wait for its client's next bytes (408 past it), and a download
    /// for its client to take the next chunk (cut off past it, its slot given back).
    #[serde(with = "secs")]
    pub idle_timeout: Duration,
    /// An upload never attached to a message is deleted this long after it was stored.
    #[serde(with = "secs")]
    pub unattached_ttl: Duration,
    /// How often each gateway looks for uploads to sweep: unattached ones past
    /// `unattached_ttl`, and files of uploads that never finished (their request ended without
    /// a row, past `request_timeout`).
    #[serde(with = "secs")]
    pub sweep_interval: Duration,
}

impl Default for UploadsConfig {
    fn default() -> Self {
        Self {
            store: "data/uploads".into(),
            max_bytes: 25 * 1024 * 1024,
            max_in_progress: 16,
            max_in_progress_per_user: 2,
            request_timeout: Duration::from_secs(300),
            link_ttl: Duration::from_secs(300),
            link_key: None,
            quota_bytes_per_user: 1024 * 1024 * 1024,
            max_downloads_in_progress: 256,
            max_downloads_in_progress_per_user: 8,
            idle_timeout: Duration::from_secs(30),
            unattached_ttl: Duration::from_secs(24 * 3600),
            sweep_interval: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info,gateway=debug`.
    pub filter: String,
    /// JSON lines instead of human-readable text.
    pub json: bool,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            urls: vec!["nats://127.0.0.1:4222".into()],
            subject_prefix: "chat".into(),
            stream: "CHAT_MESSAGES".into(),
            partitions: 16,
            replicas: 3,
            duplicate_window: Duration::from_secs(120),
            dead_letter_stream: "CHAT_DEAD_LETTERS".into(),
            consumer_state_in_memory: false,
            ping_interval: Duration::from_secs(5),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: "postgres://chat@127.0.0.1:5432/chat".into(), max_connections: 16, migrate: true }
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self { url: "redis://127.0.0.1:6379".into(), pool_size: 16 }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            listen_backlog: 8192,
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9091)),
            node_id: 0,
            jwt_keys_dir: None,
            jwt_issuer: "chat-cell".into(),
            jwt_audience: "chat".into(),
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(7 * 24 * 3600),
            publish_linger: Duration::from_millis(1),
            publish_batch_max: 100,
            publish_max_inflight: 4096,
            publish_ack_timeout: Duration::from_millis(5000),
            socket_queue_bytes: 1024 * 1024,
            sync_backlog_max: 1000,
            presence_max_members: 250,
            receipts_max_members: 20,
            max_ws_message_bytes: 64 * 1024,
            max_ws_frame_bytes: 16 * 1024,
            allowed_origins: Vec::new(),
            public_url: None,
            web_dir: None,
            max_connections: 100_000,
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            drain_window: Duration::from_secs(10),
            // drain window + PubAck timeout + flush before close + close frame, with margin.
            shutdown_grace: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            batch_max: 256,
            redelivery_backoff: [30, 60, 120, 300, 600].map(Duration::from_secs).to_vec(),
            max_deliver: 10,
            pin_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { filter: "info".into(), json: false }
    }
}

impl Config {
    /// Defaults, then `file` if given, then `CHAT__…` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment.merge(Env::prefixed("CHAT__").split("__")).extract().map_err(|e| ConfigError(Box::new(e)))
    }

    /// The config file named by `--config <path>` or `CHAT_CONFIG`, if any.
    pub fn load_from_args() -> Result<Self, ConfigError> {
        let mut args = std::env::args().skip(1);
        let mut file = std::env::var_os("CHAT_CONFIG").map(std::path::PathBuf::from);
        while let Some(arg) = args.next() {
            if arg == "--config" {
                file = args.next().map(Into::into);
            }
        }
        Self::load(file.as_deref())
    }
}

/// The limits' rates, each field defaulting on its own to its setting's default: a file or
/// `CHAT__LIMITS__SENDS_PER_USER__COUNT=1000` alone keeps that rate's `window_ms`.
mod rates {
    use super::{LimitsConfig, Rate};
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Partial {
        count: Option<u32>,
        window_ms: Option<u64>,
    }

    fn over<'de, D: Deserializer<'de>>(d: D, default: Rate) -> Result<Rate, D::Error> {
        let given = Partial::deserialize(d)?;
        Ok(Rate {
            count: given.count.unwrap_or(default.count),
            window_ms: given.window_ms.unwrap_or(default.window_ms),
        })
    }

    pub fn rest_per_user<'de, D: Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
        over(d, LimitsConfig::default().rest_per_user)
    }

    pub fn sends_per_user<'de, D: Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
        over(d, LimitsConfig::default().sends_per_user)
    }

    pub fn messages_per_channel<'de, D: Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
        over(d, LimitsConfig::default().messages_per_channel)
    }
}

/// Durations in config files are whole seconds.
mod secs {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// Lists of durations in config files are whole seconds.
mod secs_list {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Vec::<u64>::deserialize(d).map(|secs| secs.into_iter().map(Duration::from_secs).collect())
    }
}

/// Durations in config files are whole milliseconds.
mod millis {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the error type
    fn file_overrides_defaults_and_env_overrides_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("cell.toml", "[gateway]\nnode_id = 3\n[nats]\npartitions = 4\n")?;
            jail.set_env("CHAT__NATS__PARTITIONS", "8");
            jail.set_env("CHAT__DATABASE__URL", "postgres://x@h/db");
            let config = Config::load(Some(Path::new("cell.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(config.gateway.node_id, 3);
            assert_eq!(config.nats.partitions, 8);
            assert_eq!(config.database.url.expose_secret(), "postgres://x@h/db");
            assert_eq!(config.nats.replicas, 3);
            Ok(())
        });
    }

    /// One field of a rate, from the file or the environment, leaves the other at its
    /// setting's own default (not another rate's).
    #[test]
    #[allow(clippy::result_large_err)]
    fn each_field_of_a_rate_defaults_on_its_own() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("cell.toml", "[limits.rest_per_user]\nwindow_ms = 5000\n")?;
            jail.set_env("CHAT__LIMITS__MESSAGES_PER_CHANNEL__COUNT", "1000000");
            jail.set_env("CHAT__LIMITS__SENDS_PER_USER__WINDOW_MS", "2000");
            let config = Config::load(Some(Path::new("cell.toml"))).map_err(|e| e.to_string())?;
            let limits = &config.limits;
            assert_eq!(limits.messages_per_channel, Rate { count: 1_000_000, window_ms: 60_000 });
            assert_eq!(limits.sends_per_user, Rate { count: 10, window_ms: 2_000 });
            assert_eq!(limits.rest_per_user, Rate { count: 100, window_ms: 5_000 });
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn a_misspelt_rate_field_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CHAT__LIMITS__SENDS_PER_USER__CONUT", "5");
            let error = Config::load(None).expect_err("an unknown field of a rate");
            assert!(error.to_string().contains("conut"), "{error}");
            Ok(())
        });
    }
}
