//! Presence: online / away / offline per user, multi-device, shared by the cell through
//! Redis. A user is online while any of their sockets holds a live lease: the same leases
//! that count sockets per user, renewed by their gateway every 20 s and gone 60 s after a
//! gateway dies, so `GET /users/{id}` shows a crashed gateway's users offline within a
//! minute. `presence.set {status}` chooses between online and away while connected.
//!
//! Changes travel as `presence.update {user_id, status, last_seen_at}` over the delivery
//! subject of each of the user's channels of at most `gateway.presence_max_members` members,
//! so exactly the people who share such a channel hear of it. Each transition reaches every
//! member, so a channel's presence costs the square of its members: 10,000 members coming
//! online would be 10⁸ frames. Members of larger channels read presence from
//! `GET /users/{id}` (the column `channels.member_count` says which are larger). Only transitions are published (Redis keeps the status last told, per user: a second
//! device or a reconnect publishes nothing), and a socket drops an update that says what it
//! was told last about that user (it may share several channels with them). A socket's
//! `presence.set` frames are coalesced and applied at most every half second. Going offline
//! waits `OFFLINE_GRACE`, so a reconnect does not flicker.
//!
//! A gateway that crashed announces nothing, so every gateway also sweeps: Redis keeps the
//! cell's users with leases, scored by when their last lease ends; every
//! `socket_lease / 6` (10 s by default) each gateway takes out the users whose leases have
//! all ended (atomically: each user goes to one gateway) and announces them like a closed
//! socket does, which tells anyone only if they are now offline. So a crashed gateway's users
//! are announced offline at most a lease and a sweep after their last renewal (70 s by
//! default).
//!
//! Not yet: ordering between updates published by different gateways for the same user
//! within moments (a version per user would settle it).

use crate::conn::ConnHandle;
use crate::ratelimit::RateLimiter;
use shared::events::{PRESENCE_HEADER, publish_on_channel};
use shared::ids::{ChannelId, UserId};
use shared::protocol::{PresenceStatus, PresenceView, ServerFrame};
use shared::subjects::Subjects;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long after a user's last socket closes they are announced offline (if no other came).
pub const OFFLINE_GRACE: Duration = Duration::from_secs(3);

/// KEYS: the user's socket leases, chosen status, last seen, status last told. ARGV[1]: '1'
/// to record the status as told. Returns the status, when last seen (Unix ms, '' if never)
/// and 1 if the status differs from the one last told.
static PRESENCE: LazyLock<deadpool_redis::redis::Script> = LazyLock::new(|| {
    deadpool_redis::redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local status = 'offline'
if redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf') > 0 then
  status = redis.call('GET', KEYS[2]) == 'away' and 'away' or 'online'
end
local changed = redis.call('GET', KEYS[4]) ~= status and 1 or 0
if ARGV[1] == '1' then redis.call('SET', KEYS[4], status, 'EX', 86400) end
return {status, redis.call('GET', KEYS[3]) or '', changed}
",
    )
});

/// The cell's presence as one gateway reads, records and announces it.
pub struct Presence {
    redis: deadpool_redis::Pool,
    /// The socket leases that say who is online live with the limiter's keys.
    limiter: RateLimiter,
    nats: async_nats::Client,
    subjects: Subjects,
    db: sqlx::PgPool,
    /// The gateway's socket tasks: an offline announcement is tracked with them, so a
    /// draining gateway still says its users went offline.
    sockets: TaskTracker,
    /// Channels of more members hear no presence.
    max_members: u32,
}

impl Presence {
    pub fn new(
        redis: deadpool_redis::Pool,
        limiter: RateLimiter,
        nats: async_nats::Client,
        subjects: Subjects,
        db: sqlx::PgPool,
        sockets: TaskTracker,
        max_members: u32,
    ) -> Arc<Self> {
        Arc::new(Self { redis, limiter, nats, subjects, db, sockets, max_members })
    }

    fn presence_key(&self, what: &str, user: UserId) -> String {
        format!("{}:presence:{what}:{user}", self.subjects.prefix())
    }

    /// The presence of `user` now; offline when Redis cannot tell.
    pub async fn of(&self, user: UserId) -> PresenceView {
        self.presence(user, false).await.0
    }

    /// The presence of `user` now, and whether it differs from the one last told (recorded
    /// as told when `tell`).
    async fn presence(&self, user: UserId, tell: bool) -> (PresenceView, bool) {
        let mut call = PRESENCE.prepare_invoke();
        call.key(self.limiter.sockets_key(user))
            .key(self.presence_key("status", user))
            .key(self.presence_key("seen", user))
            .key(self.presence_key("told", user))
            .arg(if tell { "1" } else { "0" });
        let answer = tokio::time::timeout(self.limiter.config().redis_timeout, async {
            let mut conn = self.redis.get().await.ok()?;
            call.invoke_async::<(String, String, i64)>(&mut conn).await.ok()
        })
        .await;
        let Some((status, seen, changed)) = answer.ok().flatten() else {
            let unknown = PresenceView { user_id: user, status: PresenceStatus::Offline, last_seen_at: None };
            return (unknown, false);
        };
        let status = match status.as_str() {
            "online" => PresenceStatus::Online,
            "away" => PresenceStatus::Away,
            _ => PresenceStatus::Offline,
        };
        let last_seen_at = (status == PresenceStatus::Offline)
            .then(|| seen.parse::<i64>().ok().and_then(chrono::DateTime::from_timestamp_millis))
            .flatten();
        (PresenceView { user_id: user, status, last_seen_at }, changed == 1)
    }

    /// Stores the status `user` chose (online or away), for a day at most.
    pub async fn choose(&self, user: UserId, status: PresenceStatus) {
        let mut command = deadpool_redis::redis::cmd("SET");
        command.arg(self.presence_key("status", user)).arg(status.as_str()).arg("EX").arg(86_400);
        self.redis_command(command).await;
    }

    /// Records that a socket of `user` just closed.
    async fn record_last_seen(&self, user: UserId) {
        let mut command = deadpool_redis::redis::cmd("SET");
        let now = chrono::Utc::now().timestamp_millis();
        command.arg(self.presence_key("seen", user)).arg(now).arg("EX").arg(30 * 86_400);
        self.redis_command(command).await;
    }

    async fn redis_command(&self, command: deadpool_redis::redis::Cmd) {
        let done = tokio::time::timeout(self.limiter.config().redis_timeout, async {
            let mut conn = self.redis.get().await.ok()?;
            command.query_async::<()>(&mut conn).await.ok()
        })
        .await;
        if !matches!(done, Ok(Some(()))) {
            tracing::debug!("presence not recorded: Redis unavailable");
        }
    }

    /// Tells everyone who shares one of `channels` (those small enough) with `user` their
    /// presence now, if it changed since it was last told.
    pub async fn announce(&self, user: UserId, channels: &[ChannelId]) {
        let (presence, changed) = self.presence(user, true).await;
        if !changed || channels.is_empty() {
            return;
        }
        let small = crate::store::channels::with_members_at_most(&self.db, channels, self.max_members);
        let channels = match small.await {
            Ok(channels) => channels,
            Err(error) => {
                tracing::debug!(%user, %error, "presence not announced: channel sizes unknown");
                return;
            }
        };
        let frame: bytes::Bytes = ServerFrame::PresenceUpdate { payload: presence }.to_json().into();
        for channel in &channels {
            let signal = publish_on_channel(
                &self.nats,
                &self.subjects,
                *channel,
                PRESENCE_HEADER,
                user,
                frame.clone(),
            );
            if let Err(error) = signal.await {
                tracing::debug!(%error, "presence not published");
            }
        }
    }

    /// After a socket of `user` closed: last seen now, and offline after the grace unless
    /// another socket of theirs is open by then.
    pub fn socket_closed(self: &Arc<Self>, conn: &ConnHandle) {
        let (presence, user) = (self.clone(), conn.user);
        let channels = conn.channel_list();
        // Tracked with the sockets, so a draining gateway still says its users went offline.
        self.sockets.spawn(async move {
            presence.record_last_seen(user).await;
            tokio::time::sleep(OFFLINE_GRACE).await;
            presence.announce(user, &channels).await;
        });
    }

    /// Sweeps for users whose leases all ended until `shutdown` (see the module docs).
    pub fn sweep(self: &Arc<Self>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let presence = self.clone();
        let every = (self.limiter.config().socket_lease / 6)
            .clamp(Duration::from_millis(100), Duration::from_secs(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                presence.sweep_once().await;
            }
        })
    }

    /// Announces one batch of users whose leases all ended.
    async fn sweep_once(&self) {
        for user in self.limiter.users_whose_leases_ended(SWEEP_BATCH).await {
            match crate::store::channels::member_channel_ids(&self.db, user).await {
                Ok(channels) => {
                    let channels: Vec<ChannelId> = channels.into_iter().collect();
                    self.announce(user, &channels).await;
                }
                Err(error) => tracing::warn!(%user, %error, "presence of an ended lease not announced"),
            }
        }
    }
}

/// Most users one sweep takes out; the rest wait for the next sweep.
const SWEEP_BATCH: usize = 500;

/// A socket's `presence.set` frames not applied yet: the last one wins.
#[derive(Default)]
pub struct PendingPresence(Option<PresenceStatus>);

impl PendingPresence {
    pub fn set(&mut self, status: PresenceStatus) {
        self.0 = Some(status);
    }

    /// Applies the last chosen status and announces it, in the background.
    pub fn flush(&mut self, presence: &Arc<Presence>, conn: &ConnHandle) {
        let Some(status) = self.0.take() else { return };
        let (presence, user) = (presence.clone(), conn.user);
        let channels = conn.channel_list();
        tokio::spawn(async move {
            presence.choose(user, status).await;
            presence.announce(user, &channels).await;
        });
    }
}
