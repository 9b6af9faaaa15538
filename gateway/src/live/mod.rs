//! What happens to a socket once it is open: deliveries fanned out per channel (`fanout`,
//! `route`, `forward`), exact resume (`sync`), a late join's missed messages (`joined`), presence, typing and read positions. The state
//! holds the services among them (`Fanout`, `Syncer`, `Presence`); the rest is what a socket
//! or a route keeps. None of them imports the code that runs a socket (`crate::ws`), only its
//! handle (`crate::conn`).

pub mod fanout;
pub mod forward;
pub mod joined;
pub mod presence;
pub mod reads;
pub mod route;
pub mod sync;
pub mod typing;
