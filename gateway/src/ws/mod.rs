//! The WebSocket side of the gateway, one room per job: the handshake (`upgrade`), a socket's
//! life (`socket`), its read loop (`read`) and per-frame handlers (`frames`), the checks of
//! sends and changes, run side by side (`checks`), what a send goes through (`send`), and the
//! writer (`write`). What other parts of the gateway need of a socket lives below, in
//! `crate::conn`.

pub mod checks;
pub mod frames;
pub mod read;
pub mod send;
pub mod socket;
pub mod upgrade;
pub mod write;
