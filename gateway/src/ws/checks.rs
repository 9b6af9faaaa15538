//! The checks a frame bound for the stream goes through before it is published — its sender's
//! and channel's rate windows (a Redis round trip), then what it names in the database (a
//! reply's target, attachments, mentions; a change's target and the actor's right) — run side
//! by side for the frames a socket has read, and taken in the order they were read.
//!
//! A socket so reads its next frame while the last one's checks are out, instead of waiting
//! a round trip per frame, and still publishes its sends in its own order: [`Checks`] is a
//! bounded `FuturesOrdered`, whose outcomes the read loop takes one by one, in frame order,
//! to publish or refuse. A frame's windows are checked before its database checks run, so a
//! client past its limits costs no database work. The windows are counted in read order as a
//! rule: a check's script goes out on the limiter's one Redis connection when its future is
//! first polled, which `FuturesOrdered` does in push order, and Redis runs scripts in the order
//! they arrive (`ratelimit::SLIDING_WINDOWS` says why it is sent as `EVAL`). Not always (a call
//! that times out fails open, a reconnect resends), so the strikes do not rely on it
//! (`SendLimits::passed`). A frame into a channel the socket does not know is checked
//! here too, after its windows: its sender may be a member whose membership change has not
//! reached this gateway yet ([`confirm_member`]). A frame refused as it is read (malformed,
//! or a non-member's read position or typing signal) waits its turn here when checks are out ahead of it, so a socket's answers keep its read
//! order but for acks, which come as the stream confirms each send.

use super::send::SendChecked;
use crate::changes::{self, ChangeRefused};
use crate::conn::ConnHandle;
use crate::ratelimit::Verdict;
use crate::state::AppState;
use crate::store;
use futures::stream::{FuturesOrdered, StreamExt};
use shared::events::Change;
use shared::ids::{ChannelId, ClientMsgId, MessageId, UserId};
use shared::protocol::{SendPayload, ServerFrame};
use std::pin::Pin;

/// What the checks of one frame found, in the order the frames were read.
pub enum Checked {
    /// Refused as it was read (malformed, or a read position or typing signal of a non-member):
    /// the answer, waiting its turn behind the frames read before it.
    Refused(ServerFrame),
    /// A window is full: the frame is refused with `rate_limited`.
    Limited { id: ClientMsgId, send: bool, limit: &'static str, retry_after_ms: u64 },
    /// A send within limits (`counted` in its windows, or let through unchecked while Redis
    /// fails), and what its database checks found.
    Send { id: ClientMsgId, counted: bool, payload: SendPayload, checked: Result<SendChecked, ChangeRefused> },
    /// A change within limits (as a send's), and what its checks found: the change to publish.
    Change {
        id: ClientMsgId,
        counted: bool,
        channel: ChannelId,
        message: MessageId,
        prepared: Result<Change, ChangeRefused>,
    },
}

type Checking<'a> = Pin<Box<dyn Future<Output = Checked> + Send + 'a>>;

/// The frames of one socket whose checks are out, taken in the order they were read.
pub struct Checks<'a> {
    state: &'a AppState,
    conn: &'a ConnHandle,
    running: FuturesOrdered<Checking<'a>>,
}

impl<'a> Checks<'a> {
    pub fn new(state: &'a AppState, conn: &'a ConnHandle) -> Self {
        Self { state, conn, running: FuturesOrdered::new() }
    }

    /// Frames whose checks are out.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// The answer of a frame refused as it was read, in its turn.
    pub fn refused(&mut self, answer: ServerFrame) {
        self.running.push_back(Box::pin(std::future::ready(Checked::Refused(answer))));
    }

    /// Starts the checks of a send; `member` when the socket knows its sender is a member of
    /// the channel (if not, the database is asked: see [`confirm_member`]).
    pub fn send(&mut self, id: ClientMsgId, payload: SendPayload, member: bool) {
        let (state, conn) = (self.state, self.conn);
        self.running.push_back(Box::pin(async move {
            match state.limiter.send(conn.user, payload.channel_id).await {
                Verdict::Limited { limit, retry_after_ms } => {
                    Checked::Limited { id, send: true, limit, retry_after_ms }
                }
                verdict => {
                    let checked = async {
                        if !member {
                            confirm_member(state, conn, payload.channel_id).await?;
                        }
                        check_send(state, conn.user, &payload).await
                    }
                    .await;
                    Checked::Send { id, counted: verdict == Verdict::Allowed, payload, checked }
                }
            }
        }));
    }

    /// Starts the checks of a change to `message` of `channel` (`member` as for a send).
    pub fn change(
        &mut self,
        id: ClientMsgId,
        (channel, message): (ChannelId, MessageId),
        change: Change,
        member: bool,
    ) {
        let (state, conn) = (self.state, self.conn);
        self.running.push_back(Box::pin(async move {
            match state.limiter.send(conn.user, channel).await {
                Verdict::Limited { limit, retry_after_ms } => {
                    Checked::Limited { id, send: false, limit, retry_after_ms }
                }
                verdict => {
                    let prepared = async {
                        if !member {
                            confirm_member(state, conn, channel).await?;
                        }
                        changes::prepare(state, conn.user, channel, message, change).await
                    }
                    .await;
                    Checked::Change { id, counted: verdict == Verdict::Allowed, channel, message, prepared }
                }
            }
        }));
    }

    /// The next frame in read order whose checks are done, once they are; `None` at once
    /// when none is out (so a `select!` arm on it is guarded by [`Checks::is_empty`]).
    pub async fn next(&mut self) -> Option<Checked> {
        self.running.next().await
    }
}

/// Whether the sender of a frame into a channel its socket does not know is a member after
/// all: one whose membership change has not reached this gateway yet (a dm's creator sending
/// at once). If so the socket joins the channel as the change would have made it, catching up
/// from the join. Asked again once joined: a member removed between the first answer and the
/// join is taken out again, so a stale answer never lets a socket keep a channel it left.
async fn confirm_member(
    state: &AppState,
    conn: &ConnHandle,
    channel: ChannelId,
) -> Result<(), ChangeRefused> {
    let joined_seq =
        || changes::bounded(async { Ok(store::channels::joined_seq(&state.db, channel, conn.user).await?) });
    let Some(joined_at) = joined_seq().await? else {
        return Err(ChangeRefused::NotAMember);
    };
    // Not bounded: a join stopped halfway would leave a route without its subscription.
    state.fanout.join_late(conn, channel, joined_at).await;
    if joined_seq().await?.is_none() {
        state.fanout.leave(conn, channel);
        return Err(ChangeRefused::NotAMember);
    }
    Ok(())
}

/// The checks of a send that read the database, within `changes::CHECK_TIMEOUT`.
async fn check_send(
    state: &AppState,
    user: UserId,
    payload: &SendPayload,
) -> Result<SendChecked, ChangeRefused> {
    changes::bounded(async {
        if let Some(reply_to) = payload.reply_to {
            changes::check_reply(state, payload.channel_id, reply_to).await?;
        }
        let attachments = changes::attachments(state, user, &payload.attachments).await?;
        let mentions = changes::mentions(state, payload.channel_id, &payload.content).await?;
        Ok(SendChecked { mentions, attachments })
    })
    .await
}
