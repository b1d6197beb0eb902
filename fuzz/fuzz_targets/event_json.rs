//! One event's JSON → `Event::from_json`, which must accept exactly what
//! `serde_json::from_str::<Event>` accepts, with the same value (shared/src/events.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tailor_core::events::Event;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let fast = Event::from_json(json);
    let derived = serde_json::from_str::<Event>(json);
    match (&fast, &derived) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "different values for {json:?}"),
        (Err(e), Err(_)) => {
            let _ = e.to_string();
        }
        _ => panic!("disagree on {json:?}: from_json {fast:?}, derived {derived:?}"),
    }
    if let Ok(event) = fast {
        // What the collector accepts, the SDK's serializer writes back to the same event.
        let text = serde_json::to_string(&event).expect("an event writes as JSON");
        assert_eq!(Event::from_json(&text).as_ref(), Ok(&event), "{text}");
    }
});
