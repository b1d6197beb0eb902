//! Inputs found by the fuzz targets in `fuzz/` (FUZZING.md), kept as plain tests.
#![allow(clippy::unwrap_used)]

use tailor_core::{compile, ConfigDocument, User};

/// `ofrep_context` (fuzz/corpus/ofrep_context/regression-float-roundtrip.json): an OFREP number
/// (`7000…0002000…0`, 113 digits) reads as 7e111, which `User`'s serializer writes as `7e111`;
/// serde_json's default float parser read that back one ulp low (6.999999999999999e111), so a
/// user did not survive a JSON round trip. Fixed by serde_json's `float_roundtrip` feature
/// (shared/Cargo.toml): correctly rounded float parsing.
#[test]
fn a_user_number_survives_a_json_round_trip() {
    let body = r#"{"context": {"targetingKey": "u", "a7": 7000000000000000000000000000020000000000000000000000000000000000000000000000000000000000000000000000000000000000}}"#;
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    let number = body["context"]["a7"].as_f64().unwrap();
    assert_eq!(number, 7e111);
    let user = User::new("u").with("a7", number);
    let text = serde_json::to_string(&user).unwrap();
    let back: User = serde_json::from_str(&text).unwrap();
    assert_eq!(back, user, "{text}");
    // The shortest text of the number itself reads back as the same number.
    assert_eq!(serde_json::from_str::<f64>("7e111").unwrap(), 7e111);
}

/// The same parser reads config documents: an exported config (`GET …/export`) must import as
/// the same document, numbers included (a variant value and a numeric condition operand).
#[test]
fn a_config_number_survives_export_and_import() {
    let doc = ConfigDocument::from_yaml(
        r#"
segments:
  - key: big
    conditions: {attribute: score, op: gt, values: [7e111]}
flags:
  - key: f
    type: json
    variants:
      - {key: a, value: {n: 7e111}}
      - {key: b, value: 1}
    default_variant: a
"#,
    )
    .unwrap();
    let snapshot = compile(doc.clone()).unwrap();
    let json = snapshot.document().try_to_json_pretty().unwrap();
    let back = ConfigDocument::from_json(&json).unwrap();
    assert_eq!(back, doc, "{json}");
}
