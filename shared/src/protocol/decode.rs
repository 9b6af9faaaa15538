//! The hand-written decoder of client frames: a depth check, then the `{type, id?, payload}`
//! envelope, then the payload of that type and its checks, so that too deep, malformed,
//! unknown and invalid frames each get an error of their own.

use super::client::{
    AuthRefreshPayload, ClientFrame, EditPayload, FrameError, MAX_JSON_DEPTH, MessageRef, PresenceSetPayload,
    ReactionPayload, ReadPayload, SendPayload, SyncPayload, TypingPayload, validate_auth_refresh,
    validate_content, validate_emoji, validate_presence_set, validate_read, validate_send, validate_sync,
};
use crate::ids::ClientMsgId;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct RawFrame<'a> {
    #[serde(rename = "type")]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    id: Option<String>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
}

/// Whether `json` nests arrays and objects deeper than `max`: one linear pass that skips
/// strings and validates nothing else, run before parsing.
pub fn json_depth_exceeds(json: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in json {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// A frame's `id`, if one could be read, so an `error` can name the frame it answers.
pub fn frame_id(text: &str) -> Option<String> {
    serde_json::from_str::<RawFrame<'_>>(text).ok().and_then(|f| f.id)
}

impl ClientFrame {
    /// Decodes a text frame. The envelope is read first so that an unknown `type` and a bad
    /// `payload` get errors of their own.
    pub fn decode(text: &str) -> Result<Self, FrameError> {
        if json_depth_exceeds(text.as_bytes(), MAX_JSON_DEPTH) {
            return Err(FrameError::TooDeep);
        }
        let raw: RawFrame<'_> =
            serde_json::from_str(text).map_err(|e| FrameError::Malformed(e.to_string()))?;
        let payload = raw.payload.map(RawValue::get).unwrap_or("null");
        match raw.kind.as_ref() {
            "message.send" => decode_send(client_msg_id(raw.id, "message.send")?, payload),
            "message.edit" => decode_edit(client_msg_id(raw.id, "message.edit")?, payload),
            "message.delete" => decode_delete(client_msg_id(raw.id, "message.delete")?, payload),
            kind @ ("reaction.add" | "reaction.remove") => {
                decode_reaction(kind, client_msg_id(raw.id, kind)?, payload)
            }
            "sync" => decode_sync(raw.id, raw.payload),
            "auth.refresh" => decode_auth_refresh(raw.id, payload),
            "message.read" => decode_read(raw.id, payload),
            "presence.set" => decode_presence_set(raw.id, payload),
            "typing.start" => decode_typing(raw.id, payload),
            other => Err(FrameError::UnknownType(other.chars().take(64).collect())),
        }
    }
}

/// A payload read as `T` (the caller passes `null` for an absent one).
fn parse_payload<T: DeserializeOwned>(payload: &str) -> Result<T, FrameError> {
    serde_json::from_str(payload).map_err(|e| FrameError::InvalidPayload(e.to_string()))
}

fn decode_send(id: ClientMsgId, payload: &str) -> Result<ClientFrame, FrameError> {
    let payload: SendPayload = parse_payload(payload)?;
    validate_send(&payload)?;
    Ok(ClientFrame::MessageSend { id, payload })
}

fn decode_edit(id: ClientMsgId, payload: &str) -> Result<ClientFrame, FrameError> {
    let payload: EditPayload = parse_payload(payload)?;
    validate_content(&payload.content)?;
    Ok(ClientFrame::MessageEdit { id, payload })
}

fn decode_delete(id: ClientMsgId, payload: &str) -> Result<ClientFrame, FrameError> {
    let payload: MessageRef = parse_payload(payload)?;
    Ok(ClientFrame::MessageDelete { id, payload })
}

/// `reaction.add` or `reaction.remove` (`kind`), which share a payload.
fn decode_reaction(kind: &str, id: ClientMsgId, payload: &str) -> Result<ClientFrame, FrameError> {
    let payload: ReactionPayload = parse_payload(payload)?;
    validate_emoji(&payload.emoji).map_err(FrameError::InvalidPayload)?;
    Ok(match kind {
        "reaction.add" => ClientFrame::ReactionAdd { id, payload },
        _ => ClientFrame::ReactionRemove { id, payload },
    })
}

/// A sync without a payload (or with `null`) asks for every channel of the user, from 0.
fn decode_sync(id: Option<String>, payload: Option<&RawValue>) -> Result<ClientFrame, FrameError> {
    let payload: SyncPayload = match payload {
        None => SyncPayload::default(),
        Some(payload) => parse_payload(payload.get())?,
    };
    validate_sync(&payload)?;
    Ok(ClientFrame::Sync { id, payload })
}

fn decode_auth_refresh(id: Option<String>, payload: &str) -> Result<ClientFrame, FrameError> {
    let payload: AuthRefreshPayload = parse_payload(payload)?;
    validate_auth_refresh(&payload)?;
    Ok(ClientFrame::AuthRefresh { id, payload })
}

fn decode_read(id: Option<String>, payload: &str) -> Result<ClientFrame, FrameError> {
    let payload: ReadPayload = parse_payload(payload)?;
    validate_read(&payload)?;
    Ok(ClientFrame::MessageRead { id, payload })
}

fn decode_presence_set(id: Option<String>, payload: &str) -> Result<ClientFrame, FrameError> {
    let payload: PresenceSetPayload = parse_payload(payload)?;
    validate_presence_set(&payload)?;
    Ok(ClientFrame::PresenceSet { id, payload })
}

fn decode_typing(id: Option<String>, payload: &str) -> Result<ClientFrame, FrameError> {
    let payload: TypingPayload = parse_payload(payload)?;
    Ok(ClientFrame::TypingStart { id, payload })
}

/// The `id` a frame that goes through the stream must carry: its idempotency key.
fn client_msg_id(id: Option<String>, kind: &str) -> Result<ClientMsgId, FrameError> {
    let id = ClientMsgId(id.ok_or_else(|| FrameError::InvalidPayload(format!("{kind} needs an id")))?);
    if !id.is_valid() {
        return Err(FrameError::InvalidPayload(format!(
            "id must be 1-{} printable ASCII characters",
            ClientMsgId::MAX_LEN
        )));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::ids::ChannelSeq;
    use crate::protocol::{ContentType, ErrorCode, MAX_CONTENT_CHARS};

    const CHANNEL: &str = "7d8f7c1e-2b8e-4e55-9d55-3f1f6f0b2c11";

    #[test]
    fn decodes_a_send_with_defaults() {
        let text = format!(
            r#"{{"type":"message.send","id":"c1","payload":{{"channel_id":"{CHANNEL}","content":"hi"}}}}"#
        );
        let Ok(ClientFrame::MessageSend { id, payload }) = ClientFrame::decode(&text) else {
            panic!("a send")
        };
        assert_eq!(id.0, "c1");
        assert_eq!(payload.content, "hi");
        assert_eq!(payload.content_type, ContentType::Text);
        assert_eq!(payload.reply_to, None);
    }

    #[test]
    fn decodes_auth_refresh_and_refuses_empty_or_huge_tokens() {
        let text = r#"{"type":"auth.refresh","id":"r1","payload":{"access_token":"abc"}}"#;
        let Ok(ClientFrame::AuthRefresh { id, payload }) = ClientFrame::decode(text) else {
            panic!("a refresh")
        };
        assert_eq!((id.as_deref(), payload.access_token.as_str()), (Some("r1"), "abc"));
        let empty = r#"{"type":"auth.refresh","payload":{"access_token":""}}"#;
        assert!(matches!(ClientFrame::decode(empty), Err(FrameError::InvalidPayload(_))));
        let huge =
            format!(r#"{{"type":"auth.refresh","payload":{{"access_token":"{}"}}}}"#, "a".repeat(5000));
        assert!(matches!(ClientFrame::decode(&huge), Err(FrameError::InvalidPayload(_))));
    }

    #[test]
    fn decodes_sync_with_and_without_channels() {
        let text = format!(r#"{{"type":"sync","id":"s1","payload":{{"channels":{{"{CHANNEL}":7}}}}}}"#);
        let Ok(ClientFrame::Sync { id, payload }) = ClientFrame::decode(&text) else { panic!("a sync") };
        assert_eq!(id.as_deref(), Some("s1"));
        assert_eq!(payload.channels.values().copied().collect::<Vec<_>>(), [ChannelSeq(7)]);
        assert_eq!(
            ClientFrame::decode(r#"{"type":"sync"}"#),
            Ok(ClientFrame::Sync { id: None, payload: SyncPayload::default() })
        );
        let negative = format!(r#"{{"type":"sync","payload":{{"channels":{{"{CHANNEL}":-1}}}}}}"#);
        assert!(matches!(ClientFrame::decode(&negative), Err(FrameError::InvalidPayload(_))));
    }

    #[test]
    fn tells_malformed_unknown_and_invalid_apart() {
        assert!(matches!(ClientFrame::decode("{"), Err(FrameError::Malformed(_))));
        assert!(matches!(ClientFrame::decode("[1]"), Err(FrameError::Malformed(_))));
        assert_eq!(
            ClientFrame::decode(r#"{"type":"nope","payload":{}}"#),
            Err(FrameError::UnknownType("nope".into()))
        );
        let no_id =
            format!(r#"{{"type":"message.send","payload":{{"channel_id":"{CHANNEL}","content":"hi"}}}}"#);
        assert!(matches!(ClientFrame::decode(&no_id), Err(FrameError::InvalidPayload(_))));
        let too_long = format!(
            r#"{{"type":"message.send","id":"c","payload":{{"channel_id":"{CHANNEL}","content":"{}"}}}}"#,
            "x".repeat(MAX_CONTENT_CHARS + 1)
        );
        assert!(matches!(ClientFrame::decode(&too_long), Err(FrameError::InvalidPayload(_))));
        for control in ["\\u0000", "\\u001b[2J", "\\u0085"] {
            let text = format!(
                r#"{{"type":"message.send","id":"c","payload":{{"channel_id":"{CHANNEL}","content":"a{control}b"}}}}"#
            );
            assert!(matches!(ClientFrame::decode(&text), Err(FrameError::InvalidPayload(_))), "{control}");
        }
        let multi_line = format!(
            r#"{{"type":"message.send","id":"c","payload":{{"channel_id":"{CHANNEL}","content":"a\n\tb"}}}}"#
        );
        assert!(ClientFrame::decode(&multi_line).is_ok());
        let bad_channel = r#"{"type":"message.send","id":"c","payload":{"channel_id":"x","content":"a"}}"#;
        assert!(matches!(ClientFrame::decode(bad_channel), Err(FrameError::InvalidPayload(_))));
    }

    #[test]
    fn json_depth_counts_nesting_outside_strings_only() {
        assert!(!json_depth_exceeds(br#"{"a":[1,{"b":2}]}"#, 3));
        assert!(json_depth_exceeds(br#"{"a":[1,{"b":[2]}]}"#, 3));
        assert!(!json_depth_exceeds(br#"{"a":"[[[[\"[[[[{{"}"#, 1), "brackets inside a string");
        let deep = format!(
            r#"{{"type":"message.send","id":"x","payload":{}{}}}"#,
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert_eq!(ClientFrame::decode(&deep), Err(FrameError::TooDeep));
        assert_eq!(FrameError::TooDeep.code(), ErrorCode::MalformedFrame);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        #[test]
        fn decoding_arbitrary_text_never_panics(text in ".{0,200}") {
            let _ = ClientFrame::decode(&text);
            let _ = frame_id(&text);
        }

        #[test]
        fn decoding_arbitrary_sends_never_panics(id in ".{0,80}", content in ".{0,50}", kind in "[a-z.]{0,16}") {
            let text = serde_json::json!({"type": kind, "id": id, "payload": {"channel_id": CHANNEL, "content": content}}).to_string();
            if let Ok(ClientFrame::MessageSend { id, payload }) = ClientFrame::decode(&text) {
                prop_assert!(id.is_valid());
                prop_assert!(!payload.content.trim().is_empty());
                prop_assert!(!payload.content.contains('\0'));
            }
        }
    }
}
