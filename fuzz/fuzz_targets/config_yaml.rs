//! Config text (YAML) → `ConfigDocument::from_yaml` → `compile`, then evaluation of every flag
//! and an export/import round trip of what compiled.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tailor_core::{compile, ConfigDocument};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(doc) = ConfigDocument::from_yaml(text) else {
        return;
    };
    let Ok(snapshot) = compile(doc) else {
        return;
    };
    tailor_fuzz::evaluate_all(&snapshot);
    tailor_fuzz::check_round_trip(&snapshot);
});
