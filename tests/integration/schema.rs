//! Every results report a test receives is checked against `server/openapi.yaml`.
//!
//! [`crate::support::send`] passes each `200` JSON answer of `GET …/experiments/{key}/results`
//! to [`check_results_report`], which validates it against the document's `ExperimentReport`
//! schema with a JSON Schema 2020-12 validator (OpenAPI 3.1 schemas are JSON Schema). The
//! schema is made strict first: every object schema that lists `properties` gets
//! `additionalProperties: false` unless it says otherwise, so a field the server sends but the
//! document does not name fails as surely as a wrong type or a missing required field. The
//! tests of [`crate::results`] and the others that read results therefore check the schema on
//! every report they make, whatever the data (empty arms, not-enough-data outcomes, holdouts,
//! sequential lifts).

use std::sync::OnceLock;

use serde_json::{json, Value};

/// The `ExperimentReport` validator, built once from the served API document.
fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let mut document: Value = serde_yaml_ng::from_str(tailor_server::routes::ops::OPENAPI_YAML)
            .expect("server/openapi.yaml is valid YAML");
        if let Some(schemas) = document.pointer_mut("/components/schemas") {
            strict(schemas);
        }
        let root = document.as_object_mut().expect("the API document is a map");
        root.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        root.insert(
            "$ref".into(),
            json!("#/components/schemas/ExperimentReport"),
        );
        jsonschema::draft202012::new(&document)
            .unwrap_or_else(|e| panic!("the ExperimentReport schema does not compile: {e}"))
    })
}

/// Adds `additionalProperties: false` to every object schema under `schema` that lists
/// `properties` and does not set it.
fn strict(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.get("properties").is_some_and(Value::is_object)
                && !map.contains_key("additionalProperties")
            {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(strict);
        }
        Value::Array(items) => items.iter_mut().for_each(strict),
        _ => {}
    }
}

/// Whether `path` is an experiment's results (`/api/v1/environments/{env}/experiments/{key}/results`).
pub fn is_results_path(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    matches!(
        parts.as_slice(),
        ["api", "v1", "environments", _, "experiments", _, "results"]
    )
}

/// Panics, listing every violation, unless `report` matches the documented `ExperimentReport`.
#[track_caller]
pub fn check_results_report(report: &Value) {
    let errors: Vec<String> = validator()
        .iter_errors(report)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "a results report does not match server/openapi.yaml's ExperimentReport:\n{}\nreport: {report}",
        errors.join("\n")
    );
}

#[test]
fn the_schema_is_strict_and_rejects_what_it_does_not_name() {
    let minimal_scope =
        json!({"scope": "overall", "arms": [], "srm": null, "unexpected_variants": []});
    let report = json!({
        "environment": "development", "experiment": "hp", "flag": "homepage",
        "metric": "purchase", "kind": "conversion", "control": "generic", "revision": 3,
        "analyzed_at": "2026-12-07T10:00:00Z", "alpha": 0.05, "cuped_lookback_days": null,
        "prior": null, "correction": null, "optimization": null,
        "overall": minimal_scope, "segments": [], "personalization": null,
        "data_quality": {"multi_variant_users": 0, "late_exposures": 0, "warnings": []},
        "timeline": []
    });
    check_results_report(&report);
    let bad = |pointer: &str, value: Value| {
        let mut r = report.clone();
        *r.pointer_mut(pointer).expect("the field exists") = value;
        validator().is_valid(&r)
    };
    assert!(
        !bad("/overall/srm", json!({"status": "ok"})),
        "an SRM check without its numbers"
    );
    assert!(!bad("/kind", json!("median")), "an unknown kind");
    assert!(
        !bad("/data_quality/late_exposures", json!("0")),
        "a string for an integer"
    );
    let mut extra = report.clone();
    extra["overall"]["surprise"] = json!(1);
    assert!(!validator().is_valid(&extra), "an undocumented field");
    assert!(is_results_path(
        "/api/v1/environments/development/experiments/hp/results"
    ));
    assert!(!is_results_path(
        "/api/v1/environments/development/results/rebuild"
    ));
}
