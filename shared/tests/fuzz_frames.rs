//! Fuzzing the frame decoder and the message validator with proptest, on a fixed case budget
//! so that CI runs the same amount every time (`CHAT_FUZZ_CASES` raises it for a longer local
//! run). Inputs: arbitrary bytes, arbitrary JSON documents built from the protocol's own
//! vocabulary (deep ones included), byte-level mutations of valid frames, and arbitrary
//! message contents. Nothing may panic, and whatever decodes must satisfy every rule the
//! gateway relies on; the content rule is checked against an independent oracle.

use proptest::prelude::*;
use serde_json::{Value, json};
use shared::protocol::{
    ClientFrame, FrameError, MAX_CONTENT_CHARS, MAX_JSON_DEPTH, MAX_SYNC_CHANNELS, MAX_TOKEN_BYTES, frame_id,
    json_depth_exceeds, parse_mentions,
};

const CHANNEL: &str = "7d8f7c1e-2b8e-4e55-9d55-3f1f6f0b2c11";

/// Cases per property: 20,000 unless `CHAT_FUZZ_CASES` says otherwise.
fn budget() -> ProptestConfig {
    let cases = std::env::var("CHAT_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(20_000);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// The rule a message's content must follow, written independently of the validator.
fn content_is_acceptable(content: &str) -> bool {
    !content.trim().is_empty()
        && content.chars().count() <= MAX_CONTENT_CHARS
        && content.chars().all(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\r'))
}

/// The rule a reaction's emoji must follow, written independently of the validator.
fn emoji_is_acceptable(emoji: &str) -> bool {
    (1..=32).contains(&emoji.chars().count()) && emoji.chars().all(|c| !c.is_whitespace() && !c.is_control())
}

/// Everything a decoded frame must satisfy.
fn check_decoded(frame: &ClientFrame) -> Result<(), TestCaseError> {
    match frame {
        ClientFrame::MessageSend { id, payload } => {
            prop_assert!(id.is_valid());
            prop_assert!(content_is_acceptable(&payload.content), "accepted content {:?}", payload.content);
        }
        ClientFrame::Sync { payload, .. } => {
            prop_assert!(payload.channels.len() <= MAX_SYNC_CHANNELS);
            prop_assert!(payload.channels.values().all(|seq| seq.0 >= 0));
        }
        ClientFrame::AuthRefresh { payload, .. } => {
            prop_assert!((1..=MAX_TOKEN_BYTES).contains(&payload.access_token.len()));
        }
        ClientFrame::MessageRead { payload, .. } => prop_assert!(payload.seq.0 >= 0),
        ClientFrame::TypingStart { .. } => {}
        ClientFrame::PresenceSet { payload, .. } => {
            prop_assert_ne!(payload.status, shared::protocol::PresenceStatus::Offline)
        }
        ClientFrame::MessageEdit { id, payload } => {
            prop_assert!(id.is_valid());
            prop_assert!(content_is_acceptable(&payload.content), "accepted content {:?}", payload.content);
        }
        ClientFrame::MessageDelete { id, .. } => prop_assert!(id.is_valid()),
        ClientFrame::ReactionAdd { id, payload } | ClientFrame::ReactionRemove { id, payload } => {
            prop_assert!(id.is_valid());
            prop_assert!(emoji_is_acceptable(&payload.emoji), "accepted emoji {:?}", payload.emoji);
        }
    }
    Ok(())
}

fn decode_and_check(text: &str) -> Result<(), TestCaseError> {
    let _ = frame_id(text);
    match ClientFrame::decode(text) {
        Ok(frame) => {
            prop_assert!(!json_depth_exceeds(text.as_bytes(), MAX_JSON_DEPTH));
            check_decoded(&frame)
        }
        Err(FrameError::TooDeep) => {
            prop_assert!(json_depth_exceeds(text.as_bytes(), MAX_JSON_DEPTH));
            Ok(())
        }
        Err(_) => Ok(()),
    }
}

/// Strings a frame is made of: the protocol's words, ids, and anything.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("message.send".to_owned()),
        Just("sync".to_owned()),
        Just("auth.refresh".to_owned()),
        Just("message.read".to_owned()),
        Just("typing.start".to_owned()),
        Just("presence.set".to_owned()),
        Just("message.edit".to_owned()),
        Just("message.delete".to_owned()),
        Just("reaction.add".to_owned()),
        Just("reaction.remove".to_owned()),
        Just("👍".to_owned()),
        Just("12345".to_owned()),
        Just("away".to_owned()),
        Just(CHANNEL.to_owned()),
        Just("text".to_owned()),
        Just("c1".to_owned()),
        ".{0,12}",
        "[\\x00-\\x1f\\\\\"]{0,4}",
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("type".to_owned()),
        Just("id".to_owned()),
        Just("payload".to_owned()),
        Just("channel_id".to_owned()),
        Just("content".to_owned()),
        Just("content_type".to_owned()),
        Just("reply_to".to_owned()),
        Just("channels".to_owned()),
        Just("access_token".to_owned()),
        Just("seq".to_owned()),
        Just("status".to_owned()),
        Just("message_id".to_owned()),
        Just("emoji".to_owned()),
        Just(CHANNEL.to_owned()),
        "[a-z_]{0,8}",
    ]
}

/// JSON documents of the protocol's vocabulary, up to 48 levels deep.
fn document() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        word().prop_map(Value::String),
    ];
    leaf.prop_recursive(48, 256, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A frame of each type, valid, to mutate.
fn valid_frame() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(json!({"type": "message.send", "id": "c1", "payload": {"channel_id": CHANNEL, "content": "hello"}})),
        Just(json!({"type": "message.send", "id": "c2", "payload": {"channel_id": CHANNEL, "content": "hi", "content_type": "text", "reply_to": 7}})),
        Just(json!({"type": "sync", "id": "s1", "payload": {"channels": {CHANNEL: 41}}})),
        Just(json!({"type": "sync"})),
        Just(json!({"type": "auth.refresh", "id": "r1", "payload": {"access_token": "eyJ.abc.def"}})),
        Just(json!({"type": "message.read", "payload": {"channel_id": CHANNEL, "seq": 12}})),
        Just(json!({"type": "typing.start", "payload": {"channel_id": CHANNEL}})),
        Just(json!({"type": "message.edit", "id": "e1", "payload": {"channel_id": CHANNEL, "message_id": "73409834571276288", "content": "fixed"}})),
        Just(json!({"type": "message.delete", "id": "d1", "payload": {"channel_id": CHANNEL, "message_id": "7"}})),
        Just(json!({"type": "reaction.add", "id": "a1", "payload": {"channel_id": CHANNEL, "message_id": "7", "emoji": "👍"}})),
        Just(json!({"type": "reaction.remove", "id": "a2", "payload": {"channel_id": CHANNEL, "message_id": 7, "emoji": ":tada:"}})),
    ]
    .prop_map(|frame| frame.to_string())
}

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Insert(usize, u8),
    Replace(usize, u8),
    Truncate(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let byte =
        prop_oneof![Just(b'{'), Just(b'['), Just(b'"'), Just(b'\\'), Just(b':'), Just(b','), any::<u8>()];
    let edit = prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), byte.clone()).prop_map(|(at, b)| Edit::Insert(at, b)),
        (any::<usize>(), byte).prop_map(|(at, b)| Edit::Replace(at, b)),
        any::<usize>().prop_map(Edit::Truncate),
    ];
    prop::collection::vec(edit, 1..8)
}

fn mutate(frame: &str, edits: &[Edit]) -> String {
    let mut bytes = frame.as_bytes().to_vec();
    for edit in edits {
        match *edit {
            Edit::Delete(at) if !bytes.is_empty() => {
                let at = at % bytes.len();
                bytes.remove(at);
            }
            Edit::Insert(at, b) => {
                let at = at % (bytes.len() + 1);
                bytes.insert(at, b);
            }
            Edit::Replace(at, b) if !bytes.is_empty() => {
                let at = at % bytes.len();
                bytes[at] = b;
            }
            Edit::Truncate(at) => {
                let at = at % (bytes.len() + 1);
                bytes.truncate(at);
            }
            _ => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(budget())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_and_check(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn arbitrary_documents_decode_only_into_valid_frames(document in document()) {
        decode_and_check(&document.to_string())?;
    }

    #[test]
    fn mutated_frames_decode_only_into_valid_frames(frame in valid_frame(), edits in edits()) {
        decode_and_check(&mutate(&frame, &edits))?;
    }

    #[test]
    fn a_send_is_accepted_exactly_when_its_content_is(
        content in prop_oneof![".{0,40}", "\\PC{3990,4010}", "[ \\t\\n\\r\\x00-\\x1f\\x7f\\u{80}-\\u{9f}a]{0,6}"],
    ) {
        let text = json!({"type": "message.send", "id": "c1", "payload": {"channel_id": CHANNEL, "content": content}});
        let decoded = ClientFrame::decode(&text.to_string());
        prop_assert_eq!(decoded.is_ok(), content_is_acceptable(&content), "content {:?}: {:?}", content, decoded);
    }

    #[test]
    fn a_reaction_is_accepted_exactly_when_its_emoji_is(
        emoji in prop_oneof![".{0,3}", "\\PC{30,34}", "[ \t\n\x00-\x1f👍a]{0,4}"],
        kind in prop_oneof![Just("reaction.add"), Just("reaction.remove")],
    ) {
        let text = json!({"type": kind, "id": "a1", "payload": {"channel_id": CHANNEL, "message_id": "7", "emoji": emoji}});
        let decoded = ClientFrame::decode(&text.to_string());
        prop_assert_eq!(decoded.is_ok(), emoji_is_acceptable(&emoji), "emoji {:?}: {:?}", emoji, decoded);
    }

    #[test]
    fn mentions_are_names_that_follow_an_at_sign(content in "[@a-z_.\\- é@👍]{0,40}") {
        let (names, _) = parse_mentions(&content);
        for name in &names {
            prop_assert!((3..=32).contains(&name.len()), "{:?} from {:?}", name, content);
            prop_assert!(content.to_ascii_lowercase().contains(&format!("@{name}")), "{:?} from {:?}", name, content);
            prop_assert_eq!(names.iter().filter(|n| *n == name).count(), 1);
        }
    }

    #[test]
    fn frames_nested_past_the_limit_are_refused(depth in 0usize..80, kind in word()) {
        let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let text = format!(r#"{{"type":{},"id":"x","payload":{nested}}}"#, Value::String(kind));
        let refused_as_deep = ClientFrame::decode(&text) == Err(FrameError::TooDeep);
        prop_assert_eq!(refused_as_deep, depth + 1 > MAX_JSON_DEPTH);
    }
}
