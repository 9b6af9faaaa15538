//! The socket's handshake and its answers to frames it cannot take: 401 before the upgrade
//! without a valid token (by header or subprotocol), the `chat.v1` subprotocol answered to a
//! browser's `bearer.` one, and `error` frames for malformed, binary and unknown frames,
//! after which the socket goes on.

use crate::support::{TestApp, spawn_app};
use serde_json::Value;
use shared::protocol::{ErrorCode, ServerFrame};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

/// Opens `/ws` offering these subprotocols; the answer's status and subprotocol, or the
/// refusal's status and error code.
async fn handshake(app: &TestApp, protocols: Option<&str>) -> Result<Option<String>, (u16, String)> {
    let mut request = app.ws_url().into_client_request().unwrap();
    if let Some(protocols) = protocols {
        request.headers_mut().insert("sec-websocket-protocol", protocols.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => {
            let protocol = response.headers().get("sec-websocket-protocol");
            Ok(protocol.and_then(|p| p.to_str().ok()).map(str::to_owned))
        }
        Err(tungstenite::Error::Http(response)) => {
            let body: Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap_or_default();
            Err((response.status().as_u16(), body["error"]["code"].as_str().unwrap_or_default().to_owned()))
        }
        Err(other) => panic!("the handshake failed below HTTP: {other}"),
    }
}

#[tokio::test]
async fn the_handshake_takes_a_bearer_subprotocol_and_refuses_anything_less() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let offered = format!("chat.v1, bearer.{}", alice.access_token);
    assert_eq!(handshake(&app, Some(&offered)).await, Ok(Some("chat.v1".into())), "a browser's handshake");
    let refused = Err((401, "unauthorized".to_owned()));
    assert_eq!(handshake(&app, None).await, refused, "no token at all");
    assert_eq!(handshake(&app, Some("chat.v1")).await, refused, "only chat.v1");
    assert_eq!(handshake(&app, Some("chat.v1, bearer.garbage")).await, refused, "a garbage token");
    let tampered = crate::support::tokens::tampered(&alice.access_token, &uuid::Uuid::new_v4().to_string());
    assert_eq!(
        handshake(&app, Some(&format!("chat.v1, bearer.{tampered}"))).await,
        refused,
        "a tampered token"
    );
}

/// An `error` frame's id and code.
type ErrorAnswer = (Option<String>, ErrorCode);

/// The next `error` frame's id and code.
async fn next_error(socket: &mut shared::local::client::ChatSocket) -> ErrorAnswer {
    match socket.next_frame(Duration::from_secs(10)).await {
        Ok(Some(ServerFrame::Error { id, payload })) => (id, payload.code),
        other => panic!("expected an error frame, got {other:?}"),
    }
}

#[tokio::test]
async fn frames_the_socket_cannot_take_get_error_frames_and_the_socket_goes_on() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let mut socket = alice.connect(&app.ws_url()).await.unwrap();
    let table: Vec<(&str, Message, ErrorAnswer)> = vec![
        ("malformed JSON", Message::Text("{".into()), (None, ErrorCode::MalformedFrame)),
        ("a binary message", Message::Binary(vec![1, 2, 3].into()), (None, ErrorCode::MalformedFrame)),
        (
            "an unknown type",
            Message::Text(r#"{"type": "message.shout", "id": "u1", "payload": {}}"#.into()),
            (Some("u1".into()), ErrorCode::UnknownType),
        ),
        (
            "JSON nested 40 levels",
            Message::Text(format!("{}{}", "[".repeat(40), "]".repeat(40)).into()),
            (None, ErrorCode::MalformedFrame),
        ),
        (
            "a send to a channel that does not exist",
            Message::Text(
                serde_json::json!({"type": "message.send", "id": "s1", "payload": {
                    "channel_id": uuid::Uuid::new_v4(), "content": "hi", "content_type": "text"}})
                .to_string()
                .into(),
            ),
            (Some("s1".into()), ErrorCode::NotAMember),
        ),
    ];
    for (name, message, expected) in table {
        socket.send_raw(message).await.unwrap();
        assert_eq!(next_error(&mut socket).await, expected, "{name}");
    }
    // Still open: each answer came after the bad frames before it.
    socket.close().await;
}
