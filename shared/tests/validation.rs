//! `compile` reports every problem of a document with the exact path it is about; parse errors
//! name the offending field; unknown fields are ignored everywhere (forward compatibility).

// Test code: a failed unwrap/expect is the test failure, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use tailor_core::{compile, ConfigDocument, ParseError, Problem};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A valid document that tests extend; `base_config_compiles` proves it compiles, so every
/// problem a test sees comes from what the test changed.
fn base() -> Value {
    json!({
        "environment": "test",
        "revision": 3,
        "segments": [
            {"key": "beginners", "conditions": {"attribute": "lifecycle", "op": "eq", "values": ["new"]}}
        ],
        "experiments": [{"key": "exp", "status": "running"}],
        "flags": [{
            "key": "homepage", "type": "string", "default_variant": "generic",
            "variants": [
                {"key": "generic", "value": "g"},
                {"key": "a", "value": "a"},
                {"key": "b", "value": "b"}
            ],
            "rules": []
        }]
    })
}

/// `base()` with these rules on flag `homepage`.
fn with_rules(rules: Value) -> Value {
    let mut config = base();
    config["flags"][0]["rules"] = rules;
    config
}

/// `base()` with one rule on `homepage` whose audience is `when`.
fn with_condition(when: Value) -> Value {
    with_rules(json!([{"when": when, "variant": "a"}]))
}

fn parse(config: &Value) -> ConfigDocument {
    ConfigDocument::from_json(&config.to_string()).unwrap_or_else(|e| panic!("parses: {e}"))
}

fn problems(config: Value) -> Vec<Problem> {
    match compile(parse(&config)) {
        Ok(_) => panic!("expected compile problems for {config:#}"),
        Err(e) => {
            assert!(!e.problems.is_empty(), "an error without problems");
            e.problems
        }
    }
}

/// Exactly one problem has this path, and its message contains `fragment`.
#[track_caller]
fn assert_problem(problems: &[Problem], path: &str, fragment: &str) {
    let at: Vec<&Problem> = problems.iter().filter(|p| p.path == path).collect();
    assert!(
        at.len() == 1 && at[0].message.contains(fragment),
        "expected one problem at `{path}` containing {fragment:?}; got:\n{}",
        list(problems)
    );
}

/// The document produces exactly one problem, at `path`, containing `fragment`.
#[track_caller]
fn assert_only_problem(config: Value, path: &str, fragment: &str) {
    let found = problems(config);
    assert_eq!(
        found.len(),
        1,
        "expected exactly one problem, got:\n{}",
        list(&found)
    );
    assert_problem(&found, path, fragment);
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn base_config_compiles() {
    compile(parse(&base())).expect("the base config is valid");
    compile(parse(&with_condition(json!({"segment": "beginners"})))).expect("valid");
}

// ---------------------------------------------------------------------------------------------
// References
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_variant_references() {
    let mut config = with_rules(json!([
        {"variant": "missing"},
        {"split": [{"variant": "a", "weight": 5000}, {"variant": "ghost", "weight": 5000}]}
    ]));
    config["flags"][0]["default_variant"] = "nope".into();
    config["flags"][0]["overrides"] = json!([{"variant": "phantom", "keys": ["u1"]}]);
    config["experiments"][0]["control_variant"] = "zzz".into();
    config["flags"][0]["rules"][1]["experiment"] = "exp".into();
    let found = problems(config);
    assert_problem(
        &found,
        "flags.homepage.default_variant",
        "unknown variant `nope`",
    );
    assert_problem(
        &found,
        "flags.homepage.overrides[0].variant",
        "unknown variant `phantom`",
    );
    assert_problem(
        &found,
        "flags.homepage.rules[0].variant",
        "unknown variant `missing`",
    );
    assert_problem(
        &found,
        "flags.homepage.rules[1].split[1].variant",
        "unknown variant `ghost`",
    );
    assert_problem(
        &found,
        "experiments.exp.control_variant",
        "unknown variant `zzz` of flag `homepage`",
    );
    assert_eq!(found.len(), 5, "{}", list(&found));
}

#[test]
fn unknown_segment_references() {
    let mut config = with_rules(json!([
        {"when": {"segment": "nobody"}, "variant": "a"},
        {"when": {"all": [
            {"attribute": "country", "op": "eq", "values": ["US"]},
            {"not": {"segment": "lapsed"}}
        ]}, "variant": "b"}
    ]));
    config["segments"]
        .as_array_mut()
        .expect("segments")
        .push(json!({"key": "mixed", "conditions": {"any": [{"segment": "missing-too"}]}}));
    let found = problems(config);
    assert_problem(
        &found,
        "flags.homepage.rules[0].when.segment",
        "unknown segment `nobody`",
    );
    assert_problem(
        &found,
        "flags.homepage.rules[1].when.all[1].not.segment",
        "unknown segment `lapsed`",
    );
    assert_problem(
        &found,
        "segments.mixed.conditions.any[0].segment",
        "unknown segment `missing-too`",
    );
    assert_eq!(found.len(), 3, "{}", list(&found));
}

#[test]
fn unknown_experiment_references() {
    let mut config = with_rules(json!([{"variant": "a", "experiment": "ghost"}]));
    config["layers"] =
        json!([{"key": "l", "slices": [{"experiment": "phantom", "start": 0, "end": 100}]}]);
    let found = problems(config);
    assert_problem(
        &found,
        "flags.homepage.rules[0].experiment",
        "unknown experiment `ghost`",
    );
    assert_problem(
        &found,
        "layers.l.slices[0].experiment",
        "unknown experiment `phantom`",
    );
    assert_eq!(found.len(), 2, "{}", list(&found));
}

// ---------------------------------------------------------------------------------------------
// Segment cycles
// ---------------------------------------------------------------------------------------------

fn segments(list: Value) -> Value {
    let mut config = base();
    config["segments"] = list;
    config
}

#[test]
fn a_segment_that_contains_itself_is_a_cycle() {
    assert_only_problem(
        segments(json!([{"key": "self", "conditions": {"any": [
            {"attribute": "x", "op": "exists"}, {"segment": "self"}
        ]}}])),
        "segments.self.conditions",
        "segment cycle: self -> self",
    );
}

#[test]
fn a_two_segment_cycle() {
    assert_only_problem(
        segments(json!([
            {"key": "a", "conditions": {"segment": "b"}},
            {"key": "b", "conditions": {"not": {"segment": "a"}}}
        ])),
        "segments.b.conditions",
        "segment cycle: a -> b -> a",
    );
}

#[test]
fn a_three_segment_cycle_is_reported_once_with_its_whole_path() {
    assert_only_problem(
        segments(json!([
            {"key": "x", "conditions": {"segment": "y"}},
            {"key": "y", "conditions": {"all": [{"segment": "z"}, {"attribute": "c", "op": "exists"}]}},
            {"key": "z", "conditions": {"any": [{"segment": "x"}]}},
            {"key": "outside", "conditions": {"segment": "x"}}
        ])),
        "segments.z.conditions",
        "segment cycle: x -> y -> z -> x",
    );
}

#[test]
fn shared_segments_without_a_cycle_are_fine() {
    // A diamond: top -> left -> bottom, top -> right -> bottom.
    let config = segments(json!([
        {"key": "top", "conditions": {"all": [{"segment": "left"}, {"segment": "right"}]}},
        {"key": "left", "conditions": {"segment": "bottom"}},
        {"key": "right", "conditions": {"not": {"segment": "bottom"}}},
        {"key": "bottom", "conditions": {"attribute": "x", "op": "exists"}},
        {"key": "beginners", "include": ["u1"]}
    ]));
    compile(parse(&config)).expect("a diamond is not a cycle");
}

// ---------------------------------------------------------------------------------------------
// Operands
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_regex() {
    assert_only_problem(
        with_condition(
            json!({"attribute": "email", "op": "regex", "values": ["^ok$", "(unclosed"]}),
        ),
        "flags.homepage.rules[0].when.values[1]",
        "invalid regex `(unclosed`",
    );
    assert_only_problem(
        with_condition(
            json!({"attribute": "email", "op": "regex", "values": ["[z-a]"], "ignore_case": true}),
        ),
        "flags.homepage.rules[0].when.values[0]",
        "invalid regex `[z-a]`",
    );
}

#[test]
fn bad_semver() {
    assert_only_problem(
        with_condition(json!({"attribute": "app", "op": "semver_gt", "values": ["1.2"]})),
        "flags.homepage.rules[0].when.values[0]",
        "invalid semantic version",
    );
    assert_only_problem(
        with_condition(json!({"attribute": "app", "op": "semver_eq", "values": [2]})),
        "flags.homepage.rules[0].when.values[0]",
        "invalid semantic version",
    );
}

#[test]
fn bad_datetime() {
    assert_only_problem(
        with_condition(
            json!({"attribute": "signup", "op": "before", "values": ["2025-13-01T00:00:00Z"]}),
        ),
        "flags.homepage.rules[0].when.values[0]",
        "invalid RFC 3339 datetime `2025-13-01T00:00:00Z`",
    );
    assert_only_problem(
        with_condition(json!({"attribute": "signup", "op": "after", "values": ["next tuesday"]})),
        "flags.homepage.rules[0].when.values[0]",
        "invalid RFC 3339 datetime",
    );
    assert_only_problem(
        with_condition(json!({"attribute": "signup", "op": "after", "values": [1.5]})),
        "flags.homepage.rules[0].when.values[0]",
        "must be an RFC 3339 datetime or Unix milliseconds",
    );
}

#[test]
fn operand_counts_and_types() {
    let cases = [
        (
            json!({"attribute": "c", "op": "eq", "values": ["US", "CA"]}),
            "flags.homepage.rules[0].when.values",
            "takes exactly one value",
        ),
        (
            json!({"attribute": "c", "op": "in", "values": []}),
            "flags.homepage.rules[0].when.values",
            "operator `in` needs at least one value",
        ),
        (
            json!({"attribute": "c", "op": "regex"}),
            "flags.homepage.rules[0].when.values",
            "operator `regex` needs at least one value",
        ),
        (
            json!({"attribute": "c", "op": "exists", "values": ["x"]}),
            "flags.homepage.rules[0].when.values",
            "operator `exists` takes no values",
        ),
        (
            json!({"attribute": "age", "op": "lt", "values": ["18"]}),
            "flags.homepage.rules[0].when.values[0]",
            "must be a number",
        ),
        (
            json!({"attribute": "age", "op": "gte", "values": [1, 2]}),
            "flags.homepage.rules[0].when.values",
            "takes exactly one value, got 2",
        ),
        (
            json!({"attribute": "c", "op": "contains", "values": [42]}),
            "flags.homepage.rules[0].when.values[0]",
            "must be a string",
        ),
        (
            json!({"attribute": "c", "op": "contains_any", "values": ["a", true]}),
            "flags.homepage.rules[0].when.values[1]",
            "must be a string",
        ),
        (
            json!({"attribute": "c", "op": "in", "values": ["a", null]}),
            "flags.homepage.rules[0].when.values[1]",
            "must be a string, number or boolean",
        ),
        (
            json!({"attribute": "", "op": "exists"}),
            "flags.homepage.rules[0].when.attribute",
            "must not be empty",
        ),
    ];
    for (when, path, fragment) in cases {
        let found = problems(with_condition(when.clone()));
        assert!(
            found
                .iter()
                .any(|p| p.path == path && p.message.contains(fragment)),
            "{when}: expected `{path}` containing {fragment:?}, got:\n{}",
            list(&found)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Percentages
// ---------------------------------------------------------------------------------------------

#[test]
fn split_weights_must_sum_to_ten_thousand_with_the_exact_message() {
    let found = problems(with_rules(json!([
        {"when": {"segment": "beginners"}, "variant": "a"},
        {"split": [{"variant": "a", "weight": 5000}, {"variant": "b", "weight": 5000}]},
        {"split": [{"variant": "a", "weight": 3000}, {"variant": "b", "weight": 6000}]}
    ])));
    assert_eq!(found.len(), 1, "{}", list(&found));
    assert_eq!(found[0].path, "flags.homepage.rules[2].split");
    assert_eq!(found[0].message, "weights must sum to 10000, got 9000");
    assert_eq!(
        found[0].to_string(),
        "flags.homepage.rules[2].split: weights must sum to 10000, got 9000"
    );

    assert_only_problem(
        with_rules(
            json!([{"split": [{"variant": "a", "weight": 7000}, {"variant": "b", "weight": 5000}]}]),
        ),
        "flags.homepage.rules[0].split",
        "weights must sum to 10000, got 12000",
    );
    // Overflow-proof: weights near u32::MAX still sum correctly.
    assert_only_problem(
        with_rules(
            json!([{"split": [{"variant": "a", "weight": 4294967295_u64}, {"variant": "b", "weight": 10001}]}]),
        ),
        "flags.homepage.rules[0].split",
        "got 4294977296",
    );
}

#[test]
fn coverage_above_ten_thousand() {
    assert_only_problem(
        with_rules(json!([{"variant": "a", "coverage": 10001}])),
        "flags.homepage.rules[0].coverage",
        "must be between 0 and 10000 basis points, got 10001",
    );
    assert_only_problem(
        with_rules(
            json!([{"variant": "a"}, {"split": [{"variant": "a", "weight": 10000}], "coverage": 20000}]),
        ),
        "flags.homepage.rules[1].coverage",
        "got 20000",
    );
    compile(parse(&with_rules(
        json!([{"variant": "a", "coverage": 10000}, {"variant": "b", "coverage": 0}]),
    )))
    .expect("0 and 10000 are valid coverages");
}

#[test]
fn holdout_above_ten_thousand() {
    assert_only_problem(
        with_rules(
            json!([{"variant": "a", "holdout": {"basis_points": 10001}, "experiment": "exp"}]),
        ),
        "flags.homepage.rules[0].holdout.basis_points",
        "must be between 0 and 10000, got 10001",
    );
}

// ---------------------------------------------------------------------------------------------
// Duplicates
// ---------------------------------------------------------------------------------------------

#[test]
fn duplicate_keys() {
    let mut config = base();
    config["segments"]
        .as_array_mut()
        .expect("segments")
        .push(json!({"key": "beginners", "include": ["u1"]}));
    config["experiments"]
        .as_array_mut()
        .expect("experiments")
        .extend([
            json!({"key": "other"}),
            json!({"key": "exp", "status": "draft"}),
        ]);
    config["layers"] = json!([{"key": "l", "slices": []}, {"key": "l", "slices": []}]);
    config["flags"][0]["variants"]
        .as_array_mut()
        .expect("variants")
        .push(json!({"key": "a", "value": "again"}));
    let duplicate_flag = json!({
        "key": "homepage", "type": "bool", "default_variant": "off",
        "variants": [{"key": "off", "value": false}]
    });
    config["flags"]
        .as_array_mut()
        .expect("flags")
        .push(duplicate_flag);
    let found = problems(config);
    assert_problem(&found, "segments[1].key", "duplicate key `beginners`");
    assert_problem(&found, "experiments[2].key", "duplicate key `exp`");
    assert_problem(&found, "layers[1].key", "duplicate key `l`");
    assert_problem(&found, "flags[1].key", "duplicate key `homepage`");
    assert_problem(
        &found,
        "flags.homepage.variants[3].key",
        "duplicate key `a`",
    );
    assert_eq!(found.len(), 5, "{}", list(&found));
}

#[test]
fn empty_keys() {
    let mut config = base();
    config["segments"][0]["key"] = "".into();
    config["flags"][0]["variants"][2]["key"] = "".into();
    let found = problems(config);
    assert_problem(&found, "segments[0].key", "must not be empty");
    assert_problem(
        &found,
        "flags.homepage.variants[2].key",
        "must not be empty",
    );
}

// ---------------------------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------------------------

fn with_layer(slices: Value) -> Value {
    let mut config = base();
    config["experiments"] = json!([{"key": "e1"}, {"key": "e2"}, {"key": "e3"}]);
    config["layers"] = json!([{"key": "pricing", "slices": slices}]);
    config
}

#[test]
fn overlapping_layer_slices() {
    assert_only_problem(
        with_layer(json!([
            {"experiment": "e1", "start": 0, "end": 5000},
            {"experiment": "e2", "start": 4000, "end": 6000}
        ])),
        "layers.pricing.slices[1]",
        "range [4000, 6000) overlaps slices[0] [0, 5000) of experiment `e1`",
    );
    // A slice inside another one overlaps too.
    assert_only_problem(
        with_layer(json!([
            {"experiment": "e1", "start": 1000, "end": 9000},
            {"experiment": "e2", "start": 2000, "end": 3000}
        ])),
        "layers.pricing.slices[1]",
        "overlaps slices[0]",
    );
    // Adjacent slices share no bucket.
    compile(parse(&with_layer(json!([
        {"experiment": "e1", "start": 0, "end": 5000},
        {"experiment": "e2", "start": 5000, "end": 10000}
    ]))))
    .expect("adjacent slices do not overlap");
}

#[test]
fn layer_slice_ranges_and_owners() {
    let found = problems(with_layer(json!([
        {"experiment": "e1", "start": 5000, "end": 5000},
        {"experiment": "e2", "start": 9000, "end": 10001},
        {"experiment": "e3", "start": 0, "end": 1000},
        {"experiment": "e3", "start": 1000, "end": 2000}
    ])));
    assert_problem(
        &found,
        "layers.pricing.slices[0]",
        "range [5000, 5000) must satisfy 0 <= start < end <= 10000",
    );
    assert_problem(&found, "layers.pricing.slices[1]", "range [9000, 10001)");
    assert_problem(
        &found,
        "layers.pricing.slices[3].experiment",
        "experiment `e3` already owns another layer slice",
    );
    assert_eq!(found.len(), 3, "{}", list(&found));
}

// ---------------------------------------------------------------------------------------------
// Flags and rules
// ---------------------------------------------------------------------------------------------

#[test]
fn variant_values_must_have_the_flag_type() {
    let config = json!({"flags": [
        {"key": "b", "type": "bool", "default_variant": "off",
         "variants": [{"key": "off", "value": false}, {"key": "on", "value": "yes"}]},
        {"key": "n", "type": "number", "default_variant": "one",
         "variants": [{"key": "one", "value": "1"}]},
        {"key": "s", "type": "string", "default_variant": "x",
         "variants": [{"key": "x", "value": 1}, {"key": "y", "value": null}]},
        {"key": "j", "type": "json", "default_variant": "x",
         "variants": [{"key": "x", "value": {"a": [1]}}, {"key": "y", "value": null}, {"key": "z", "value": 3}]}
    ]});
    let found = problems(config);
    assert_problem(
        &found,
        "flags.b.variants[1].value",
        "must be of the flag's type bool",
    );
    assert_problem(
        &found,
        "flags.n.variants[0].value",
        "must be of the flag's type number",
    );
    assert_problem(
        &found,
        "flags.s.variants[0].value",
        "must be of the flag's type string",
    );
    assert_problem(&found, "flags.s.variants[1].value", "got null");
    assert_eq!(
        found.len(),
        4,
        "json flags take any value:\n{}",
        list(&found)
    );
}

#[test]
fn the_type_message_quotes_the_value_as_written() {
    let found = problems(json!({"flags": [
        {"key": "b", "type": "bool", "default_variant": "off",
         "variants": [{"key": "off", "value": "OFF"}]}
    ]}));
    assert_problem(&found, "flags.b.variants[0].value", "got \"OFF\"");
}

#[test]
fn a_rule_serves_exactly_one_of_variant_and_split() {
    let found = problems(with_rules(json!([
        {"variant": "a", "split": [{"variant": "a", "weight": 10000}]},
        {"when": {"segment": "beginners"}}
    ])));
    assert_problem(
        &found,
        "flags.homepage.rules[0]",
        "set one of `variant`, `split` and `optimize`, not several",
    );
    assert_problem(
        &found,
        "flags.homepage.rules[1]",
        "a rule needs a `variant`, a `split` or an `optimize` to serve",
    );
    assert_eq!(found.len(), 2, "{}", list(&found));
}

#[test]
fn an_optimize_rule_is_checked_with_its_paths() {
    // Without a holdout or an experiment, one variant, floors over 100%, no way to update.
    let found = problems(with_rules(json!([{
        "optimize": {"variants": ["a"], "min_weight": 6000, "update_minutes": 0,
                     "contexts": ["beginners", "nobody"], "metric": "purchase"}
    }])));
    let at = |field: &str| format!("flags.homepage.rules[0].{field}");
    assert_problem(&found, &at("holdout"), "needs a holdout");
    assert_problem(&found, &at("experiment"), "needs an `experiment`");
    assert_problem(&found, &at("optimize.variants"), "at least two variants");
    assert_problem(&found, &at("optimize.update_minutes"), "at least 1");
    assert_problem(&found, &at("optimize.contexts[1]"), "nobody");
    assert_eq!(found.len(), 5, "{}", list(&found));
    let found = problems(with_rules(json!([{
        "optimize": {"variants": ["a", "b", "generic"], "min_weight": 4000, "metric": "purchase"},
        "holdout": {"basis_points": 1000}, "experiment": "exp"
    }])));
    assert_problem(
        &found,
        "flags.homepage.rules[0].optimize.min_weight",
        "4000 basis points for each of 3 variants is more than 10000",
    );
    // The metric must be one the experiment measures.
    assert_problem(
        &found,
        "flags.homepage.rules[0].optimize.metric",
        "`purchase` is not a metric of experiment `exp`",
    );
    assert_eq!(found.len(), 2, "{}", list(&found));
    // Published weights: one per variant, summing to 10000, for a known context.
    let found = problems(with_rules(json!([{
        "optimize": {"variants": ["a", "b"], "metric": "purchase",
                     "weights": [{"context": "returning", "weights": [5000, 5000], "period": 1},
                                 {"context": "*", "weights": [9000, 500], "period": 1}]},
        "holdout": {"basis_points": 1000}, "experiment": "exp"
    }])));
    assert_problem(
        &found,
        "flags.homepage.rules[0].optimize.weights[0].context",
        "not one of the rule's contexts",
    );
    assert_problem(
        &found,
        "flags.homepage.rules[0].optimize.weights[1].weights",
        "summing to 9500",
    );
}

#[test]
fn an_experiment_measures_one_optimize_rule() {
    let rule = json!({"optimize": {"variants": ["a", "b"], "metric": "purchase"},
                      "holdout": {"basis_points": 1000}, "experiment": "exp"});
    let mut config = with_rules(json!([rule.clone(), rule]));
    config["experiments"][0]["primary_metric"] = json!("purchase");
    assert_only_problem(
        config,
        "flags.homepage.rules[1].experiment",
        "already measures an optimize rule",
    );
}

#[test]
fn a_valid_optimize_rule_compiles_and_serves_by_context() {
    let mut config = with_rules(json!([{
        "optimize": {"variants": ["a", "b"], "contexts": ["beginners"],
                     "weights": [{"context": "beginners", "weights": [10000, 0], "period": 7},
                                 {"context": "*", "weights": [0, 10000], "period": 7}]},
        "holdout": {"basis_points": 0}, "experiment": "exp"
    }]));
    config["experiments"][0]["primary_metric"] = json!("purchase");
    let snapshot = compile(parse(&config)).unwrap();
    let beginner = tailor_core::User::new("u1").with("lifecycle", "new");
    let other = tailor_core::User::new("u1").with("lifecycle", "active");
    let a = tailor_core::assign(&snapshot, &beginner, "homepage");
    assert_eq!((a.variant_key(), a.segment), (Some("a"), Some("beginners")));
    let b = tailor_core::assign(&snapshot, &other, "homepage");
    assert_eq!((b.variant_key(), b.segment), (Some("b"), None));
    assert!(a.personalized() && a.experiment == Some("exp"));
}

#[test]
fn a_holdout_needs_an_experiment() {
    assert_only_problem(
        with_rules(json!([{"variant": "a", "holdout": {"basis_points": 1000}}])),
        "flags.homepage.rules[0].holdout",
        "a holdout needs an `experiment`",
    );
}

#[test]
fn an_experiment_belongs_to_one_flag() {
    let mut config = with_rules(json!([{"variant": "a", "experiment": "exp"}]));
    config["flags"].as_array_mut().expect("flags").push(json!({
        "key": "checkout", "type": "bool", "default_variant": "off",
        "variants": [{"key": "off", "value": false}, {"key": "on", "value": true}],
        "rules": [{"variant": "on", "experiment": "exp"}]
    }));
    assert_only_problem(
        config,
        "flags.checkout.rules[0].experiment",
        "experiment `exp` is already used by flag `homepage`",
    );
    // Several rules of one flag may share an experiment (e.g. one holdout per segment).
    compile(parse(&with_rules(json!([
        {"when": {"segment": "beginners"}, "variant": "a", "experiment": "exp", "holdout": {"basis_points": 500}},
        {"variant": "b", "experiment": "exp", "holdout": {"basis_points": 500}}
    ]))))
    .expect("one flag, one experiment, two rules");
}

#[test]
fn other_flag_and_rule_problems() {
    let cases = [
        (
            with_rules(json!([{"split": []}])),
            "flags.homepage.rules[0].split",
            "a split needs at least one variant",
        ),
        (
            with_rules(
                json!([{"split": [{"variant": "a", "weight": 5000}, {"variant": "a", "weight": 5000}]}]),
            ),
            "flags.homepage.rules[0].split[1].variant",
            "variant `a` appears twice in the split",
        ),
        (
            with_rules(json!([{"variant": "a", "salt": ""}])),
            "flags.homepage.rules[0].salt",
            "must not be empty when set",
        ),
        (
            with_rules(json!([{"variant": "a", "bucket_by": ""}])),
            "flags.homepage.rules[0].bucket_by",
            "must not be empty when set",
        ),
        (
            with_rules(
                json!([{"variant": "a", "experiment": "exp", "holdout": {"basis_points": 5, "salt": ""}}]),
            ),
            "flags.homepage.rules[0].holdout.salt",
            "must not be empty when set",
        ),
    ];
    for (config, path, fragment) in cases {
        assert_only_problem(config, path, fragment);
    }

    let mut config = base();
    config["flags"][0]["overrides"] = json!([
        {"variant": "a", "keys": ["u1", "u2"]},
        {"variant": "b", "keys": ["u2"]}
    ]);
    assert_only_problem(
        config,
        "flags.homepage.overrides[1].keys",
        "user `u2` is overridden more than once",
    );

    let mut config = base();
    config["flags"][0]["salt"] = "".into();
    assert_only_problem(config, "flags.homepage.salt", "must not be empty when set");

    let mut config = base();
    config["flags"][0]["variants"] = json!([]);
    let found = problems(config);
    assert_problem(
        &found,
        "flags.homepage.variants",
        "a flag needs at least one variant",
    );

    let mut config = base();
    config["experiments"][0]["attribution_window_hours"] = 0.into();
    assert_only_problem(
        config,
        "experiments.exp.attribution_window_hours",
        "must be at least 1",
    );
}

// ---------------------------------------------------------------------------------------------
// Everything at once
// ---------------------------------------------------------------------------------------------

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let config = json!({
        "segments": [
            {"key": "loop-a", "conditions": {"segment": "loop-b"}},
            {"key": "loop-b", "conditions": {"segment": "loop-a"}},
            {"key": "bad-ops", "conditions": {"all": [
                {"attribute": "email", "op": "regex", "values": ["(("]},
                {"attribute": "app", "op": "semver_lt", "values": ["x.y.z"]},
                {"segment": "unknown-segment"}
            ]}},
            {"key": "loop-a"}
        ],
        "experiments": [{"key": "exp-1", "status": "running"}, {"key": "exp-2"}],
        "layers": [{"key": "layer", "slices": [
            {"experiment": "exp-1", "start": 0, "end": 6000},
            {"experiment": "exp-2", "start": 5000, "end": 10000}
        ]}],
        "flags": [
            {"key": "homepage", "type": "string", "default_variant": "nope",
             "variants": [{"key": "generic", "value": "g"}, {"key": "a", "value": 1}],
             "rules": [
                {"when": {"attribute": "signup", "op": "before", "values": ["yesterday"]}, "variant": "a"},
                {"variant": "a", "coverage": 10500},
                {"split": [{"variant": "generic", "weight": 4000}, {"variant": "a", "weight": 5000}]},
                {"variant": "a", "holdout": {"basis_points": 20000}},
                {"variant": "a", "experiment": "exp-1"}
             ]},
            {"key": "checkout", "type": "bool", "default_variant": "off",
             "variants": [{"key": "off", "value": false}],
             "rules": [{"variant": "off", "experiment": "exp-1"}, {"variant": "on", "experiment": "ghost"}]}
        ]
    });
    let error = compile(parse(&config)).expect_err("many problems");
    let expected: Vec<(&str, &str)> = vec![
        ("segments[3].key", "duplicate key `loop-a`"),
        (
            "segments.bad-ops.conditions.all[0].values[0]",
            "invalid regex `((`",
        ),
        (
            "segments.bad-ops.conditions.all[1].values[0]",
            "invalid semantic version",
        ),
        (
            "segments.bad-ops.conditions.all[2].segment",
            "unknown segment `unknown-segment`",
        ),
        (
            "segments.loop-b.conditions",
            "segment cycle: loop-a -> loop-b -> loop-a",
        ),
        ("layers.layer.slices[1]", "overlaps slices[0]"),
        (
            "flags.homepage.variants[1].value",
            "must be of the flag's type string",
        ),
        ("flags.homepage.default_variant", "unknown variant `nope`"),
        (
            "flags.homepage.rules[0].when.values[0]",
            "invalid RFC 3339 datetime `yesterday`",
        ),
        ("flags.homepage.rules[1].coverage", "got 10500"),
        (
            "flags.homepage.rules[2].split",
            "weights must sum to 10000, got 9000",
        ),
        ("flags.homepage.rules[3].holdout.basis_points", "got 20000"),
        (
            "flags.homepage.rules[3].holdout",
            "a holdout needs an `experiment`",
        ),
        (
            "flags.checkout.rules[0].experiment",
            "experiment `exp-1` is already used by flag `homepage`",
        ),
        ("flags.checkout.rules[1].variant", "unknown variant `on`"),
        (
            "flags.checkout.rules[1].experiment",
            "unknown experiment `ghost`",
        ),
    ];
    let mut missing = Vec::new();
    for (path, fragment) in &expected {
        if !error
            .problems
            .iter()
            .any(|p| p.path == *path && p.message.contains(fragment))
        {
            missing.push(format!("{path}: {fragment}"));
        }
    }
    assert!(
        missing.is_empty() && error.problems.len() == expected.len(),
        "missing:\n{}\nreported ({}):\n{}",
        missing.join("\n"),
        error.problems.len(),
        list(&error.problems)
    );
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("config has {} problems", expected.len())),
        "{text}"
    );
    assert!(text.contains("\n  flags.homepage.rules[2].split: weights must sum to 10000, got 9000"));
}

// ---------------------------------------------------------------------------------------------
// Parse errors name the path
// ---------------------------------------------------------------------------------------------

#[track_caller]
fn json_error(text: &str) -> (String, String) {
    match ConfigDocument::from_json(text) {
        Err(e @ ParseError::Json { .. }) => {
            let ParseError::Json { path, .. } = &e else {
                unreachable!()
            };
            (path.clone(), e.to_string())
        }
        Err(other) => panic!("expected a JSON error, got {other}"),
        Ok(_) => panic!("expected a JSON error for {text}"),
    }
}

#[track_caller]
fn yaml_error(text: &str) -> (String, String) {
    match ConfigDocument::from_yaml(text) {
        Err(e @ ParseError::Yaml { .. }) => {
            let ParseError::Yaml { path, .. } = &e else {
                unreachable!()
            };
            (path.clone(), e.to_string())
        }
        Err(other) => panic!("expected a YAML error, got {other}"),
        Ok(_) => panic!("expected a YAML error for {text}"),
    }
}

const FLAG_HEAD: &str = r#""key": "f", "type": "string", "default_variant": "a", "variants": [{"key": "a", "value": "a"}]"#;

#[test]
fn json_parse_errors_name_the_path() {
    let (path, text) = json_error(&format!(
        r#"{{"flags": [{{{FLAG_HEAD}, "rules": [{{"variant": "a"}}, {{"variant": "a", "coverage": "full"}}]}}]}}"#
    ));
    assert_eq!(path, "flags[0].rules[1].coverage");
    assert!(
        text.starts_with("invalid JSON config at flags[0].rules[1].coverage: "),
        "{text}"
    );

    let (path, _) = json_error(
        r#"{"flags": [{"key": "f", "type": "integer", "default_variant": "a", "variants": []}]}"#,
    );
    assert_eq!(path, "flags[0].type");

    let (path, text) = json_error(&format!(
        r#"{{"flags": [{{{FLAG_HEAD}, "rules": [{{"when": {{"attribute": "c", "op": "like", "values": ["x"]}}, "variant": "a"}}]}}]}}"#
    ));
    assert!(path.starts_with("flags[0].rules[0].when"), "{path}");
    assert!(text.contains("like"), "{text}");

    let (path, text) = json_error(&format!(
        r#"{{"flags": [{{{FLAG_HEAD}, "rules": [{{"when": {{"country": "US"}}, "variant": "a"}}]}}]}}"#
    ));
    assert_eq!(path, "flags[0].rules[0].when");
    assert!(text.contains("a condition needs exactly one of"), "{text}");

    let (path, text) = json_error(&format!(
        r#"{{"flags": [{{{FLAG_HEAD}, "rules": [{{"when": {{"attribute": "c"}}, "variant": "a"}}]}}]}}"#
    ));
    assert_eq!(path, "flags[0].rules[0].when");
    assert!(text.contains("needs an `op`"), "{text}");

    let (path, _) = json_error(r#"{"segments": [{"key": "s", "include": "alice"}]}"#);
    assert_eq!(path, "segments[0].include");

    let (path, _) = json_error(
        r#"{"layers": [{"key": "l", "slices": [{"experiment": "e", "start": -1, "end": 5}]}]}"#,
    );
    assert_eq!(path, "layers[0].slices[0].start");

    let (path, _) = json_error(r#"{"experiments": [{"key": "e", "status": "paused"}]}"#);
    assert_eq!(path, "experiments[0].status");

    let (path, _) = json_error(r#"{"flags": [{"type": "bool"}]}"#);
    assert!(
        path.starts_with("flags[0]"),
        "a missing key is reported on its object: {path}"
    );

    // Syntax errors are JSON errors too.
    json_error(r#"{"flags": [ "#);
    json_error("");
}

#[test]
fn yaml_parse_errors_name_the_path() {
    let (path, text) = yaml_error(
        "flags:\n  - key: f\n    type: string\n    default_variant: a\n    variants: [{key: a, value: a}]\n    rules:\n      - variant: a\n        coverage: lots\n",
    );
    assert_eq!(path, "flags[0].rules[0].coverage");
    assert!(
        text.starts_with("invalid YAML config at flags[0].rules[0].coverage: "),
        "{text}"
    );

    let (path, _) = yaml_error(
        "segments:\n  - key: s\n    conditions: {all: [{attribute: a, op: nope, values: [1]}]}\n",
    );
    assert!(path.starts_with("segments[0].conditions"), "{path}");

    let (path, _) = yaml_error("experiments:\n  - key: e\n    attribution_window_hours: -3\n");
    assert_eq!(path, "experiments[0].attribution_window_hours");

    yaml_error("flags: [unclosed\n");
}

// ---------------------------------------------------------------------------------------------
// Forward compatibility
// ---------------------------------------------------------------------------------------------

/// The same document as `with_unknown_fields`, without the unknown fields.
fn known_fields_only() -> Value {
    json!({
        "environment": "production",
        "revision": 12,
        "segments": [{
            "key": "s", "include": ["u1"], "exclude": ["u2"],
            "conditions": {"all": [
                {"attribute": "country", "op": "in", "values": ["US"]},
                {"any": [{"segment": "t"}]},
                {"not": {"attribute": "plan", "op": "eq", "values": ["free"], "ignore_case": true}}
            ]}
        }, {"key": "t"}],
        "experiments": [{"key": "e", "status": "running", "primary_metric": "purchase"}],
        "layers": [{"key": "l", "slices": [{"experiment": "e", "start": 0, "end": 5000}]}],
        "flags": [{
            "key": "f", "type": "string", "default_variant": "a",
            "variants": [{"key": "a", "value": "A"}, {"key": "b", "value": "B"}],
            "overrides": [{"variant": "b", "keys": ["u3"]}],
            "rules": [
                {"when": {"segment": "s"}, "variant": "b", "holdout": {"basis_points": 100, "salt": "h"}, "experiment": "e"},
                {"split": [{"variant": "a", "weight": 5000}, {"variant": "b", "weight": 5000}], "coverage": 5000}
            ]
        }]
    })
}

fn with_unknown_fields() -> Value {
    let mut v = known_fields_only();
    let future = json!({"nested": {"deeply": [1, "two", null]}, "flag": true});
    let mut add = |pointer: &str| {
        let target = v
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("no {pointer}"))
            .as_object_mut()
            .unwrap_or_else(|| panic!("{pointer} is not an object"));
        target.insert("x_future_field".into(), future.clone());
        target.insert("owner".into(), "someone@example.com".into());
    };
    for pointer in [
        "",
        "/segments/0",
        "/segments/0/conditions",
        "/segments/0/conditions/all/0",
        "/segments/0/conditions/all/1",
        "/segments/0/conditions/all/1/any/0",
        "/segments/0/conditions/all/2",
        "/segments/0/conditions/all/2/not",
        "/segments/1",
        "/experiments/0",
        "/layers/0",
        "/layers/0/slices/0",
        "/flags/0",
        "/flags/0/variants/0",
        "/flags/0/overrides/0",
        "/flags/0/rules/0",
        "/flags/0/rules/0/holdout",
        "/flags/0/rules/1",
        "/flags/0/rules/1/split/0",
    ] {
        add(pointer);
    }
    v
}

#[test]
fn unknown_fields_are_ignored_at_every_level() {
    let plain = parse(&known_fields_only());
    let extended = parse(&with_unknown_fields());
    assert_eq!(plain, extended);
    assert!(
        with_unknown_fields()
            .to_string()
            .matches("x_future_field")
            .count()
            >= 19
    );
    let snapshot = compile(extended).expect("unknown fields do not stop compilation");
    assert_eq!(snapshot.revision(), 12);

    // YAML too: the same document written as YAML.
    let yaml = serde_yaml_ng::to_string(&with_unknown_fields()).expect("to yaml");
    assert!(yaml.contains("x_future_field"));
    let from_yaml = ConfigDocument::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(from_yaml, plain);

    // And a user with unknown fields next to `key` and `attributes`.
    let user: tailor_core::User = serde_json::from_value(json!({
        "key": "u1", "attributes": {"country": "US"}, "anonymous": true, "x_future_field": {}
    }))
    .expect("user");
    assert_eq!(user.key(), "u1");
}

#[test]
fn documents_round_trip_through_json_and_yaml() {
    let doc = parse(&known_fields_only());
    assert_eq!(
        ConfigDocument::from_json(&doc.try_to_json_pretty().expect("write json")).expect("json"),
        doc
    );
    assert_eq!(
        ConfigDocument::from_yaml(&doc.try_to_yaml().expect("write yaml")).expect("yaml"),
        doc
    );
}

#[test]
fn duplicate_rule_ids_name_the_rule() {
    let found = problems(with_rules(json!([
        {"id": "beginners-rule", "variant": "a"},
        {"variant": "b"},
        {"id": "beginners-rule", "variant": "b"},
        {"id": "", "variant": "a"}
    ])));
    assert_problem(
        &found,
        "flags.homepage.rules[2].id",
        "duplicate rule id `beginners-rule`",
    );
    assert_problem(&found, "flags.homepage.rules[3].id", "must not be empty");
    assert_eq!(found.len(), 2, "{}", list(&found));
}

#[test]
fn list_operators_reject_ignore_case_instead_of_ignoring_it() {
    for op in ["contains_any", "contains_all"] {
        assert_only_problem(
            with_condition(
                json!({"attribute": "tags", "op": op, "values": ["Yoga"], "ignore_case": true}),
            ),
            "flags.homepage.rules[0].when.ignore_case",
            "`ignore_case` is not supported",
        );
    }
}
