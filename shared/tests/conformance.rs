//! Runs the language-neutral conformance suite in `shared/fixtures/conformance/*.json` (format in
//! that directory's README.md) against the Rust engine. Every failing case is reported by file
//! and name, not only the first.

// Test code: a failed unwrap/expect is the test failure, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use tailor_core::{assign, compile, ConfigDocument, Reason, User};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    name: String,
    description: String,
    config: Value,
    cases: Vec<Case>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    user: Value,
    flag: String,
    expected: Expected,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    variant: Option<String>,
    reason: Value,
    experiment: Option<String>,
}

fn suite_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/conformance")
}

fn suite_files() -> Vec<PathBuf> {
    let dir = suite_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> SuiteFile {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad suite file {}: {e}", path.display()))
}

/// Runs every case of one file; returns one message per failing case (empty: all passed).
fn run(file: &SuiteFile) -> Vec<String> {
    let doc = match ConfigDocument::from_json(&file.config.to_string()) {
        Ok(doc) => doc,
        Err(e) => return vec![format!("{}: config does not parse: {e}", file.name)],
    };
    let snapshot = match compile(doc) {
        Ok(s) => s,
        Err(e) => return vec![format!("{}: config does not compile: {e}", file.name)],
    };
    let mut failures = Vec::new();
    for case in &file.cases {
        let at = format!("{} / {}", file.name, case.name);
        if let Err(e) = serde_json::from_value::<Reason>(case.expected.reason.clone()) {
            failures.push(format!("{at}: expected reason is not a valid Reason: {e}"));
            continue;
        }
        let user: User = match serde_json::from_value(case.user.clone()) {
            Ok(u) => u,
            Err(e) => {
                failures.push(format!("{at}: user does not parse: {e}"));
                continue;
            }
        };
        let got = assign(&snapshot, &user, &case.flag);
        let got_reason = serde_json::to_value(got.reason).expect("a reason serializes");
        let mut wrong = Vec::new();
        if got.variant_key() != case.expected.variant.as_deref() {
            wrong.push(format!(
                "variant {:?}, expected {:?}",
                got.variant_key(),
                case.expected.variant
            ));
        }
        if got_reason != case.expected.reason {
            wrong.push(format!(
                "reason {got_reason}, expected {}",
                case.expected.reason
            ));
        }
        if got.experiment != case.expected.experiment.as_deref() {
            wrong.push(format!(
                "experiment {:?}, expected {:?}",
                got.experiment, case.expected.experiment
            ));
        }
        if !wrong.is_empty() {
            failures.push(format!("{at}: {}", wrong.join("; ")));
        }
    }
    failures
}

#[test]
fn conformance_suite_passes() {
    let files = suite_files();
    let names: BTreeSet<String> = files
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    for required in ["bucketing", "evaluation", "targeting"] {
        assert!(
            names.contains(required),
            "missing conformance/{required}.json"
        );
    }
    let mut failures = Vec::new();
    let mut total = 0;
    for path in &files {
        let file = load(path);
        assert!(
            !file.description.is_empty(),
            "{}: empty description",
            path.display()
        );
        assert!(!file.cases.is_empty(), "{}: no cases", path.display());
        total += file.cases.len();
        failures.extend(run(&file));
    }
    assert!(total >= 150, "only {total} conformance cases");
    assert!(
        failures.is_empty(),
        "{} of {total} conformance cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Fixture hygiene: case names unique per file, and every flag of a file's config exercised.
#[test]
fn every_file_has_unique_case_names_and_covers_its_flags() {
    for path in suite_files() {
        let file = load(&path);
        let mut seen = BTreeSet::new();
        for case in &file.cases {
            assert!(
                seen.insert(case.name.as_str()),
                "{}: duplicate case name {:?}",
                file.name,
                case.name
            );
        }
        let tested: BTreeSet<&str> = file.cases.iter().map(|c| c.flag.as_str()).collect();
        let flags = file.config["flags"].as_array().cloned().unwrap_or_default();
        for flag in &flags {
            let key = flag["key"].as_str().unwrap_or_default();
            assert!(
                tested.contains(key),
                "{}: flag {key:?} has no case",
                file.name
            );
        }
    }
}

/// The runner can fail, and reports every failing case rather than stopping at the first.
#[test]
fn runner_reports_every_failing_case_by_name() {
    let mut file = load(&suite_dir().join("targeting.json"));
    assert!(
        run(&file).is_empty(),
        "targeting.json should pass before corruption"
    );

    file.cases[0].expected.variant = Some("no-such-variant".into());
    file.cases[3].expected.reason = serde_json::json!({"kind": "rule", "rule": 7});
    file.cases[5].expected.experiment = Some("surprise".into());
    let failures = run(&file);
    assert_eq!(failures.len(), 3, "{failures:#?}");
    for (failure, index) in failures.iter().zip([0, 3, 5]) {
        assert!(
            failure.contains(&file.cases[index].name),
            "{failure} does not name case {index}"
        );
    }

    let mut bad_config = file.clone();
    bad_config.config["flags"][0]["default_variant"] = "missing".into();
    let failures = run(&bad_config);
    assert_eq!(failures.len(), 1);
    assert!(failures[0].contains("does not compile"), "{}", failures[0]);

    let mut bad_reason = load(&suite_dir().join("evaluation.json"));
    bad_reason.cases[0].expected.reason = serde_json::json!({"kind": "unknown-flag"});
    let failures = run(&bad_reason);
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].contains("not a valid Reason"),
        "{}",
        failures[0]
    );
}
