//! Typing indicators: ephemeral, never in the stream or Postgres. `typing.start` is published
//! on core NATS on the channel's delivery subject (`TYPING_HEADER`, no payload), at most once
//! per `TYPING_REPUBLISH` per socket and channel. Each gateway's route of the channel keeps
//! who is typing and tells its sockets `typing.update {channel_id, users}` only when that set
//! changes: a new typer, or one not heard from for `TYPING_TTL`.

use shared::events::{TYPING_HEADER, publish_on_channel};
use shared::ids::{ChannelId, UserId};
use shared::subjects::Subjects;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// A typer is forgotten this long after their last `typing.start`.
pub const TYPING_TTL: Duration = Duration::from_secs(5);
/// A socket's repeats of `typing.start` for one channel within this long are not published
/// (the TTL covers them).
pub const TYPING_REPUBLISH: Duration = Duration::from_secs(2);

/// Who is typing in one channel, as one gateway knows it.
#[derive(Debug, Default)]
pub struct TypingSet {
    until: HashMap<UserId, Instant>,
}

impl TypingSet {
    /// Records a `typing.start`; true when `user` was not typing (the set changed).
    pub fn start(&mut self, user: UserId, now: Instant) -> bool {
        self.until.insert(user, now + TYPING_TTL).is_none()
    }

    /// Forgets typers whose time is up; returns them.
    pub fn expire(&mut self, now: Instant) -> Vec<UserId> {
        let expired: Vec<UserId> = self.until.iter().filter(|(_, t)| **t <= now).map(|(u, _)| *u).collect();
        for user in &expired {
            self.until.remove(user);
        }
        expired
    }

    pub fn contains(&self, user: UserId) -> bool {
        self.until.contains_key(&user)
    }

    pub fn next_expiry(&self) -> Option<Instant> {
        self.until.values().min().copied()
    }

    /// The typers but `except`, in a stable order.
    pub fn users_but(&self, except: UserId) -> Vec<UserId> {
        let mut users: Vec<UserId> = self.until.keys().copied().filter(|u| *u != except).collect();
        users.sort();
        users
    }
}

/// Per socket: when each channel's `typing.start` was last published.
#[derive(Default)]
pub struct TypingThrottle(HashMap<ChannelId, Instant>);

impl TypingThrottle {
    /// Publishes a `typing.start` of `user` unless this socket did so for the channel within
    /// `TYPING_REPUBLISH`.
    pub async fn start(
        &mut self,
        nats: &async_nats::Client,
        subjects: &Subjects,
        user: UserId,
        channel: ChannelId,
    ) {
        let now = Instant::now();
        if self.0.get(&channel).is_some_and(|last| now.duration_since(*last) < TYPING_REPUBLISH) {
            return;
        }
        self.0.insert(channel, now);
        let signal = publish_on_channel(nats, subjects, channel, TYPING_HEADER, user, bytes::Bytes::new());
        if let Err(error) = signal.await {
            tracing::debug!(%error, "typing not published");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_changes_on_a_new_typer_and_on_expiry_only() {
        let (a, b) = (UserId::new_random(), UserId::new_random());
        let mut set = TypingSet::default();
        let t0 = Instant::now();
        assert!(set.start(a, t0));
        assert!(!set.start(a, t0 + Duration::from_secs(3)), "a repeat only extends");
        assert!(set.start(b, t0 + Duration::from_secs(4)));
        assert_eq!(set.users_but(a), [b]);
        assert_eq!(set.next_expiry(), Some(t0 + Duration::from_secs(8)));
        assert!(set.expire(t0 + Duration::from_secs(7)).is_empty(), "a was extended to t0 + 8 s");
        assert_eq!(set.expire(t0 + Duration::from_secs(8)), [a]);
        assert_eq!(set.expire(t0 + Duration::from_secs(9)), [b]);
        assert_eq!(set.next_expiry(), None);
    }
}
