//! Uploaded files: where they live and who may read them (`store`), what they are (`sniff`),
//! and the sweeper of those no message carries (`sweep`).

pub mod sniff;
pub mod store;
pub mod sweep;
