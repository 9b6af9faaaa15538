//! The HTTP server loop: axum's router served through hyper (HTTP/1.1, the WebSocket upgrade
//! included; TLS and HTTP/2 end at the ingress) with the deadline `axum::serve` does not set:
//! a connection must send a request's headers within `gateway.header_read_timeout` of
//! connecting or of its previous request, or it is closed. A slowloris client, or one that
//! connects and sends nothing, holds a socket for seconds, not forever. Requests see the peer address as axum's
//! `ConnectInfo` (for the per-IP limits). On shutdown, accepting stops at once and open
//! HTTP connections finish their requests; upgraded WebSockets are drained by their own
//! tasks. A handler may end its whole connection through [`CloseConnection`] (a download whose
//! client stopped reading: hyper alone would wait on that socket for as long as it stays open).

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// In every request's extensions: cancel it to close the request's connection at once.
#[derive(Clone)]
pub struct CloseConnection(pub CancellationToken);

/// Serves `app` on `listener` until `shutdown`; then waits up to `grace` for the requests
/// in progress.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_read_timeout: Duration,
    grace: Duration,
    shutdown: CancellationToken,
) {
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, typically: wait a little rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let close = CancellationToken::new();
        let close_handle = close.clone();
        let service = app.clone().map_request(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            request.extensions_mut().insert(CloseConnection(close_handle.clone()));
            request.map(axum::body::Body::new)
        });
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)).with_upgrades();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            tokio::pin!(connection);
            // On shutdown: finish the request in progress, then close (an upgraded
            // WebSocket has left this connection already and drains on its own).
            let served = async {
                tokio::select! {
                    result = connection.as_mut() => result,
                    _ = shutdown.cancelled() => {
                        connection.as_mut().graceful_shutdown();
                        connection.as_mut().await
                    }
                }
            };
            // Closed by a handler: the connection is dropped, its socket with it.
            let result = tokio::select! {
                result = served => result,
                _ = close.cancelled() => {
                    tracing::debug!(%peer, "connection closed by its handler");
                    return;
                }
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(grace, connections.wait()).await.is_err() {
        tracing::warn!("HTTP connections still open at the end of the grace period");
    }
}
