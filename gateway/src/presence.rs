//! Presence: online / away / offline per user, multi-device, shared by the cell through
//! Redis. A user is online while any of their sockets holds a live lease: the same leases
//! that count sockets per user, renewed by their gateway every 20 s and gone 60 s after a
//! gateway dies, so `GET /users/{id}` shows a crashed gateway's users offline within a
//! minute. `presence.set {status}` chooses between online and away while connected.
//!
//! Changes travel as `presence.update {user_id, status, last_seen_at}` over the delivery
//! subject of each of the user's channels, so exactly the people who share a channel hear of
//! it. Only transitions are published (Redis keeps the status last told, per user: a second
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

use crate::state::AppState;
use crate::ws::ConnHandle;
use shared::events::PRESENCE_HEADER;
use shared::ids::{ChannelId, UserId};
use shared::protocol::{PresenceStatus, PresenceView, ServerFrame};
use std::sync::LazyLock;
use std::time::Duration;

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

impl AppState {
    fn presence_key(&self, what: &str, user: UserId) -> String {
        format!("{}:presence:{what}:{user}", self.subjects.prefix())
    }

    /// The presence of `user` now; offline when Redis cannot tell.
    pub async fn presence_of(&self, user: UserId) -> PresenceView {
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
    pub async fn choose_presence(&self, user: UserId, status: PresenceStatus) {
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

    /// Tells everyone who shares one of `channels` with `user` their presence now, if it
    /// changed since it was last told.
    pub async fn announce_presence(&self, user: UserId, channels: &[ChannelId]) {
        let (presence, changed) = self.presence(user, true).await;
        if !changed {
            return;
        }
        let frame: bytes::Bytes = ServerFrame::PresenceUpdate { payload: presence }.to_json().into();
        for channel in channels {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(PRESENCE_HEADER, user.to_string().as_str());
            let subject = self.subjects.deliver(*channel);
            if let Err(error) = self.nats.publish_with_headers(subject, headers, frame.clone()).await {
                tracing::debug!(%error, "presence not published");
            }
        }
    }

    /// After a socket of `user` closed: last seen now, and offline after the grace unless
    /// another socket of theirs is open by then.
    pub fn socket_closed_presence(&self, conn: &ConnHandle) {
        let (state, user) = (self.clone(), conn.user);
        let channels: Vec<ChannelId> =
            conn.channels.read().unwrap_or_else(|e| e.into_inner()).iter().copied().collect();
        // Tracked with the sockets, so a draining gateway still says its users went offline.
        let sockets = self.sockets.clone();
        sockets.spawn(async move {
            state.record_last_seen(user).await;
            tokio::time::sleep(OFFLINE_GRACE).await;
            state.announce_presence(user, &channels).await;
        });
    }
}

/// Most users one sweep takes out; the rest wait for the next sweep.
const SWEEP_BATCH: usize = 500;

impl AppState {
    /// Sweeps for users whose leases all ended until shutdown (see the module docs).
    pub fn sweep_presence(&self) -> tokio::task::JoinHandle<()> {
        let state = self.clone();
        let every = (state.limiter.config().socket_lease / 6)
            .clamp(Duration::from_millis(100), Duration::from_secs(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = state.shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                for user in state.limiter.users_whose_leases_ended(SWEEP_BATCH).await {
                    match crate::store::channels::member_channel_ids(&state.db, user).await {
                        Ok(channels) => {
                            let channels: Vec<ChannelId> = channels.into_iter().collect();
                            state.announce_presence(user, &channels).await;
                        }
                        Err(error) => {
                            tracing::warn!(%user, %error, "presence of an ended lease not announced")
                        }
                    }
                }
            }
        })
    }
}

/// A socket's `presence.set` frames not applied yet: the last one wins.
#[derive(Default)]
pub struct PendingPresence(Option<PresenceStatus>);

impl PendingPresence {
    pub fn set(&mut self, status: PresenceStatus) {
        self.0 = Some(status);
    }

    /// Applies the last chosen status and announces it, in the background.
    pub fn flush(&mut self, state: &AppState, conn: &ConnHandle) {
        let Some(status) = self.0.take() else { return };
        let (state, user) = (state.clone(), conn.user);
        let channels: Vec<ChannelId> =
            conn.channels.read().unwrap_or_else(|e| e.into_inner()).iter().copied().collect();
        tokio::spawn(async move {
            state.choose_presence(user, status).await;
            state.announce_presence(user, &channels).await;
        });
    }
}
