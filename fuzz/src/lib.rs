//! Helpers shared by the fuzz targets in `fuzz_targets/` (see FUZZING.md).

use std::sync::OnceLock;

use tailor_core::{assign, compile, ConfigDocument, OpenFeatureReason, Snapshot, User};

/// A few users with every attribute type, for evaluating fuzzed configs.
pub fn users() -> &'static [User] {
    static USERS: OnceLock<Vec<User>> = OnceLock::new();
    USERS.get_or_init(|| {
        vec![
            User::new("u1"),
            User::new("user-42")
                .with("lifecycle", "new")
                .with("country", "US")
                .with("age", 31)
                .with("beta", true)
                .with("interests", ["yoga", "running"])
                .with("version", "1.2.3")
                .with("signup", "2024-05-01T00:00:00Z"),
            User::new("")
                .with("lifecycle", 1.5)
                .with("country", Vec::<String>::new())
                .with("age", f64::NAN)
                .with("version", "not-a-semver")
                .with("signup", 1_700_000_000_000_i64),
        ]
    })
}

/// Evaluates every flag of a compiled snapshot (and an unknown one) for [`users`]: assignment
/// is documented as infallible, so nothing here may panic.
pub fn evaluate_all(snapshot: &Snapshot) {
    let keys: Vec<&str> = snapshot.flag_keys().chain(["no-such-flag"]).collect();
    for user in users() {
        for key in &keys {
            let a = assign(snapshot, user, key);
            let _ = a.variant_key();
            let _ = a.value();
            let _ = a.personalized();
            let _ = a.rule_index();
            let _ = OpenFeatureReason::of(snapshot, &a).as_str();
        }
    }
}

/// A compiled config must export (JSON and YAML, as `GET …/export` does) and the export must
/// read back to the same document and compile again.
pub fn check_round_trip(snapshot: &Snapshot) {
    let doc = snapshot.document();
    let json = doc
        .try_to_json_pretty()
        .expect("a compiled document writes as JSON");
    let back = ConfigDocument::from_json(&json)
        .unwrap_or_else(|e| panic!("exported JSON does not read back: {e}\n{json}"));
    assert_eq!(&back, doc, "JSON round trip changed the document\n{json}");
    compile(back).unwrap_or_else(|e| panic!("exported JSON does not compile: {e}\n{json}"));
    let yaml = doc
        .try_to_yaml()
        .expect("a compiled document writes as YAML");
    let back = ConfigDocument::from_yaml(&yaml)
        .unwrap_or_else(|e| panic!("exported YAML does not read back: {e}\n{yaml}"));
    assert_eq!(&back, doc, "YAML round trip changed the document\n{yaml}");
    compile(back).unwrap_or_else(|e| panic!("exported YAML does not compile: {e}\n{yaml}"));
}

/// The conformance suites' configs, compiled once.
pub fn conformance_snapshots() -> &'static [Snapshot] {
    static SNAPSHOTS: OnceLock<Vec<Snapshot>> = OnceLock::new();
    SNAPSHOTS.get_or_init(|| {
        [
            include_str!("../../shared/fixtures/conformance/targeting.json"),
            include_str!("../../shared/fixtures/conformance/evaluation.json"),
            include_str!("../../shared/fixtures/conformance/bucketing.json"),
        ]
        .into_iter()
        .map(|suite| {
            let suite: serde_json::Value = serde_json::from_str(suite).expect("suite is JSON");
            let config = serde_json::to_string(&suite["config"]).expect("config writes");
            compile(ConfigDocument::from_json(&config).expect("config reads"))
                .expect("config compiles")
        })
        .collect()
    })
}
