//! The computed-trait contract (`tailor_core::traits`) against a plain reference written from
//! the definition, not from the implementation: random users' events, random windows, random
//! `now`s (events before, at and after it, at window edges). Also: the SDK's read-your-writes
//! update (`Profile::record`) agrees with recomputing, and trait conditions type-check and match
//! through the one engine.

// Test code: a failed unwrap/expect is the test failure, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use proptest::prelude::*;
use tailor_core::model::{Aggregate, TraitDefinition};
use tailor_core::traits::{compute, micros_of, EventRun, TraitValue, DAY_MS};
use tailor_core::{assign, assign_with_profile, compile, ConfigDocument, Profile, User};

const AGGREGATES: [Aggregate; 7] = [
    Aggregate::Count,
    Aggregate::Sum,
    Aggregate::DistinctDays,
    Aggregate::FirstSeen,
    Aggregate::LastSeen,
    Aggregate::DaysSinceFirst,
    Aggregate::DaysSinceLast,
];

/// The contract, literally: filter, then aggregate.
fn reference(
    def: &TraitDefinition,
    events: &[(String, i64, Option<f64>)],
    now: i64,
) -> Option<TraitValue> {
    let inside: Vec<&(String, i64, Option<f64>)> = events
        .iter()
        .filter(|(name, _, _)| def.events.contains(name))
        .filter(|(_, ts, _)| *ts <= now)
        // Whole UTC days: the N days ending with today.
        .filter(|(_, ts, _)| match def.window_days {
            Some(n) => {
                let day = |ms: i64| (ms as f64 / 86_400_000.0).floor() as i64;
                day(*ts) > day(now) - i64::from(n)
            }
            None => true,
        })
        .collect();
    let first = inside.iter().map(|e| e.1).min();
    let last = inside.iter().map(|e| e.1).max();
    let whole_days = |ts: i64| TraitValue::Number(((now - ts) as f64 / 86_400_000.0).floor());
    match def.aggregate {
        Aggregate::Count => Some(TraitValue::Number(inside.len() as f64)),
        Aggregate::Sum => {
            let micros: i64 = inside
                .iter()
                .map(|e| (e.2.unwrap_or(0.0) * 1e6).round() as i64)
                .sum();
            Some(TraitValue::Number(micros as f64 / 1e6))
        }
        Aggregate::DistinctDays => {
            let days: BTreeSet<i64> = inside
                .iter()
                .map(|e| (e.1 as f64 / 86_400_000.0).floor() as i64)
                .collect();
            Some(TraitValue::Number(days.len() as f64))
        }
        Aggregate::FirstSeen => first.map(TraitValue::Datetime),
        Aggregate::LastSeen => last.map(TraitValue::Datetime),
        Aggregate::DaysSinceFirst => first.map(whole_days),
        Aggregate::DaysSinceLast => last.map(whole_days),
    }
}

fn trait_events(events: &[(String, i64, Option<f64>)]) -> Vec<EventRun<'_>> {
    events
        .iter()
        .map(|(name, timestamp, value)| EventRun::one(name, *timestamp, micros_of(*value)))
        .collect()
}

/// The events before `cut` folded into one run per name and UTC day (as the collector folds
/// settled events), the others single.
fn folded(events: &[(String, i64, Option<f64>)], cut: i64) -> Vec<EventRun<'_>> {
    let mut runs: Vec<EventRun<'_>> = Vec::new();
    for (name, ts, value) in events {
        let micros = micros_of(*value);
        let day = ts.div_euclid(DAY_MS);
        let run = runs.iter_mut().find(|r| {
            *ts < cut && r.first < cut && r.name == name && r.first.div_euclid(DAY_MS) == day
        });
        match run {
            Some(r) => {
                r.first = r.first.min(*ts);
                r.last = r.last.max(*ts);
                r.count += 1;
                r.micros += micros;
            }
            None => runs.push(EventRun::one(name, *ts, micros)),
        }
    }
    runs
}

const NOW: i64 = 1_765_000_000_000;

fn arb_event() -> impl Strategy<Value = (String, i64, Option<f64>)> {
    (
        prop_oneof![Just("purchase"), Just("page_view"), Just("signup")],
        prop_oneof![
            // Anywhere in the last 100 days and a little after now.
            (-100 * DAY_MS..DAY_MS / 10).prop_map(|d| NOW + d),
            // Exactly on window edges (the midnights starting the 30th and 7th day back), and
            // one millisecond either side.
            (0usize..6).prop_map(|i| {
                (NOW.div_euclid(DAY_MS) - [29, 6][i % 2]) * DAY_MS + [-1, 0, 1][i / 2]
            }),
            Just(NOW),
        ],
        prop_oneof![
            Just(None),
            (-1000i64..100_000).prop_map(|c| Some(c as f64 / 100.0))
        ],
    )
        .prop_map(|(name, ts, v)| (name.to_string(), ts, v))
}

fn arb_definition() -> impl Strategy<Value = TraitDefinition> {
    (
        0usize..AGGREGATES.len(),
        prop_oneof![
            Just(None),
            Just(Some(1)),
            Just(Some(7)),
            Just(Some(30)),
            Just(Some(3650))
        ],
        prop::sample::subsequence(vec!["purchase", "page_view", "signup"], 1..=3),
    )
        .prop_map(|(a, window_days, events)| TraitDefinition {
            key: "t".into(),
            description: None,
            events: events.into_iter().map(str::to_string).collect(),
            aggregate: AGGREGATES[a],
            window_days,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn compute_matches_the_reference(
        events in prop::collection::vec(arb_event(), 0..40),
        definitions in prop::collection::vec(arb_definition(), 1..6),
        now_offset in prop_oneof![Just(0i64), -DAY_MS..DAY_MS],
    ) {
        let now = NOW + now_offset;
        let computed = compute(&definitions, trait_events(&events), now);
        for (def, got) in definitions.iter().zip(&computed) {
            prop_assert_eq!(got.value, reference(def, &events, now), "{:?}", def);
        }
        // Order does not matter.
        let mut reversed = events.clone();
        reversed.reverse();
        prop_assert_eq!(compute(&definitions, trait_events(&reversed), now), computed);
    }

    /// Folding the events before a cut (at or before `now`) into one run per name and day, as
    /// the collector folds settled events, changes no value.
    #[test]
    fn folded_runs_give_the_same_values(
        events in prop::collection::vec(arb_event(), 0..40),
        definitions in prop::collection::vec(arb_definition(), 1..6),
        now_offset in prop_oneof![Just(0i64), -DAY_MS..DAY_MS],
        cut_back in 0..40 * DAY_MS,
    ) {
        let now = NOW + now_offset;
        let cut = now - cut_back;
        prop_assert_eq!(
            compute(&definitions, folded(&events, cut), now),
            compute(&definitions, trait_events(&events), now)
        );
    }

    /// The SDK's update for an event happening now equals recomputing with it.
    #[test]
    fn recording_an_event_now_equals_recomputing(
        events in prop::collection::vec(arb_event(), 0..30),
        definitions in prop::collection::vec(arb_definition(), 1..6),
        name in prop_oneof![Just("purchase"), Just("page_view"), Just("other")],
        value in prop_oneof![Just(None), (0i64..10_000).prop_map(|c| Some(c as f64 / 100.0))],
    ) {
        let definitions: Vec<TraitDefinition> = definitions
            .into_iter()
            .enumerate()
            .map(|(i, mut d)| { d.key = format!("t{i}"); d })
            .collect();
        // Everything the profile knows happened at or before now.
        let past: Vec<_> = events.into_iter().filter(|e| e.1 <= NOW).collect();
        let before = compute(&definitions, trait_events(&past), NOW);
        let mut profile = Profile::new("u", NOW, &definitions, &before, []);
        profile.record(&definitions, name, NOW, value);
        let mut all = past.clone();
        all.push((name.to_string(), NOW, value));
        let after = compute(&definitions, trait_events(&all), NOW);
        let expected = Profile::new("u", NOW, &definitions, &after, []);
        prop_assert_eq!(profile, expected);
    }
}

fn config(yaml: &str) -> Result<tailor_core::Snapshot, tailor_core::ConfigError> {
    compile(ConfigDocument::from_yaml(yaml).unwrap())
}

const LIFECYCLE: &str = r#"
traits:
  - {key: purchases_30d, events: [purchase], aggregate: count, window_days: 30}
  - {key: first_purchase, events: [purchase], aggregate: first_seen}
segments:
  - key: repeat-buyers
    conditions: {trait: purchases_30d, op: gte, values: [2]}
  - key: crm-vip
    list: true
flags:
  - key: homepage
    type: string
    variants:
      - {key: generic, value: generic}
      - {key: loyalty, value: loyalty}
      - {key: vip, value: vip}
    default_variant: generic
    rules:
      - when: {segment: crm-vip}
        variant: vip
      - when: {segment: repeat-buyers}
        variant: loyalty
  - key: plain
    type: bool
    variants: [{key: "off", value: false}, {key: "on", value: true}]
    default_variant: "off"
    rules:
      - when: {attribute: country, op: eq, values: [NO]}
        variant: "on"
"#;

#[test]
fn trait_and_list_conditions_match_through_the_engine() {
    let snapshot = config(LIFECYCLE).unwrap();
    assert!(snapshot.reads_profiles());
    assert!(snapshot.flag_reads_profile("homepage"));
    assert!(!snapshot.flag_reads_profile("plain"));
    let defs = snapshot.traits().to_vec();
    let user = User::new("u1");
    let profile = |events: &[(String, i64, Option<f64>)], lists: Vec<String>| {
        let computed = compute(&defs, trait_events(events), NOW);
        Profile::new("u1", NOW, &defs, &computed, lists)
    };
    let no_profile = assign(&snapshot, &user, "homepage");
    assert_eq!(no_profile.variant_key(), Some("generic"));
    assert!(no_profile.profile_missing);
    assert!(!assign(&snapshot, &user, "plain").profile_missing);

    let one = profile(&[("purchase".into(), NOW - DAY_MS, Some(5.0))], vec![]);
    let a = assign_with_profile(&snapshot, &user, Some(&one), "homepage");
    assert_eq!(a.variant_key(), Some("generic"));
    assert!(!a.profile_missing);

    let two = profile(
        &[
            ("purchase".into(), NOW - DAY_MS, Some(5.0)),
            ("purchase".into(), NOW, None),
        ],
        vec![],
    );
    let a = assign_with_profile(&snapshot, &user, Some(&two), "homepage");
    assert_eq!(a.variant_key(), Some("loyalty"));
    assert_eq!(a.segment, Some("repeat-buyers"));

    // A backdated purchase outside the window does not count.
    let old = profile(
        &[
            ("purchase".into(), NOW - 30 * DAY_MS, None),
            ("purchase".into(), NOW, None),
        ],
        vec![],
    );
    assert_eq!(
        assign_with_profile(&snapshot, &user, Some(&old), "homepage").variant_key(),
        Some("generic")
    );

    let vip = profile(&[], vec!["crm-vip".into()]);
    assert_eq!(
        assign_with_profile(&snapshot, &user, Some(&vip), "homepage").variant_key(),
        Some("vip")
    );
    assert_eq!(
        snapshot.in_segment("crm-vip", &user, Some(&vip)),
        Some(true)
    );
    assert_eq!(snapshot.in_segment("crm-vip", &user, None), Some(false));
    assert!(!snapshot.segment_reads_attributes("repeat-buyers"));
}

#[test]
fn bad_trait_definitions_and_conditions_are_rejected_with_their_paths() {
    let cases = [
        (
            "traits: [{key: a, events: [], aggregate: count}]",
            "traits.a.events",
        ),
        (
            "traits: [{key: a, events: [x], aggregate: count, window_days: 0}]",
            "traits.a.window_days",
        ),
        (
            "traits: [{key: a, events: [x], aggregate: count, window_days: 3651}]",
            "traits.a.window_days",
        ),
        (
            "traits: [{key: a, events: [x], aggregate: count}, {key: a, events: [y], aggregate: sum}]",
            "traits",
        ),
        (
            "segments: [{key: s, conditions: {trait: nope, op: gt, values: [1]}}]",
            "segments.s.conditions.trait",
        ),
        (
            "traits: [{key: f, events: [x], aggregate: first_seen}]\nsegments: [{key: s, conditions: {trait: f, op: gt, values: [1]}}]",
            "segments.s.conditions.op",
        ),
        (
            "traits: [{key: c, events: [x], aggregate: count}]\nsegments: [{key: s, conditions: {trait: c, op: contains, values: [a]}}]",
            "segments.s.conditions.op",
        ),
        (
            "traits: [{key: c, events: [x], aggregate: count}]\nsegments: [{key: s, conditions: {trait: c, op: gt, values: [a]}}]",
            "segments.s.conditions.values",
        ),
    ];
    for (yaml, path) in cases {
        let err = config(yaml).unwrap_err();
        assert!(
            err.problems.iter().any(|p| p.path.starts_with(path)),
            "{yaml}: expected a problem at {path}, got {err}"
        );
    }
    // An unknown aggregate fails parsing, naming the field.
    let err = ConfigDocument::from_yaml("traits: [{key: a, events: [x], aggregate: median}]")
        .unwrap_err()
        .to_string();
    assert!(err.contains("traits[0].aggregate"), "{err}");
    // Datetime traits take before/after.
    config(
        "traits: [{key: f, events: [x], aggregate: first_seen}]\nsegments: [{key: s, conditions: {trait: f, op: before, values: ['2026-01-01T00:00:00Z']}}]",
    )
    .unwrap();
}

#[test]
fn more_than_ten_thousand_inline_keys_must_be_a_list_segment() {
    let keys: Vec<String> = (0..10_001).map(|i| format!("u{i}")).collect();
    let doc = ConfigDocument::from_json(
        &serde_json::json!({"segments": [{"key": "big", "include": keys}]}).to_string(),
    )
    .unwrap();
    let err = compile(doc).unwrap_err();
    assert!(err.to_string().contains("list: true"), "{err}");
}

#[test]
fn profiles_round_trip_as_json() {
    let snapshot = config(LIFECYCLE).unwrap();
    let defs = snapshot.traits();
    let computed = compute(
        defs,
        trait_events(&[("purchase".into(), NOW - 1, Some(1.5))]),
        NOW,
    );
    let profile = Profile::new("u1", NOW, defs, &computed, ["crm-vip".to_string()]);
    let json = serde_json::to_value(&profile).unwrap();
    assert_eq!(json["traits"]["purchases_30d"], 1.0);
    assert_eq!(json["traits"]["first_purchase"], "2025-12-06T05:46:39.999Z");
    assert_eq!(json["lists"][0], "crm-vip");
    let back: Profile = serde_json::from_value(json).unwrap();
    assert_eq!(back, profile);
}
