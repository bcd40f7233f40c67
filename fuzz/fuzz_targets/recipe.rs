//! Recipe and job-message parsing never panic, whatever the bytes; what they accept is valid.
#![no_main]

use darkroom_protocol::message::JobMessage;
use darkroom_protocol::{recipe, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let limits = Limits::default();
    if let Ok(outputs) = recipe::parse(text, &limits) {
        recipe::validate_outputs(&outputs, &limits).expect("parse only returns valid recipes");
    }
    if let Ok(job) = JobMessage::from_json(text) {
        // What parses must round-trip.
        assert_eq!(JobMessage::from_json(&job.to_json()).expect("round trip"), job);
    }
});
