//! Pages of lists: a client's `limit` clamped, and the cursor of the next page.

/// Clamps a client's `limit` to 1..=max, `default` when absent.
pub fn page_limit(limit: Option<i64>, default: i64, max: i64) -> i64 {
    limit.unwrap_or(default).clamp(1, max)
}

/// The cursor of the next page: the key of the last item when the page is full.
pub fn next_cursor<T, C>(items: &[T], limit: i64, key: impl Fn(&T) -> C) -> Option<C> {
    if items.len() as i64 == limit { items.last().map(key) } else { None }
}
