//! Rate and connection limits shared by every gateway of a cell. Each limit is a sliding
//! window kept in Redis as a sorted set of event times (Redis's own clock, so gateways' clocks
//! do not matter); one Lua script checks every window an event falls in and records it in all
//! of them only if each has room: atomic, one round trip. Open sockets are a sorted set of
//! leases per user that their gateway renews, so a crashed gateway's sockets stop counting.
//!
//! Redis down or slow (past `limits.redis_timeout`): every limit fails open — chat keeps
//! working, bounded per socket anyway — and `chat_gateway_rate_limiter_errors_total` counts it.
//!
//! Every check goes over one multiplexed connection that reconnects by itself (the `redis`
//! crate's `ConnectionManager`): calls from every socket are pipelined on it, one round trip
//! each. A pool checkout would cost a second one, since deadpool-redis pings each connection
//! it hands out.

use crate::metrics::GatewayMetrics;
use deadpool_redis::redis::{self, Script, aio::ConnectionManager};
use shared::config::{LimitsConfig, Rate};
use shared::ids::{ChannelId, UserId};
use std::sync::{Arc, LazyLock};

/// KEYS: one sorted set per window. ARGV: the event's member, then `window_ms, limit` per key.
/// Returns `{0, 0}` when admitted, else `{index of the full window that frees last (1-based),
/// retry after ms}`: retrying after that long finds every window with room.
///
/// Sent as `EVAL` with its source, never `EVALSHA`: a socket's checks go out on the one
/// connection in the order its frames were read, and Redis runs them in that order, so the
/// sends admitted are the first ones. `EVALSHA` answers `NOSCRIPT` on a fresh or restarted
/// Redis, and the retry after loading the script would run some checks after later ones —
/// admitting a later send in place of an earlier one.
const SLIDING_WINDOWS: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local full, wait = 0, 0
for i, key in ipairs(KEYS) do
  local window = tonumber(ARGV[2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= tonumber(ARGV[2 * i + 1]) then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    local free_at = window
    if oldest[2] then free_at = tonumber(oldest[2]) + window - now end
    if free_at > wait then full, wait = i, free_at end
  end
end
if full > 0 then return {full, math.max(1, wait)} end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[1])
  redis.call('PEXPIRE', key, tonumber(ARGV[2 * i]))
end
return {0, 0}
";

/// KEYS[1]: a user's socket leases; KEYS[2]: the cell's users with leases, scored by when
/// their last lease ends. ARGV: socket, limit, lease_ms, user. Takes or renews the socket's
/// lease if it holds one or there is room; 1 if it did, 0 if full.
static SOCKET_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('ZADD', KEYS[2], last[2], ARGV[4])
return 1
",
    )
});

/// KEYS[1]: the cell's users with leases. ARGV[1]: how many at most. Takes out (atomically,
/// so one gateway handles each) the users whose last lease has ended, and returns them.
static LEASES_ENDED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ended = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
if #ended > 0 then redis.call('ZREM', KEYS[1], unpack(ended)) end
return ended
",
    )
});

/// Whether an event may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every window had room, and the event now counts in each.
    Allowed,
    Limited {
        limit: &'static str,
        retry_after_ms: u64,
    },
    /// Redis failed or was slow: let through unchecked (failing open), and counted nowhere.
    Unchecked,
}

/// Cheap to clone: the connection and metrics are shared.
#[derive(Clone)]
pub struct RateLimiter {
    redis: ConnectionManager,
    config: LimitsConfig,
    /// Keys live under `<prefix>:rl:`; the NATS subject prefix, so cells sharing a Redis
    /// (tests) keep apart.
    prefix: String,
    metrics: Arc<GatewayMetrics>,
}

impl RateLimiter {
    /// A limiter on the Redis at `url`; it connects on first use (a Redis down at start only
    /// makes the first checks fail open).
    pub fn new(
        url: &str,
        config: LimitsConfig,
        prefix: &str,
        metrics: Arc<GatewayMetrics>,
    ) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let options = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.redis_timeout))
            .set_response_timeout(Some(config.redis_timeout));
        let redis = ConnectionManager::new_lazy_with_config(client, options)?;
        Ok(Self { redis, config, prefix: prefix.to_owned(), metrics })
    }

    pub fn config(&self) -> &LimitsConfig {
        &self.config
    }

    /// One authenticated REST request of `user`.
    pub async fn rest_request(&self, user: UserId) -> Verdict {
        let key = format!("{}:rl:rest:{user}", self.prefix);
        self.admit(&[("rest_per_user", key, self.config.rest_per_user)]).await
    }

    /// One `message.send` of `user` into `channel`: counts against both the user's and the
    /// channel's window, or neither.
    pub async fn send(&self, user: UserId, channel: ChannelId) -> Verdict {
        let user_key = format!("{}:rl:send:{user}", self.prefix);
        let channel_key = format!("{}:rl:channel:{channel}", self.prefix);
        self.admit(&[
            ("sends_per_user", user_key, self.config.sends_per_user),
            ("messages_per_channel", channel_key, self.config.messages_per_channel),
        ])
        .await
    }

    /// Takes (or renews) a lease for one open socket of `user`; false when the user already
    /// has `sockets_per_user` others.
    pub async fn lease_socket(&self, user: UserId, socket: &str) -> bool {
        let key = self.sockets_key(user);
        let lease_ms = self.config.socket_lease.as_millis() as u64;
        let mut call = SOCKET_LEASE.key(key);
        call.key(self.leased_users_key())
            .arg(socket)
            .arg(self.config.sockets_per_user)
            .arg(lease_ms)
            .arg(user.to_string());
        match self.run::<i64>(&call).await {
            Some(taken) => taken == 1,
            None => true,
        }
    }

    /// Gives a closed socket's lease back.
    pub async fn release_socket(&self, user: UserId, socket: &str) {
        let mut command = deadpool_redis::redis::cmd("ZREM");
        command.arg(self.sockets_key(user)).arg(socket);
        let mut conn = self.redis.clone();
        let released =
            tokio::time::timeout(self.config.redis_timeout, command.query_async::<i64>(&mut conn)).await;
        if !matches!(released, Ok(Ok(_))) {
            // It expires with its lease.
            self.metrics.rate_limiter_error();
        }
    }

    /// Takes out up to `max` users whose every socket lease has ended (their gateway closed
    /// them, or died): presence announces them offline. Each is returned to one caller only.
    pub async fn users_whose_leases_ended(&self, max: usize) -> Vec<UserId> {
        let mut call = LEASES_ENDED.key(self.leased_users_key());
        call.arg(max);
        let ended: Vec<String> = self.run(&call).await.unwrap_or_default();
        ended.iter().filter_map(|u| u.parse().ok()).map(UserId).collect()
    }

    fn leased_users_key(&self) -> String {
        format!("{}:rl:leased_users", self.prefix)
    }

    /// The sorted set of `user`'s socket leases (presence reads it too).
    pub(crate) fn sockets_key(&self, user: UserId) -> String {
        format!("{}:rl:sockets:{user}", self.prefix)
    }

    async fn admit(&self, windows: &[(&'static str, String, Rate)]) -> Verdict {
        let member = format!("{:016x}", rand::random::<u64>());
        let mut call = redis::cmd("EVAL");
        call.arg(SLIDING_WINDOWS).arg(windows.len());
        for (_, key, _) in windows {
            call.arg(key);
        }
        call.arg(member);
        for (_, _, rate) in windows {
            call.arg(rate.window_ms).arg(rate.count);
        }
        let mut conn = self.redis.clone();
        let Some((full, retry_after_ms)) = self.bounded(call.query_async::<(usize, u64)>(&mut conn)).await
        else {
            return Verdict::Unchecked;
        };
        match full.checked_sub(1).and_then(|i| windows.get(i)) {
            Some((limit, _, _)) => {
                self.metrics.rate_limited(limit);
                Verdict::Limited { limit, retry_after_ms }
            }
            None => Verdict::Allowed,
        }
    }

    /// Runs a script within the timeout; `None` (fail open, counted) when Redis fails.
    async fn run<T: deadpool_redis::redis::FromRedisValue>(
        &self,
        call: &deadpool_redis::redis::ScriptInvocation<'_>,
    ) -> Option<T> {
        let mut conn = self.redis.clone();
        self.bounded(call.invoke_async::<T>(&mut conn)).await
    }

    /// A Redis call within the timeout; `None` (fail open, counted) when Redis fails.
    async fn bounded<T>(&self, call: impl Future<Output = redis::RedisResult<T>>) -> Option<T> {
        match tokio::time::timeout(self.config.redis_timeout, call).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                tracing::warn!(%error, "rate limiter unavailable; failing open");
                self.metrics.rate_limiter_error();
                None
            }
            Err(_) => {
                tracing::warn!("rate limiter timed out; failing open");
                self.metrics.rate_limiter_error();
                None
            }
        }
    }
}
