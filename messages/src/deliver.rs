//! Announcing committed messages and changes: one core NATS publish per message or change on
//! its channel's delivery subject, in `seq` order, with the `seq` in a header. Gateways with
//! members of the channel online forward it to their sockets: a message as `message.new`, a
//! change as the frame it carries. A change that could not be applied is told to its author
//! alone, on the subject of frames for one user's sockets.

use crate::changes::AppliedChange;
use crate::persist::PersistedMessage;
use shared::events::{
    CREATED_HEADER, FRAME_HEADER, SEQ_HEADER, StreamChange, StreamMessage, TRACE_HEADER, dedup_key, trace_id,
};
use shared::protocol::{ChangeRejectedPayload, ChangeRejection, MessageView, ServerFrame};
use shared::subjects::Subjects;
use std::collections::HashMap;

/// Publishes the delivery of every persisted message of a batch (the caller flushes). A message
/// an earlier delivery stored is announced again as it is stored now (its id and `seq`, and
/// edited or deleted if it was since): gateways drop what they have already forwarded, and
/// one that missed it gets it now, in the state `sync` would give.
pub async fn announce(
    nats: &async_nats::Client,
    subjects: &Subjects,
    batch: &[StreamMessage],
    persisted: &[PersistedMessage],
    traces: &HashMap<String, String>,
) -> Result<(), async_nats::Error> {
    let by_key: HashMap<String, &StreamMessage> = batch.iter().map(|m| (m.dedup_key(), m)).collect();
    for row in persisted {
        let Some(message) = by_key.get(&dedup_key(row.sender_id, row.channel_id, &row.client_msg_id)) else {
            continue;
        };
        let view = MessageView {
            message_id: row.message_id,
            client_id: row.client_msg_id.clone(),
            channel_id: row.channel_id,
            seq: row.seq,
            sender: message.sender.clone(),
            content: row.content.clone(),
            content_type: shared::protocol::ContentType::parse(&row.content_type),
            reply_to: row.reply_to,
            created_at: row.created_at,
            mentions: row.mentions.iter().copied().map(shared::ids::UserId).collect(),
            mentions_channel: row.mentions_channel,
            edited_at: row.edited_at,
            deleted: row.deleted,
            reactions: Vec::new(),
            attachments: row.attachments.clone().map(|a| a.0).unwrap_or_default(),
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(SEQ_HEADER, row.seq.0.to_string().as_str());
        headers.insert(CREATED_HEADER, row.created_at.timestamp_micros().to_string().as_str());
        if let Some(trace) = traces.get(&message.dedup_key()) {
            tracing::debug!(trace_id = trace_id(trace), seq = row.seq.0, "delivery announced");
            headers.insert(TRACE_HEADER, trace.as_str());
        }
        let payload = serde_json::to_vec(&view)?;
        nats.publish_with_headers(subjects.deliver(row.channel_id), headers, payload.into()).await?;
    }
    Ok(())
}

/// Publishes the delivery of an applied change (its frame, with the `Chat-Frame` header; the
/// caller flushes).
pub async fn announce_change(
    nats: &async_nats::Client,
    subjects: &Subjects,
    change: &AppliedChange,
    trace: Option<&str>,
) -> Result<(), async_nats::Error> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(SEQ_HEADER, change.seq.0.to_string().as_str());
    headers.insert(FRAME_HEADER, "1");
    if let Some(trace) = trace {
        tracing::debug!(trace_id = trace_id(trace), seq = change.seq.0, "change announced");
        headers.insert(TRACE_HEADER, trace);
    }
    let payload = bytes::Bytes::from(change.frame.clone());
    nats.publish_with_headers(subjects.deliver(change.channel_id), headers, payload).await?;
    Ok(())
}

/// Tells the sockets of a change's author, wherever they are connected, that it was not
/// applied (`change.rejected` naming its `id`; the caller flushes). Best effort, like every live
/// frame: a socket connected later does not get it.
pub async fn announce_rejection(
    nats: &async_nats::Client,
    subjects: &Subjects,
    change: &StreamChange,
    reason: ChangeRejection,
) -> Result<(), async_nats::Error> {
    let frame = ServerFrame::ChangeRejected {
        id: change.client_msg_id.clone(),
        payload: ChangeRejectedPayload {
            channel_id: change.channel_id,
            message_id: change.message_id,
            reason,
        },
    };
    shared::events::publish_to_user(nats, subjects, change.actor, &frame).await?;
    Ok(())
}
