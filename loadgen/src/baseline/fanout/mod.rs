//! Baseline (c), fan-out: a bare tokio-tungstenite broadcast server with the gateway's buffer
//! settings, in a process of its own, and loadgen's sockets to it: one (or `--senders`)
//! sends text frames of the scenario's content length that the server sends to every socket.
//! Deliveries per second, send→deliver latency, and the server's RSS per idle socket and CPU,
//! for issue 14's targets 4 (fan-out) and 5 (memory); every delivery accounted for.

pub mod frame;
pub mod ledger;
pub mod measure;
pub mod process;
pub mod receive;
pub mod send;
pub mod server;
pub mod settings;
pub mod sockets;
