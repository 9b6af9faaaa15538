//! Calls: the cell relays their signaling and hands out the ICE servers their media uses.
//! Media itself never passes through the cell.

pub mod turn;
