//! A chat client for tests and load tools: REST through `reqwest`, WebSocket through
//! `tokio-tungstenite`, typed frames from `protocol`. It keeps each channel's last seen `seq`,
//! the state a client resumes from.

use crate::ids::{ChannelId, ChannelSeq, MessageId, UserId};
use crate::protocol::{MessageView, ServerFrame};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("unexpected answer {status}: {body}")]
    Status { status: u16, body: String },
    #[error("websocket: {0}")]
    Ws(#[from] tungstenite::Error),
    #[error("decoding: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Bytes a client socket reads into at a time. Tungstenite zero-fills its read buffer up to
/// this before every read, so its default (128 KiB) cost loadgen 6 % of its CPU in memset in a
/// broadcast, one frame per read, and 128 KiB of memory per socket. Loadgen's client of
/// baseline (c) reads with the same.
pub const CLIENT_READ_BUFFER_BYTES: usize = 8 * 1024;

/// The settings of a client socket.
pub fn socket_config() -> tungstenite::protocol::WebSocketConfig {
    tungstenite::protocol::WebSocketConfig::default().read_buffer_size(CLIENT_READ_BUFFER_BYTES)
}

/// A registered user talking to one gateway's REST API.
#[derive(Clone)]
pub struct ChatClient {
    http: reqwest::Client,
    pub base_url: String,
    pub user_id: UserId,
    pub username: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl ChatClient {
    /// Registers `username` (password `password-<username>`) at `base_url`.
    pub async fn register(base_url: &str, username: &str) -> Result<Self, ClientError> {
        let http = reqwest::Client::new();
        let body = json!({
            "email": format!("{username}@example.test"),
            "username": username,
            "password": format!("password-{username}"),
        });
        let session =
            expect(http.post(format!("{base_url}/api/v1/auth/register")).json(&body).send().await?, 201)
                .await?;
        Ok(Self {
            http,
            base_url: base_url.to_owned(),
            user_id: serde_json::from_value(session["user"]["id"].clone())?,
            username: username.to_owned(),
            access_token: session["access_token"].as_str().unwrap_or_default().to_owned(),
            refresh_token: session["refresh_token"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// The same user with the tokens of another of their sessions (another login).
    pub fn with_tokens(&self, access_token: &str, refresh_token: &str) -> Self {
        Self {
            access_token: access_token.to_owned(),
            refresh_token: refresh_token.to_owned(),
            ..self.clone()
        }
    }

    /// The same user talking to another gateway.
    pub fn via(&self, base_url: &str) -> Self {
        Self { base_url: base_url.to_owned(), ..self.clone() }
    }

    /// A request to `path` under `/api/v1` with this user's token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}/api/v1{path}", self.base_url)).bearer_auth(&self.access_token)
    }

    /// Creates a channel of `kind` with `members`; returns its id.
    pub async fn create_channel(
        &self,
        kind: &str,
        name: &str,
        members: &[UserId],
    ) -> Result<ChannelId, ClientError> {
        let body = json!({"type": kind, "name": name, "member_ids": members});
        let channel =
            expect(self.request(reqwest::Method::POST, "/channels").json(&body).send().await?, 201).await?;
        Ok(serde_json::from_value(channel["id"].clone())?)
    }

    /// Adds `user` to `channel` as a member (`POST /channels/{id}/members`).
    pub async fn add_member(&self, channel: ChannelId, user: UserId) -> Result<(), ClientError> {
        let path = format!("/channels/{channel}/members");
        let body = json!({ "user_id": user });
        expect(self.request(reqwest::Method::POST, &path).json(&body).send().await?, 201).await.map(drop)
    }

    /// Every message of `channel` after `after_seq`, paging through the history API.
    pub async fn history_after(
        &self,
        channel: ChannelId,
        after_seq: i64,
    ) -> Result<Vec<MessageView>, ClientError> {
        let mut messages = Vec::new();
        let mut after = after_seq;
        loop {
            let path = format!("/channels/{channel}/messages?after_seq={after}&limit=200");
            let page = expect(self.request(reqwest::Method::GET, &path).send().await?, 200).await?;
            let batch: Vec<MessageView> = serde_json::from_value(page["messages"].clone())?;
            after = batch.last().map_or(after, |m| m.seq.0);
            messages.extend(batch);
            if page["has_more"] != json!(true) {
                return Ok(messages);
            }
        }
    }

    /// Opens a WebSocket to `ws_url` with the token in the `Authorization` header, Nagle off
    /// (as browsers open theirs), so pipelined frames are not held back for the peer's ack.
    pub async fn connect(&self, ws_url: &str) -> Result<ChatSocket, ClientError> {
        open_socket(ws_url, &self.access_token, None).await
    }

    /// Reconnects to resume: opens the socket with `?resume=true`, so live messages wait for
    /// its first frame however late it arrives, and sends `sync` from `(channel, last seq)`.
    pub async fn resume(&self, ws_url: &str, from: &[(ChannelId, i64)]) -> Result<ChatSocket, ClientError> {
        let separator = if ws_url.contains('?') { '&' } else { '?' };
        let mut socket = self.connect(&format!("{ws_url}{separator}resume=true")).await?;
        socket.sync(from).await?;
        Ok(socket)
    }
}

/// Opens a WebSocket to `ws_url` with `access_token` in the `Authorization` header, Nagle off.
/// With a `source`, a `ws://` socket is bound to that local address first: every address of
/// 127.0.0.0/8 has ports of its own, so a load tool opens more sockets to one gateway than one
/// address's ephemeral ports allow. (`wss://` is not compiled in.)
pub async fn open_socket(
    ws_url: &str,
    access_token: &str,
    source: Option<IpAddr>,
) -> Result<ChatSocket, ClientError> {
    let mut request = ws_url.into_client_request()?;
    let bearer =
        format!("Bearer {access_token}").parse().map_err(|_| tungstenite::Error::Utf8(String::new()))?;
    request.headers_mut().insert("authorization", bearer);
    let ws = match source {
        None => tokio_tungstenite::connect_async_with_config(request, Some(socket_config()), true).await?.0,
        Some(source) => {
            let uri = request.uri();
            let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
            let port = uri.port_u16().unwrap_or(80);
            let peer = tokio::net::lookup_host((host, port))
                .await
                .map_err(tungstenite::Error::Io)?
                .find(|a| a.is_ipv4() == source.is_ipv4())
                .ok_or_else(|| tungstenite::Error::Url(tungstenite::error::UrlError::NoHostName))?;
            let socket = match source {
                IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
                IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
            }
            .map_err(tungstenite::Error::Io)?;
            socket.bind(SocketAddr::new(source, 0)).map_err(tungstenite::Error::Io)?;
            let stream = socket.connect(peer).await.map_err(tungstenite::Error::Io)?;
            stream.set_nodelay(true).map_err(tungstenite::Error::Io)?;
            let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
            tokio_tungstenite::client_async_with_config(request, stream, Some(socket_config())).await?.0
        }
    };
    Ok(ChatSocket { ws, last_seq: HashMap::new(), presence: false })
}

/// The body of a response with the `expected` status, or an error with what came instead.
pub async fn expect(response: reqwest::Response, expected: u16) -> Result<Value, ClientError> {
    let status = response.status().as_u16();
    let body = response.text().await?;
    if status != expected {
        return Err(ClientError::Status { status, body });
    }
    Ok(if body.is_empty() { Value::Null } else { serde_json::from_str(&body)? })
}

/// One open socket.
pub struct ChatSocket {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    /// Highest `seq` seen per channel.
    pub last_seq: HashMap<ChannelId, ChannelSeq>,
    /// Whether `next_frame` returns `presence.update` frames; they are skipped unless a test
    /// asks for them (`with_presence`), since any connect or disconnect may cause one.
    pub presence: bool,
}

impl ChatSocket {
    /// The same socket, with `presence.update` frames returned by `next_frame`.
    pub fn with_presence(mut self) -> Self {
        self.presence = true;
        self
    }

    /// Sends a `message.send` without waiting for its ack.
    pub async fn send_message(
        &mut self,
        channel: ChannelId,
        client_id: &str,
        content: &str,
    ) -> Result<(), ClientError> {
        let frame = json!({
            "type": "message.send",
            "id": client_id,
            "payload": {"channel_id": channel, "content": content, "content_type": "text"},
        });
        self.send_text(frame.to_string()).await
    }

    /// Sends a `message.edit` without waiting for its ack.
    pub async fn edit_message(
        &mut self,
        channel: ChannelId,
        message: MessageId,
        client_id: &str,
        content: &str,
    ) -> Result<(), ClientError> {
        let payload = json!({"channel_id": channel, "message_id": message, "content": content});
        self.send_text(json!({"type": "message.edit", "id": client_id, "payload": payload}).to_string()).await
    }

    /// Sends a `message.delete` without waiting for its ack.
    pub async fn delete_message(
        &mut self,
        channel: ChannelId,
        message: MessageId,
        client_id: &str,
    ) -> Result<(), ClientError> {
        let payload = json!({"channel_id": channel, "message_id": message});
        self.send_text(json!({"type": "message.delete", "id": client_id, "payload": payload}).to_string())
            .await
    }

    /// Sends `reaction.add` (or `reaction.remove` when `add` is false) without waiting.
    pub async fn react(
        &mut self,
        channel: ChannelId,
        message: MessageId,
        client_id: &str,
        emoji: &str,
        add: bool,
    ) -> Result<(), ClientError> {
        let kind = if add { "reaction.add" } else { "reaction.remove" };
        let payload = json!({"channel_id": channel, "message_id": message, "emoji": emoji});
        self.send_text(json!({"type": kind, "id": client_id, "payload": payload}).to_string()).await
    }

    /// Sends a `sync` for `channels` (channel → last seen seq); empty means all channels.
    pub async fn sync(&mut self, channels: &[(ChannelId, i64)]) -> Result<(), ClientError> {
        let channels: serde_json::Map<String, Value> =
            channels.iter().map(|(c, seq)| (c.to_string(), json!(seq))).collect();
        self.send_text(json!({"type": "sync", "payload": {"channels": channels}}).to_string()).await
    }

    /// Sends any WebSocket message, raw frames included (fragmentation tests).
    pub async fn send_raw(&mut self, message: Message) -> Result<(), ClientError> {
        self.ws.send(message).await?;
        Ok(())
    }

    pub async fn send_text(&mut self, text: String) -> Result<(), ClientError> {
        self.ws.send(Message::Text(text.into())).await?;
        Ok(())
    }

    /// The next frame from the server within `timeout`: `Ok(None)` on timeout, an error on
    /// close. Tracks `last_seq` from `message.new` and the changes.
    pub async fn next_frame(&mut self, timeout: Duration) -> Result<Option<ServerFrame>, ClientError> {
        // One deadline for the whole call: pings and skipped frames do not extend it.
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let Some(text) = self.next_text_by(deadline).await? else { return Ok(None) };
            if let Some(frame) = self.decode(&text)? {
                return Ok(Some(frame));
            }
        }
    }

    /// The next text frame from the server within `timeout`, undecoded (`Ok(None)` on timeout,
    /// an error on close): for a reader that decodes the frames it cares about its own way.
    /// Hand the others to [`ChatSocket::decode`] and name each `seq` it reads to
    /// [`ChatSocket::saw`], or `last_seq` falls behind.
    pub async fn next_text(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<tungstenite::Utf8Bytes>, ClientError> {
        self.next_text_by(tokio::time::Instant::now() + timeout).await
    }

    async fn next_text_by(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Result<Option<tungstenite::Utf8Bytes>, ClientError> {
        loop {
            let message = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Ok(None),
                Ok(None) => return Err(ClientError::Ws(tungstenite::Error::ConnectionClosed)),
                Ok(Some(message)) => message?,
            };
            match message {
                Message::Text(text) => return Ok(Some(text)),
                Message::Close(frame) => {
                    let reason =
                        frame.map(|f| format!("{} {}", u16::from(f.code), f.reason)).unwrap_or_default();
                    return Err(ClientError::Status { status: 0, body: format!("closed: {reason}") });
                }
                _ => continue,
            }
        }
    }

    /// Decodes a text frame as `next_frame` does: `None` for a `presence.update` this socket
    /// skips; tracks `last_seq`.
    pub fn decode(&mut self, text: &str) -> Result<Option<ServerFrame>, ClientError> {
        let frame: ServerFrame = serde_json::from_str(text)?;
        if matches!(frame, ServerFrame::PresenceUpdate { .. }) && !self.presence {
            return Ok(None);
        }
        if let Some((channel, seq)) = frame.channel_seq() {
            self.saw(channel, seq);
        }
        Ok(Some(frame))
    }

    /// Notes that message `seq` of `channel` was read.
    pub fn saw(&mut self, channel: ChannelId, seq: ChannelSeq) {
        let seen = self.last_seq.entry(channel).or_insert(ChannelSeq(0));
        *seen = (*seen).max(seq);
    }

    /// Closes the socket as a client normally does (1000).
    pub async fn close(mut self) {
        use tungstenite::protocol::{CloseFrame, frame::coding::CloseCode};
        let _ = self.ws.close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() })).await;
    }
}
