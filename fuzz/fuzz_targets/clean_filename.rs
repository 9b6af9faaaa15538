//! Any file name a client gives an upload: the cleaned name is never empty, at most 255
//! bytes, has no path separator, quote, control or invisible formatting character, is not
//! `.` or `..`, and cleaning it again changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::protocol::clean_filename;

fuzz_target!(|name: &str| {
    let clean = clean_filename(Some(name));
    assert!(!clean.is_empty() && clean.len() <= 255, "{clean:?}");
    assert!(!matches!(clean.as_str(), "." | ".."), "{clean:?}");
    let invisible = |c: char| matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}');
    assert!(
        !clean.chars().any(|c| c.is_control() || invisible(c) || matches!(c, '/' | '\\' | '"')),
        "{clean:?}"
    );
    assert_eq!(clean_filename(Some(&clean)), clean, "cleaning is idempotent");
});
