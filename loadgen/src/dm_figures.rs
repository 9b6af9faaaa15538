//! dm-storm's own figures, as the summary shows them and `--out` writes them.

use crate::measure::Percentiles;
use serde::Serialize;
use std::collections::BTreeMap;

/// dm-storm's own figures.
#[derive(Debug, Clone, Serialize)]
pub struct DmFigures {
    pub planned: usize,
    pub opened: u64,
    /// Answered 201.
    pub created: u64,
    /// Answered 200 (the dm existed: a retry after `409 dm_exists`, or a lost answer).
    pub existed: u64,
    pub retries: u64,
    pub failed: u64,
    /// From the first create request to the last answer.
    pub storm_s: f64,
    pub opened_per_s: f64,
    pub create_ms: Percentiles,
    /// Create requests refused, by `"<status> <code>"`.
    pub errors: BTreeMap<String, u64>,
    /// Sends written again after `not_a_member` (the dm not yet known at the gateway).
    pub not_a_member_resends: u64,
    /// Syncs asked for after a live `seq` past a hole.
    pub gap_syncs: u64,
    /// Syncs after listing the channels at the end (a dm whose every message went by).
    pub catch_up_syncs: u64,
    /// Deliveries in those syncs' backlogs, rather than live.
    pub delivered_by_sync: u64,
}
