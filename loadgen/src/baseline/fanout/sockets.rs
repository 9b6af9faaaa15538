//! The loadgen side's sockets to the fan-out server: opened from source addresses spread over
//! 127.0.0.1–127.0.0.250 (each has its own ephemeral ports, so sockets are not bounded by one
//! address's), a few at a time, each ready once the server's greeting came.

use crate::baseline::error::BaselineError;
use crate::baseline::fanout::frame::HELLO;
use crate::baseline::fanout::settings;
use crate::source::source_address;
use futures::{StreamExt, TryStreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

pub type ClientSocket = WebSocketStream<TcpStream>;

/// Sockets opening at once.
const CONNECT_CONCURRENCY: usize = 32;
/// How long one socket may take from its connect to the greeting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Opens `count` sockets to `server`, in order; stops at the first that fails, or at `stop`.
pub async fn open_all(
    server: SocketAddr,
    count: usize,
    stop: &CancellationToken,
) -> Result<Vec<ClientSocket>, BaselineError> {
    futures::stream::iter(0..count)
        .map(|index| async move {
            if stop.is_cancelled() {
                return Err(BaselineError::Interrupted);
            }
            let opened = tokio::time::timeout(CONNECT_TIMEOUT, open(server, index)).await;
            let timed_out = || format!("no greeting within {} s", CONNECT_TIMEOUT.as_secs());
            opened
                .unwrap_or_else(|_| Err(timed_out()))
                .map_err(|reason| BaselineError::FanoutConnect { index, reason })
        })
        .buffered(CONNECT_CONCURRENCY)
        .try_collect()
        .await
}

/// One socket, from its source address, after the server's greeting.
async fn open(server: SocketAddr, index: usize) -> Result<ClientSocket, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket.bind(SocketAddr::new(source_address(index), 0)).map_err(|e| format!("bind: {e}"))?;
    let stream = socket.connect(server).await.map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let url = format!("ws://{server}/");
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(settings::client_config()))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    match ws.next().await {
        Some(Ok(Message::Text(text))) if text.as_str() == HELLO => Ok(ws),
        other => Err(format!("expected the greeting, got {other:?}")),
    }
}
