//! The bare broadcast server of baseline (c), as its own process (`loadgen-fanout-server`):
//! every text frame a socket sends goes to every socket, the sender's own included, as one
//! shared `Utf8Bytes`. What a gateway socket does around that is copied and nothing else:
//! its buffer settings, a bounded queue per socket (full: the socket is dropped, as the
//! gateway closes a slow consumer with 4008 rather than wait), and a writer that feeds what is
//! queued and flushes once. No auth, no JSON, no NATS: what is left is the cost of the sockets.

use crate::baseline::fanout::frame::HELLO;
use crate::baseline::fanout::settings::{self, FRAMES_PER_FLUSH, QUEUE_FRAMES};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a socket may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a writer may take to send its close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// After shutdown, how long the sockets may take to end.
const DRAIN: Duration = Duration::from_secs(5);

type Sink = SplitSink<WebSocketStream<TcpStream>, Message>;

/// The sockets that get every broadcast.
#[derive(Default)]
pub struct Hub {
    sockets: RwLock<HashMap<u64, mpsc::Sender<Utf8Bytes>>>,
    next_id: AtomicU64,
    /// Sockets dropped because their queue was full.
    pub dropped_slow: AtomicU64,
}

impl Hub {
    fn register(&self, queue: mpsc::Sender<Utf8Bytes>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.sockets.write().unwrap_or_else(|p| p.into_inner()).insert(id, queue);
        id
    }

    fn unregister(&self, id: u64) {
        self.sockets.write().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    /// Queues `frame` on every socket; a socket whose queue is full is dropped.
    pub fn broadcast(&self, frame: &Utf8Bytes) {
        let mut full = Vec::new();
        {
            let sockets = self.sockets.read().unwrap_or_else(|p| p.into_inner());
            for (id, queue) in sockets.iter() {
                if queue.try_send(frame.clone()).is_err() {
                    full.push(*id);
                }
            }
        }
        for id in full {
            self.dropped_slow.fetch_add(1, Ordering::Relaxed);
            self.unregister(id);
        }
    }
}

/// Accepts sockets on `listener` until `shutdown`, then lets them end for at most [`DRAIN`].
pub async fn serve(listener: TcpListener, shutdown: CancellationToken) {
    let hub = Arc::new(Hub::default());
    let sockets = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                sockets.spawn(socket(stream, hub.clone(), shutdown.clone()));
            }
            // Out of descriptors, typically: wait a little rather than spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    sockets.close();
    let _ = tokio::time::timeout(DRAIN, sockets.wait()).await;
}

/// One socket: the handshake, its queue and writer, then its read loop (this task), as a
/// gateway socket has a reader and a writer task.
async fn socket(stream: TcpStream, hub: Arc<Hub>, shutdown: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let accepted = tokio_tungstenite::accept_async_with_config(stream, Some(settings::server_config()));
    let Ok(Ok(ws)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, accepted).await else { return };
    let (sink, stream) = ws.split();
    let (queue, queued) = mpsc::channel(QUEUE_FRAMES);
    // Before any broadcast, so the client knows it gets everything after it.
    let _ = queue.try_send(Utf8Bytes::from_static(HELLO));
    let id = hub.register(queue);
    let writer = tokio::spawn(write_loop(sink, queued));
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = read_loop(stream, &hub) => {}
    }
    hub.unregister(id);
    let _ = writer.await;
}

/// Broadcasts every text frame the socket sends, until it closes.
async fn read_loop(mut stream: SplitStream<WebSocketStream<TcpStream>>, hub: &Hub) {
    while let Some(message) = stream.next().await {
        match message {
            Ok(Message::Text(frame)) => hub.broadcast(&frame),
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// Writes queued frames until the queue ends (the socket left the hub), then closes.
async fn write_loop(mut sink: Sink, mut queued: mpsc::Receiver<Utf8Bytes>) {
    while let Some(first) = queued.recv().await {
        if write_burst(&mut sink, first, &mut queued).await.is_err() {
            return;
        }
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
}

/// Feeds `first` and what is queued behind it (up to [`FRAMES_PER_FLUSH`]), then flushes
/// once, as the gateway's writer does.
async fn write_burst(
    sink: &mut Sink,
    first: Utf8Bytes,
    queued: &mut mpsc::Receiver<Utf8Bytes>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let mut next = Some(first);
    let mut fed = 0;
    while let Some(frame) = next.take() {
        sink.feed(Message::Text(frame)).await?;
        fed += 1;
        if fed == FRAMES_PER_FLUSH {
            break;
        }
        next = queued.try_recv().ok();
    }
    sink.flush().await
}
