//! Calls. So far the ICE servers their media uses (`turn`: TURN credentials); the relay of
//! their signaling is to come (issue 17). Media itself never passes through the cell.

pub mod turn;
