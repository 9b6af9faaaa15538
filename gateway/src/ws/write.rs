//! A socket's writer: takes frames off its queue and writes them until the socket closes,
//! then sends the close frame with the socket's code.

use crate::conn::ConnHandle;
use crate::conn::close;
use crate::conn::lane::LaneRx;
use crate::conn::queue::Outbound;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::SinkExt;
use futures::stream::SplitSink;

/// How long the close frame may take to go out.
const CLOSE_FRAME_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Frames written before one flush, at most: whatever is queued when the writer wakes goes
/// out in one write (a busy socket gets one syscall per burst, not per frame).
const FRAMES_PER_FLUSH: usize = 64;

/// What one turn of the writer does after writing what it took.
enum Turn {
    Continue,
    /// The queue ended (`Outbound::Close`): send the close frame.
    End,
}

/// Writes queued frames until the socket is closed; then sends the close frame. Each turn
/// takes the next frame and whatever else is queued (up to [`FRAMES_PER_FLUSH`]), feeds them
/// all to the socket and flushes once.
pub async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut outbound: LaneRx<Outbound>,
    conn: ConnHandle,
) {
    let closing = conn.queue.closing.clone();
    // Grows to the largest burst the socket has seen: an idle socket keeps no room for 64.
    let mut written = Vec::new();
    loop {
        let next = tokio::select! {
            biased;
            _ = closing.cancelled() => break,
            next = outbound.recv() => next,
        };
        // A peer that stops reading blocks these writes; closing must still get through.
        let turn = tokio::select! {
            biased;
            _ = closing.cancelled() => break,
            turn = write_burst(&mut sink, next, &mut outbound, &mut written) => turn,
        };
        let Ok(turn) = turn else { return };
        for (frame, live) in written.drain(..) {
            conn.queue.metrics().frame_out(&frame);
            conn.queue.written(frame.len(), live);
        }
        if let Turn::End = turn {
            break;
        }
    }
    send_close(sink, conn.queue.close_code()).await;
}

/// Feeds `first` and what is queued behind it to the socket, then flushes; the frames fed go
/// into `written`. An error means the socket is gone.
async fn write_burst(
    sink: &mut SplitSink<WebSocket, Message>,
    first: Outbound,
    outbound: &mut LaneRx<Outbound>,
    written: &mut Vec<(Utf8Bytes, bool)>,
) -> Result<Turn, axum::Error> {
    let mut next = first;
    let mut fed = 0;
    let turn = loop {
        let message = match next {
            Outbound::Frame { frame, live } => {
                written.push((frame.clone(), live));
                Message::Text(frame)
            }
            Outbound::Ping => Message::Ping(Default::default()),
            Outbound::Close => break Turn::End,
        };
        sink.feed(message).await?;
        fed += 1;
        if fed == FRAMES_PER_FLUSH {
            break Turn::Continue;
        }
        match outbound.try_recv() {
            Some(queued) => next = queued,
            None => break Turn::Continue,
        }
    };
    sink.flush().await?;
    Ok(turn)
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
