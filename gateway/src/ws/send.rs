//! What a frame bound for the stream goes through on its socket: the send limits and their
//! strikes, the publish of a checked send (its `message.ack` once the stream has it), and
//! the answer to a change.

use crate::conn::ConnHandle;
use crate::metrics::SendOutcome;
use crate::publish::PublishFailure;
use crate::state::AppState;
use axum::extract::ws::Utf8Bytes;
use shared::events::{StreamMessage, new_traceparent, trace_id};
use shared::ids::{ChannelId, UserId};
use shared::protocol::{
    AckPayload, AckStatus, AttachmentView, ContentType, ErrorCode, SendPayload, SenderView, ServerFrame,
};
use std::time::{Duration, Instant};

/// How long after its first `rate_limited` answer a client may still have sends in flight
/// that do not count as strikes.
const STRIKE_GRACE: Duration = Duration::from_secs(1);

/// What the checks of a send found: the members its content mentions (and whether it says
/// `@channel`), and its attachments described.
pub struct SendChecked {
    pub mentions: (Vec<UserId>, bool),
    pub attachments: Vec<AttachmentView>,
}

/// Queues the publish of a send (its sender a member, within limits), in the socket's frame
/// order; the returned future yields the `message.ack` or `error` frame.
pub async fn start_send(
    state: &AppState,
    conn: &ConnHandle,
    sender: &SenderView,
    id: shared::ids::ClientMsgId,
    payload: SendPayload,
    SendChecked { mentions: (mentions, mentions_channel), attachments }: SendChecked,
) -> impl Future<Output = Utf8Bytes> + use<> {
    let received = std::time::Instant::now();
    let message = StreamMessage {
        message_id: state.snowflake.next_id(),
        channel_id: payload.channel_id,
        sender: sender.clone(),
        client_msg_id: id,
        content: payload.content,
        content_type: ContentType::of(&attachments),
        reply_to: payload.reply_to,
        // Postgres keeps microseconds: live and stored copies must be equal.
        created_at: chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6),
        mentions,
        mentions_channel,
        attachments,
    };
    let subject = state.subjects.publish(message.channel_id, state.partitions);
    let dedup_key = message.dedup_key();
    let encoded = serde_json::to_vec(&message).unwrap_or_default();
    let trace = new_traceparent();
    tracing::debug!(trace_id = trace_id(&trace), conn = conn.id, "send published");
    let published = state.publisher.submit(subject, dedup_key, encoded.into(), trace, false).await;
    let (stream, metrics) = (state.stream.clone(), state.metrics.clone());
    async move {
        let result = published.await;
        metrics.send_ack_seconds.observe(received.elapsed().as_secs_f64());
        let frame = match result {
            Ok(ack) => acked(&stream, &metrics, ack, message).await,
            Err(failure) => {
                metrics.send(SendOutcome::Failed);
                failure_frame(message.client_msg_id, &failure)
            }
        };
        Utf8Bytes::from(frame.to_json())
    }
}

/// The `message.ack` of a send the stream has stored.
async fn acked(
    stream: &async_nats::jetstream::stream::Stream,
    metrics: &crate::metrics::GatewayMetrics,
    ack: async_nats::jetstream::publish::PublishAck,
    message: StreamMessage,
) -> ServerFrame {
    // A resend within the duplicate window: answer with the id stored first.
    let message_id = match ack.duplicate {
        true => original_message_id(stream, ack.sequence).await.unwrap_or(message.message_id),
        false => message.message_id,
    };
    metrics.send(if ack.duplicate { SendOutcome::Duplicate } else { SendOutcome::Acked });
    let payload = AckPayload { status: AckStatus::Stored, message_id, channel_id: message.channel_id };
    ServerFrame::MessageAck { id: message.client_msg_id, payload }
}

/// The answer to a change once the stream has it (or not): `message.ack` naming the changed
/// message, or a retryable `error`.
pub async fn change_answer(
    published: impl Future<Output = Result<async_nats::jetstream::publish::PublishAck, PublishFailure>>,
    id: shared::ids::ClientMsgId,
    channel_id: ChannelId,
    message_id: shared::ids::MessageId,
) -> Utf8Bytes {
    let frame = match published.await {
        Ok(_) => ServerFrame::MessageAck {
            id,
            payload: AckPayload { status: AckStatus::Stored, message_id, channel_id },
        },
        Err(failure) => failure_frame(id, &failure),
    };
    Utf8Bytes::from(frame.to_json())
}

/// The client's answer to a publish that failed: its code and the code's own words; the
/// broker's are logged.
fn failure_frame(id: shared::ids::ClientMsgId, failure: &PublishFailure) -> ServerFrame {
    let code = match failure {
        PublishFailure::NotConfirmed(_) | PublishFailure::InProcess => ErrorCode::PublishFailed,
        PublishFailure::ShuttingDown => ErrorCode::Unavailable,
    };
    tracing::warn!(client_msg_id = %id.0, %failure, "publish failed");
    ServerFrame::error(Some(id.0), code, code.text())
}

/// The send limits of one socket: the shared windows (per user, per channel) and the strikes
/// that close a socket which keeps sending after being told.
#[derive(Default)]
pub struct SendLimits {
    strikes: u32,
    told_at: Option<Instant>,
}

pub enum LimitCheck {
    /// Refused with `rate_limited` (already told).
    Refused,
    /// Too many strikes: close with 4029.
    Close,
}

impl SendLimits {
    /// A frame let through, `counted` in its windows or not (Redis failing): the strikes
    /// start over once a counted frame passes after the grace. Not before: a socket's window
    /// checks can reach Redis out of its read order (a timed-out call, a reconnect), so a
    /// frame of the burst that was just refused may pass next, and says nothing about whether
    /// the client heeded its first `rate_limited`; nor does a frame Redis never counted.
    pub fn passed(&mut self, counted: bool) {
        self.passed_at(counted, Instant::now());
    }

    /// A frame (a send or a change) refused because window `limit` is full: told with
    /// `rate_limited`, and counted as a strike if the client should have known.
    pub fn refused(
        &mut self,
        state: &AppState,
        conn: &ConnHandle,
        id: &shared::ids::ClientMsgId,
        limit: &'static str,
        retry_after_ms: u64,
    ) -> LimitCheck {
        let frame = ServerFrame::rate_limited(Some(id.0.clone()), limit, retry_after_ms);
        conn.deliver_frame(&frame);
        self.refused_at(limit, state.limiter.config().strikes_before_close, Instant::now())
    }

    fn passed_at(&mut self, counted: bool, now: Instant) {
        let heeded = self.told_at.is_none_or(|told| now.duration_since(told) >= STRIKE_GRACE);
        if counted && heeded {
            self.strikes = 0;
            self.told_at = None;
        }
    }

    /// A strike is a send past the sender's own limit arriving after the first refusal could
    /// have been read (not a burst in flight, not other users filling the channel's window).
    fn refused_at(&mut self, limit: &str, strikes_before_close: u32, now: Instant) -> LimitCheck {
        let told = *self.told_at.get_or_insert(now);
        if limit == "sends_per_user" && now.duration_since(told) >= STRIKE_GRACE {
            self.strikes += 1;
            if self.strikes >= strikes_before_close {
                return LimitCheck::Close;
            }
        }
        LimitCheck::Refused
    }
}

/// The id of the message stored at `sequence` of the stream (the PubAck of a duplicate names
/// the original's sequence).
async fn original_message_id(
    stream: &async_nats::jetstream::stream::Stream,
    sequence: u64,
) -> Option<shared::ids::MessageId> {
    let stored = stream.direct_get(sequence).await.ok()?;
    serde_json::from_slice::<StreamMessage>(&stored.payload).ok().map(|m| m.message_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "sends_per_user";

    fn closes(check: LimitCheck) -> bool {
        matches!(check, LimitCheck::Close)
    }

    #[test]
    fn refusals_after_the_grace_are_strikes_and_the_third_closes() {
        let (mut limits, t0) = (SendLimits::default(), Instant::now());
        let later = t0 + STRIKE_GRACE;
        assert!(!closes(limits.refused_at(USER, 3, t0)));
        assert!(!closes(limits.refused_at(USER, 3, t0 + Duration::from_millis(500))));
        assert!(!closes(limits.refused_at(USER, 3, later)));
        assert!(!closes(limits.refused_at(USER, 3, later)));
        assert!(closes(limits.refused_at(USER, 3, later)));
    }

    #[test]
    fn a_pass_within_the_grace_or_uncounted_does_not_start_the_strikes_over() {
        let (mut limits, t0) = (SendLimits::default(), Instant::now());
        let later = t0 + STRIKE_GRACE;
        limits.refused_at(USER, 3, t0);
        // A frame of the same burst whose window check Redis ran first.
        limits.passed_at(true, t0 + Duration::from_millis(10));
        limits.refused_at(USER, 3, later);
        // Let through while Redis failed: nothing says the client slowed down.
        limits.passed_at(false, later);
        limits.refused_at(USER, 3, later);
        assert!(closes(limits.refused_at(USER, 3, later)));
    }

    #[test]
    fn a_counted_pass_after_the_grace_starts_the_strikes_over() {
        let (mut limits, t0) = (SendLimits::default(), Instant::now());
        let later = t0 + STRIKE_GRACE;
        limits.refused_at(USER, 3, t0);
        limits.refused_at(USER, 3, later);
        limits.refused_at(USER, 3, later);
        limits.passed_at(true, later);
        // Told anew: the next refusals fall within a fresh grace.
        for _ in 0..5 {
            assert!(!closes(limits.refused_at(USER, 3, later)));
        }
    }

    #[test]
    fn a_busy_channel_is_never_a_strike() {
        let (mut limits, t0) = (SendLimits::default(), Instant::now());
        for _ in 0..5 {
            assert!(!closes(limits.refused_at("messages_per_channel", 3, t0 + STRIKE_GRACE)));
        }
    }
}
