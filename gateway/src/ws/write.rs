//! A socket's writer: takes frames off its queue and writes them until the socket closes,
//! then sends the close frame with the socket's code.

use crate::conn::ConnHandle;
use crate::conn::close;
use crate::conn::queue::Outbound;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::SinkExt;
use futures::stream::SplitSink;
use tokio::sync::mpsc;

/// How long the close frame may take to go out.
const CLOSE_FRAME_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Writes queued frames until the socket is closed; then sends the close frame.
pub async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut outbound: mpsc::UnboundedReceiver<Outbound>,
    conn: ConnHandle,
) {
    let closing = conn.queue.closing.clone();
    loop {
        let next = tokio::select! {
            biased;
            _ = closing.cancelled() => break,
            next = outbound.recv() => next,
        };
        let (message, written) = match next {
            Some(Outbound::Frame { frame, live }) => (Message::Text(frame.clone()), Some((frame, live))),
            Some(Outbound::Ping) => (Message::Ping(Default::default()), None),
            Some(Outbound::Close) | None => break,
        };
        // A peer that stops reading blocks this send; closing must still get through.
        tokio::select! {
            biased;
            _ = closing.cancelled() => break,
            sent = sink.send(message) => if sent.is_err() { return },
        }
        if let Some((frame, live)) = written {
            conn.queue.metrics().frame_out(&frame);
            conn.queue.written(frame.len(), live);
        }
    }
    send_close(sink, conn.queue.close_code()).await;
}

/// Sends the close frame of `code`, unless it is one that is never sent.
async fn send_close(mut sink: SplitSink<WebSocket, Message>, code: u16) {
    if !close::is_sent(code) {
        return;
    }
    let reason = Utf8Bytes::from_static(close::reason(code));
    let frame = Message::Close(Some(CloseFrame { code, reason }));
    let _ = tokio::time::timeout(CLOSE_FRAME_TIMEOUT, async {
        let _ = sink.send(frame).await;
        let _ = sink.close().await;
    })
    .await;
}
