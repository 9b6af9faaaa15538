//! What the worker's tests start and build: a Postgres of their own with the migrations
//! applied, a one-node NATS JetStream with the cell's streams and consumer (R1), the rows a
//! message needs (users, a channel, its members), and the stream messages a gateway publishes.

use shared::events::{Change, StreamChange, StreamMessage};
use shared::ids::{ChannelId, ClientMsgId, MessageId, UserId};
use shared::local::postgres::LocalPostgres;
use shared::local::process::{ChildProcess, free_port_on, random_loopback};
use shared::protocol::{ContentType, SenderView};
use shared::snowflake::SnowflakeGenerator;
use sqlx::PgPool;
use std::sync::LazyLock;
use std::time::Duration;

/// How long a test waits for a server to start or for something eventual.
pub const WAIT: Duration = Duration::from_secs(30);

/// A Postgres server of one test with one migrated database. One per test rather than one per
/// test binary: nextest runs every test in its own process anyway, a `static` is never dropped
/// (so its server would outlive the test), and `initdb`, start and migrations take about a
/// second.
pub struct TestDb {
    /// Declared first, so it is stopped before its directory is removed.
    postgres: LocalPostgres,
    pub pool: PgPool,
    _dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn start() -> Self {
        let dir = tempfile::Builder::new().prefix("messages-pg-").tempdir().expect("temporary directory");
        let host = random_loopback();
        let postgres =
            LocalPostgres::start(dir.path(), host, free_port_on(host), false).await.expect("postgres starts");
        postgres.create_database("messages").await.expect("database created");
        let pool = PgPool::connect(&postgres.url("messages")).await.expect("connects to postgres");
        shared::db::MIGRATOR.run(&pool).await.expect("migrations apply");
        Self { postgres, pool, _dir: dir }
    }
}

impl Drop for TestDb {
    /// A fast shutdown (SIGINT) rather than the kill -9 of the process handle: a killed
    /// postmaster leaves its SysV shared-memory segment behind, one per test run.
    fn drop(&mut self) {
        let Some(mut process) = self.postgres.process.take() else { return };
        process.signal(nix::sys::signal::Signal::SIGINT);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while process.is_running() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A one-node NATS server with JetStream, on a loopback address of its own.
pub struct TestNats {
    _process: ChildProcess,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl TestNats {
    pub async fn start() -> Self {
        let dir = tempfile::Builder::new().prefix("messages-nats-").tempdir().expect("temporary directory");
        let host = random_loopback();
        let port = free_port_on(host);
        let process = shared::local::nats::start_single_node(dir.path(), host, port).expect("nats starts");
        let url = format!("nats://{host}:{port}");
        assert!(
            shared::local::nats::wait_jetstream(std::slice::from_ref(&url), WAIT).await,
            "JetStream answers"
        );
        Self { _process: process, url, _dir: dir }
    }
}

/// Message ids of every test of the process, from one generator so none is handed out twice.
static IDS: LazyLock<SnowflakeGenerator> =
    LazyLock::new(|| SnowflakeGenerator::new(7).expect("node id in range"));

/// A user row; returned as a message's sender.
pub async fn user(db: &PgPool, name: &str) -> SenderView {
    let id = UserId::new_random();
    let username = format!("{name}-{}", &id.to_string()[..8]);
    sqlx::query(
        "INSERT INTO users (id, email, username, password_hash, display_name) VALUES ($1, $2, $3, 'x', $4)",
    )
    .bind(id)
    .bind(format!("{username}@test.local"))
    .bind(&username)
    .bind(name)
    .execute(db)
    .await
    .expect("user inserted");
    SenderView { id, username, avatar_url: None }
}

/// A group channel with `members` and their roles (`owner`, `admin`, `member`).
pub async fn channel(db: &PgPool, members: &[(&SenderView, &str)]) -> ChannelId {
    let id = ChannelId::new_random();
    sqlx::query("INSERT INTO channels (id, kind, name) VALUES ($1, 'group', 'test')")
        .bind(id)
        .execute(db)
        .await
        .expect("channel inserted");
    for (member, role) in members {
        sqlx::query("INSERT INTO channel_members (channel_id, user_id, role) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(member.id)
            .bind(role)
            .execute(db)
            .await
            .expect("member inserted");
    }
    id
}

/// A send as a gateway publishes it: content `text of <client_id>`.
pub fn send(channel: ChannelId, sender: &SenderView, client_id: &str) -> StreamMessage {
    StreamMessage {
        message_id: IDS.next_id(),
        channel_id: channel,
        sender: sender.clone(),
        client_msg_id: ClientMsgId(client_id.into()),
        content: format!("text of {client_id}"),
        content_type: ContentType::Text,
        reply_to: None,
        created_at: chrono::Utc::now(),
        mentions: Vec::new(),
        mentions_channel: false,
        attachments: Vec::new(),
    }
}

/// A change as a gateway publishes it.
pub fn change(message: &StreamMessage, actor: UserId, client_id: &str, change: Change) -> StreamChange {
    StreamChange {
        channel_id: message.channel_id,
        message_id: message.message_id,
        actor,
        client_msg_id: ClientMsgId(client_id.into()),
        change,
        created_at: chrono::Utc::now(),
    }
}

pub fn edit(content: &str) -> Change {
    Change::Edit { content: content.into(), mentions: Vec::new(), mentions_channel: false }
}

pub fn reaction_add(emoji: &str) -> Change {
    Change::ReactionAdd { emoji: emoji.into() }
}

/// The channel's stored messages as `(seq, client id)`, in `seq` order.
pub async fn stored(db: &PgPool, channel: ChannelId) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT seq, client_msg_id FROM messages WHERE channel_id = $1 ORDER BY seq")
        .bind(channel)
        .fetch_all(db)
        .await
        .expect("messages read")
}

/// `(seq, client id)` for each of `ids`, numbered from `first`.
pub fn numbered(first: i64, ids: &[&str]) -> Vec<(i64, String)> {
    ids.iter().enumerate().map(|(i, id)| (first + i as i64, id.to_string())).collect()
}

/// The channel's `last_seq` and `message_count`.
pub async fn counters(db: &PgPool, channel: ChannelId) -> (i64, i64) {
    sqlx::query_as("SELECT last_seq, message_count FROM channels WHERE id = $1")
        .bind(channel)
        .fetch_one(db)
        .await
        .expect("channel read")
}

/// The channel's change log as `(seq, kind, client id)`, in the order it was written.
pub async fn events(db: &PgPool, channel: ChannelId) -> Vec<(Option<i64>, String, String)> {
    sqlx::query_as(
        "SELECT seq, kind, client_msg_id FROM channel_events WHERE channel_id = $1 ORDER BY created_at, seq",
    )
    .bind(channel)
    .fetch_all(db)
    .await
    .expect("events read")
}

/// `(seq, kind, client id)` rows as [`events`] returns them.
pub fn logged(rows: &[(Option<i64>, &str, &str)]) -> Vec<(Option<i64>, String, String)> {
    rows.iter().map(|(seq, kind, id)| (*seq, kind.to_string(), id.to_string())).collect()
}

/// A member's read position in a channel.
pub async fn last_read(db: &PgPool, channel: ChannelId, user: UserId) -> i64 {
    let (seq,): (i64,) =
        sqlx::query_as("SELECT last_read_seq FROM channel_members WHERE channel_id = $1 AND user_id = $2")
            .bind(channel)
            .bind(user)
            .fetch_one(db)
            .await
            .expect("member read");
    seq
}

/// The stored message `id`: its content and whether it is deleted.
pub async fn content(db: &PgPool, id: MessageId) -> (String, bool) {
    sqlx::query_as("SELECT content, deleted_at IS NOT NULL FROM messages WHERE message_id = $1")
        .bind(id)
        .fetch_one(db)
        .await
        .expect("message read")
}
