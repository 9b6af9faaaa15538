//! The gateway's WebSocket settings, copied here so baseline (c) buffers, queues and writes
//! the way a gateway socket does (`gateway/src/ws/upgrade.rs`, `ws/write.rs`, the defaults of
//! `GatewayConfig`), and the loadgen side's own client settings.

use shared::config::GatewayConfig;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Bytes a server socket reads into at a time (the gateway's `READ_BUFFER_BYTES`).
pub const READ_BUFFER_BYTES: usize = 2 * 1024;
/// Bytes the writer buffers before it writes to the kernel (the gateway's upgrade).
pub const WRITE_BUFFER_BYTES: usize = 8 * 1024;
/// Bytes of frames buffered at most while the kernel does not take them (the gateway's).
pub const MAX_WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// Frames written before one flush, at most (the gateway writer's `FRAMES_PER_FLUSH`).
pub const FRAMES_PER_FLUSH: usize = 64;
/// Frames a socket's queue holds at most. The gateway bounds its queue in bytes (1 MiB of
/// live frames by default); at the baselines' 200 B frames this many is about that.
pub const QUEUE_FRAMES: usize = 4_096;

/// The server side of a socket, as the gateway's upgrade sets it.
pub fn server_config() -> WebSocketConfig {
    let gateway = GatewayConfig::default();
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .max_message_size(Some(gateway.max_ws_message_bytes))
        .max_frame_size(Some(gateway.max_ws_frame_bytes))
}

/// A loadgen client socket: read as the scenarios' sockets read (`shared::local::client`).
pub fn client_config() -> WebSocketConfig {
    shared::local::client::socket_config()
}
