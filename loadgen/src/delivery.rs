//! A `message.new` read for the few fields the checker and the measures need, borrowed from
//! the frame's text and the rest skipped unread. Decoding the whole `ServerFrame` (an
//! internally tagged enum, which serde buffers field by field, then dates, ids and the
//! sender) took most of loadgen's CPU in a broadcast: profiled at 2,000 members, loadgen used
//! 1.2 cores against the gateway's 0.5, so the run measured loadgen. Every other frame, and a
//! `message.new` this cannot read, is decoded in full as before.

use serde::Deserialize;
use serde_json::value::RawValue;
use shared::ids::ChannelId;
use std::borrow::Cow;

/// What the checker and the latency figure need of a `message.new`.
#[derive(Debug, Deserialize, PartialEq)]
pub struct Delivery<'a> {
    pub channel_id: ChannelId,
    pub seq: i64,
    /// Sent as a string (ids are past JavaScript's safe integers).
    #[serde(deserialize_with = "id_from_string")]
    pub message_id: i64,
    /// Borrowed unless the text has escapes.
    #[serde(borrow)]
    pub client_id: Cow<'a, str>,
    #[serde(borrow)]
    pub content: Cow<'a, str>,
}

fn id_from_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let text: &'de str = Deserialize::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

/// A frame's type and its payload, unread.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
}

/// The delivery `text` carries, if it is a `message.new` with the fields it should have.
pub fn parse(text: &str) -> Option<Delivery<'_>> {
    let frame: Frame<'_> = serde_json::from_str(text).ok()?;
    if frame.kind != "message.new" {
        return None;
    }
    serde_json::from_str(frame.payload?.get()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use shared::ids::{ChannelSeq, ClientMsgId, MessageId, UserId};
    use shared::protocol::{ContentType, MessageView, SenderView, ServerFrame};
    use uuid::Uuid;

    fn message(content: &str) -> MessageView {
        MessageView {
            message_id: MessageId(77),
            client_id: ClientMsgId("s3-9".into()),
            channel_id: ChannelId(Uuid::new_v4()),
            seq: ChannelSeq(41),
            sender: SenderView { id: UserId(Uuid::new_v4()), username: "ann".into(), avatar_url: None },
            content: content.into(),
            content_type: ContentType::Text,
            reply_to: None,
            created_at: Utc::now(),
            mentions: vec![UserId(Uuid::new_v4())],
            mentions_channel: false,
            edited_at: None,
            deleted: false,
            reactions: Vec::new(),
            attachments: Vec::new(),
        }
    }

    #[test]
    fn a_message_new_gives_what_the_full_decode_gives() {
        for content in ["lg 1234 xxxx", "with \"quotes\", a \\ and a\nnewline", "émoji 🎉"] {
            let view = message(content);
            let text = ServerFrame::MessageNew { payload: view.clone() }.to_json();
            let delivery = parse(&text).expect("a message.new");
            assert_eq!(delivery.channel_id, view.channel_id);
            assert_eq!((delivery.seq, delivery.message_id), (41, 77));
            assert_eq!(delivery.client_id, "s3-9");
            assert_eq!(delivery.content, content);
        }
    }

    #[test]
    fn other_frames_are_left_to_the_full_decode() {
        let view = message("hi");
        let ack = format!(
            r#"{{"type":"message.ack","id":"s3-9","payload":{{"message_id":1,"seq":2,"channel_id":"{}"}}}}"#,
            view.channel_id.0
        );
        assert_eq!(parse(&ack), None);
        assert_eq!(parse(r#"{"type":"sync.done","payload":{"channel_id":"x"}}"#), None);
        assert_eq!(parse(r#"{"type":"message.new","payload":{"seq":1}}"#), None, "fields missing");
        assert_eq!(parse("not json"), None);
    }
}
