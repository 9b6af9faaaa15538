//! The text of one fan-out message: the scenario's content (`lg <µs since the epoch> `, so it
//! reads like a scenario message) with the message's index after the time, padded with `x` to
//! the run's message size; and the server's greeting, which tells a client it is registered.

use std::time::Duration;

/// The first frame the server sends a socket, once the socket gets every broadcast.
pub const HELLO: &str = "hello";

/// Message `index`, sent `sent` after the run's epoch, padded to `bytes` (never shorter than
/// its header).
pub fn text(index: u64, sent: Duration, bytes: usize) -> String {
    let mut text = format!("lg {} f{index} ", sent.as_micros());
    let pad = bytes.saturating_sub(text.len());
    text.extend(std::iter::repeat_n('x', pad));
    text
}

/// The index and send time a message names, if it is one of ours.
pub fn parse(text: &str) -> Option<(u64, Duration)> {
    let mut words = text.split(' ');
    (words.next()? == "lg").then_some(())?;
    let sent = Duration::from_micros(words.next()?.parse().ok()?);
    let index = words.next()?.strip_prefix('f')?.parse().ok()?;
    Some((index, sent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_names_its_index_and_time_and_reads_as_scenario_content() {
        let sent = Duration::from_micros(1_234_567);
        let message = text(42, sent, 200);
        assert_eq!(message.len(), 200);
        assert_eq!(parse(&message), Some((42, sent)));
        assert_eq!(crate::content::scheduled_offset(&message), Some(sent));
        assert!(text(7, sent, 4).len() > 4, "never shorter than its header");
    }

    #[test]
    fn other_text_is_not_a_message() {
        assert_eq!(parse(HELLO), None);
        assert_eq!(parse("lg 12 x"), None);
        assert_eq!(parse(&crate::content::content(Duration::from_secs(1), 64)), None);
    }
}
