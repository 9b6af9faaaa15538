//! The content of a load message: the time it was scheduled at, so each receiver can time its
//! delivery from what it carries, padded to the run's message size. The baselines send the
//! same length.

use std::time::Duration;

/// A message's content: `lg <microseconds from the epoch to its scheduled time> ` padded with
/// `x` to `bytes` (never shorter than the header).
pub fn content(scheduled: Duration, bytes: usize) -> String {
    let mut text = format!("lg {} ", scheduled.as_micros());
    let pad = bytes.saturating_sub(text.len());
    text.extend(std::iter::repeat_n('x', pad));
    text
}

/// The scheduled time a content names, if it is one of ours.
pub fn scheduled_offset(content: &str) -> Option<Duration> {
    let mut words = content.split(' ');
    (words.next()? == "lg").then_some(())?;
    Some(Duration::from_micros(words.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_padded_and_names_its_time() {
        let text = content(Duration::from_micros(1234), 40);
        assert_eq!(text.len(), 40);
        assert_eq!(scheduled_offset(&text), Some(Duration::from_micros(1234)));
        assert_eq!(scheduled_offset("hello there"), None);
    }
}
