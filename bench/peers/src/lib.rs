//! One flag, four engines: Tailor's `assign` side by side with Unleash's Yggdrasil, GrowthBook's
//! Rust SDK and LaunchDarkly's evaluation crate (see `BENCHMARKS.md` at the repository root).
//!
//! The flag is the same everywhere, written in each engine's own config format: users with
//! `country in [US, CA, GB]` and `plan == "pro"` are split 50/50 between `control` and
//! `treatment`; everyone else gets the default (`off`). Every engine gets the same users with the
//! same nine attributes, each in its native context type, built before timing.
//!
//! # Layout
//! - [`Person`]: the engine-neutral description of one user, and the two populations.
//! - [`Outcome`]: what an evaluation decided, read back from each engine's native result, so
//!   setup can assert that every engine really splits the targeted users (not an error path).
//! - [`tailor`], [`unleash`], [`growthbook`], [`launchdarkly`]: per engine, the flag config in
//!   its native format, `context(&Person)` and `evaluate(&engine, &context)`.
//!
//! The benchmark itself is `benches/peers.rs`.

/// The flag key in every engine.
pub const FLAG: &str = "checkout";

/// An engine-neutral user: the key and nine attributes.
#[derive(Debug, Clone)]
pub struct Person {
    /// User key: the bucketing unit.
    pub key: String,
    /// Country code (targeted: US, CA or GB).
    pub country: &'static str,
    /// Plan (targeted: `pro`).
    pub plan: &'static str,
    /// Age in years.
    pub age: i64,
    /// `new`, `active` or `lapsed`.
    pub lifecycle: &'static str,
    /// Number of orders.
    pub orders_count: i64,
    /// Interests.
    pub interests: [&'static str; 2],
    /// `ios` or `android`.
    pub device: &'static str,
    /// App version (semver).
    pub app_version: &'static str,
    /// City.
    pub city: &'static str,
}

impl Person {
    /// User `i` of the population the flag targets: every one matches both conditions.
    pub fn targeted(i: usize) -> Person {
        Person {
            key: format!("user-{i:08}"),
            country: ["US", "CA", "GB"][i % 3],
            plan: "pro",
            ..Person::base(i)
        }
    }

    /// User `i` of the population the flag does not target: half fail the country condition,
    /// half the plan condition.
    pub fn non_matching(i: usize) -> Person {
        let (country, plan) = if i.is_multiple_of(2) {
            (["DE", "FR", "JP"][i % 3], "pro")
        } else {
            (["US", "CA", "GB"][i % 3], "free")
        };
        Person {
            key: format!("visitor-{i:08}"),
            country,
            plan,
            ..Person::base(i)
        }
    }

    fn base(i: usize) -> Person {
        Person {
            key: String::new(),
            country: "",
            plan: "",
            age: 20 + (i % 50) as i64,
            lifecycle: ["new", "active", "lapsed"][i % 3],
            orders_count: (i % 12) as i64,
            interests: [["yoga", "running"], ["cycling", "running"]][i % 2],
            device: ["ios", "android"][i % 2],
            app_version: ["5.3.1", "4.2.0"][i % 2],
            city: ["Paris", "Berlin", "London"][i % 3],
        }
    }
}

/// What one evaluation decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// In the experiment, control arm.
    Control,
    /// In the experiment, treatment arm.
    Treatment,
    /// Not targeted: the default (`off`).
    Default,
}

/// One engine holding flag (b): how to build its native context and evaluate.
pub trait Engine {
    /// The engine's native user/context type.
    type Context;
    /// The engine's native evaluation result, possibly borrowing the engine and the context.
    type Output<'a>
    where
        Self: 'a;

    /// Short name for reports.
    const NAME: &'static str;

    /// Builds the engine with the flag, from its native config format.
    fn new() -> Self;

    /// The user as a native context.
    fn context(p: &Person) -> Self::Context;

    /// One evaluation of [`FLAG`]: the call that is timed.
    fn evaluate<'a>(&'a self, context: &'a Self::Context) -> Self::Output<'a>;

    /// What the evaluation decided; panics on anything unexpected (an error path).
    fn outcome(output: &Self::Output<'_>) -> Outcome;
}

/// Tailor (this repository's engine).
pub mod tailor {
    use tailor_core::{assign, compile, Assignment, ConfigDocument, Reason, Snapshot, User};

    use crate::{Outcome, Person, FLAG};

    /// The flag as a Tailor config document (YAML).
    pub const CONFIG: &str = r#"
experiments:
  - {key: checkout-redesign, status: running}
flags:
  - key: checkout
    type: string
    variants:
      - {key: "off", value: "off"}
      - {key: control, value: control}
      - {key: treatment, value: treatment}
    default_variant: "off"
    rules:
      - when:
          all:
            - {attribute: country, op: in, values: [US, CA, GB]}
            - {attribute: plan, op: eq, values: [pro]}
        split: [{variant: control, weight: 5000}, {variant: treatment, weight: 5000}]
        experiment: checkout-redesign
"#;

    /// The compiled config.
    pub struct Tailor(pub Snapshot);

    impl crate::Engine for Tailor {
        type Context = User;
        type Output<'a> = Assignment<'a>;
        const NAME: &'static str = "tailor";

        fn new() -> Self {
            let doc = ConfigDocument::from_yaml(CONFIG).expect("Tailor config parses");
            Tailor(compile(doc).expect("Tailor config compiles"))
        }

        fn context(p: &Person) -> User {
            context(p)
        }

        #[inline]
        fn evaluate<'a>(&'a self, user: &'a User) -> Assignment<'a> {
            assign(&self.0, user, FLAG)
        }

        fn outcome(a: &Assignment<'_>) -> Outcome {
            outcome(a)
        }
    }

    /// The user as a Tailor `User`.
    pub fn context(p: &Person) -> User {
        User::new(p.key.clone())
            .with("country", p.country)
            .with("plan", p.plan)
            .with("age", p.age)
            .with("lifecycle", p.lifecycle)
            .with("orders_count", p.orders_count)
            .with("interests", p.interests)
            .with("device", p.device)
            .with("app_version", p.app_version)
            .with("city", p.city)
    }

    /// What the evaluation decided; panics on an unexpected reason.
    pub fn outcome(a: &Assignment<'_>) -> Outcome {
        match (a.reason, a.variant_key()) {
            (Reason::Split { rule: 0, .. }, Some("control")) => Outcome::Control,
            (Reason::Split { rule: 0, .. }, Some("treatment")) => Outcome::Treatment,
            (Reason::Fallthrough, Some("off")) => Outcome::Default,
            other => panic!("unexpected Tailor assignment {other:?}"),
        }
    }
}

/// Unleash's Yggdrasil engine (the core shared by Unleash's server-side SDKs).
pub mod unleash {
    use std::collections::HashMap;

    use serde_json::json;
    use unleash_yggdrasil::{
        ClientFeatures, Context, EngineState, ExtendedVariantDef, UpdateMessage,
    };

    use crate::{Outcome, Person, FLAG};

    /// The flag as an Unleash client-features document: a `flexibleRollout` strategy at 100%
    /// with two constraints and two strategy variants of equal weight, sticky on `userId`.
    pub fn features() -> serde_json::Value {
        json!({
            "version": 2,
            "features": [{
                "name": FLAG,
                "type": "experiment",
                "enabled": true,
                "strategies": [{
                    "name": "flexibleRollout",
                    "parameters": {"rollout": "100", "stickiness": "userId", "groupId": FLAG},
                    "constraints": [
                        {"contextName": "country", "operator": "IN", "values": ["US", "CA", "GB"]},
                        {"contextName": "plan", "operator": "IN", "values": ["pro"]}
                    ],
                    "variants": [
                        {"name": "control", "weight": 500, "stickiness": "userId", "weightType": "variable"},
                        {"name": "treatment", "weight": 500, "stickiness": "userId", "weightType": "variable"}
                    ]
                }],
                "variants": []
            }]
        })
    }

    /// An engine holding the flag.
    pub struct Unleash(pub EngineState);

    impl crate::Engine for Unleash {
        type Context = Context;
        type Output<'a> = ExtendedVariantDef;
        const NAME: &'static str = "unleash";

        fn new() -> Self {
            let features: ClientFeatures =
                serde_json::from_value(features()).expect("Unleash features parse");
            let engine = EngineState::default();
            let warnings = engine.take_state(UpdateMessage::FullResponse(features));
            assert!(
                warnings.as_ref().is_none_or(|w| w.is_empty()),
                "Unleash compile warnings: {warnings:?}"
            );
            Unleash(engine)
        }

        fn context(p: &Person) -> Context {
            context(p)
        }

        /// The variant API the SDKs call.
        #[inline]
        fn evaluate<'a>(&'a self, context: &'a Context) -> ExtendedVariantDef {
            self.0.get_variant(FLAG, context, &None)
        }

        fn outcome(v: &ExtendedVariantDef) -> Outcome {
            outcome(v)
        }
    }

    /// The user as an Unleash context (properties are strings).
    pub fn context(p: &Person) -> Context {
        let properties: HashMap<String, String> = [
            ("country", p.country.to_string()),
            ("plan", p.plan.to_string()),
            ("age", p.age.to_string()),
            ("lifecycle", p.lifecycle.to_string()),
            ("orders_count", p.orders_count.to_string()),
            ("interests", p.interests.join(",")),
            ("device", p.device.to_string()),
            ("app_version", p.app_version.to_string()),
            ("city", p.city.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Context {
            user_id: Some(p.key.clone()),
            properties: Some(properties),
            ..Context::default()
        }
    }

    /// What the evaluation decided; panics on an unexpected result.
    pub fn outcome(v: &ExtendedVariantDef) -> Outcome {
        match (v.feature_enabled, v.enabled, v.name.as_str()) {
            (true, true, "control") => Outcome::Control,
            (true, true, "treatment") => Outcome::Treatment,
            (false, false, "disabled") => Outcome::Default,
            _ => panic!("unexpected Unleash variant {v:?}"),
        }
    }
}

/// GrowthBook's Rust SDK, evaluating through its `GrowthBook` core (no client, no network).
pub mod growthbook {
    use std::collections::HashMap;

    use growthbook_rust::dto::GrowthBookFeature;
    use growthbook_rust::growthbook::GrowthBook;
    use growthbook_rust::model_public::{FeatureResult, GrowthBookAttribute};
    use serde_json::{json, Value};

    use crate::{Outcome, Person, FLAG};

    /// The flag as GrowthBook features JSON: an experiment rule with a targeting condition,
    /// two variations weighted 0.5/0.5, hashed on `id` with hash version 2.
    pub fn features() -> Value {
        json!({
            FLAG: {
                "defaultValue": "off",
                "rules": [{
                    "key": "checkout-redesign",
                    "condition": {"country": {"$in": ["US", "CA", "GB"]}, "plan": "pro"},
                    "variations": ["control", "treatment"],
                    "weights": [0.5, 0.5],
                    "coverage": 1.0,
                    "hashAttribute": "id",
                    "hashVersion": 2,
                    "meta": [{"key": "control"}, {"key": "treatment"}]
                }]
            }
        })
    }

    /// The SDK's evaluation core holding the flag.
    pub struct GrowthBookCore(pub GrowthBook);

    impl crate::Engine for GrowthBookCore {
        type Context = Option<Vec<GrowthBookAttribute>>;
        type Output<'a> = FeatureResult;
        const NAME: &'static str = "growthbook";

        fn new() -> Self {
            let features: HashMap<String, GrowthBookFeature> =
                serde_json::from_value(features()).expect("GrowthBook features parse");
            GrowthBookCore(GrowthBook {
                forced_variations: None,
                features,
                attributes: None,
                sticky_bucket_service: None,
                saved_groups: HashMap::new(),
            })
        }

        fn context(p: &Person) -> Self::Context {
            context(p)
        }

        #[inline]
        fn evaluate<'a>(&'a self, attributes: &'a Self::Context) -> FeatureResult {
            self.0.check(FLAG, attributes)
        }

        fn outcome(r: &FeatureResult) -> Outcome {
            outcome(r)
        }
    }

    /// The user as GrowthBook attributes (`check` takes them as `&Option<Vec<_>>`).
    pub fn context(p: &Person) -> Option<Vec<GrowthBookAttribute>> {
        let attributes = GrowthBookAttribute::from(json!({
            "id": p.key,
            "country": p.country,
            "plan": p.plan,
            "age": p.age,
            "lifecycle": p.lifecycle,
            "orders_count": p.orders_count,
            "interests": p.interests,
            "device": p.device,
            "app_version": p.app_version,
            "city": p.city,
        }))
        .expect("GrowthBook attributes from an object");
        Some(attributes)
    }

    /// What the evaluation decided; panics on an unexpected result.
    pub fn outcome(r: &FeatureResult) -> Outcome {
        match (r.source.as_str(), r.value.as_str()) {
            ("experiment", Some("control")) => Outcome::Control,
            ("experiment", Some("treatment")) => Outcome::Treatment,
            ("defaultValue", Some("off")) => Outcome::Default,
            _ => panic!("unexpected GrowthBook result {r:?}"),
        }
    }
}

/// LaunchDarkly's server-side evaluation crate (the engine of its Rust server SDK).
pub mod launchdarkly {
    use launchdarkly_server_sdk_evaluation::{
        evaluate as ld_evaluate, AttributeValue, Context, ContextBuilder, Detail, Flag, FlagValue,
        Reason, Segment, Store,
    };
    use serde_json::json;

    use crate::{Outcome, Person, FLAG};

    /// The flag as LaunchDarkly flag JSON: one rule with two `in` clauses serving an
    /// experiment rollout of 50,000/50,000 (LaunchDarkly weights are out of 100,000).
    pub fn flag_json() -> serde_json::Value {
        json!({
            "key": FLAG,
            "version": 1,
            "on": true,
            "targets": [],
            "contextTargets": [],
            "rules": [{
                "id": "rule-0",
                "clauses": [
                    {"contextKind": "user", "attribute": "country", "op": "in", "values": ["US", "CA", "GB"], "negate": false},
                    {"contextKind": "user", "attribute": "plan", "op": "in", "values": ["pro"], "negate": false}
                ],
                "rollout": {
                    "kind": "experiment",
                    "variations": [
                        {"variation": 1, "weight": 50000},
                        {"variation": 2, "weight": 50000}
                    ]
                },
                "trackEvents": false
            }],
            "prerequisites": [],
            "fallthrough": {"variation": 0},
            "offVariation": 0,
            "variations": ["off", "control", "treatment"],
            "salt": FLAG,
            "clientSide": false
        })
    }

    /// A store with no other flags or segments: the benchmarked flag has no prerequisites.
    pub struct EmptyStore;

    impl Store for EmptyStore {
        fn flag(&self, _flag_key: &str) -> Option<Flag> {
            None
        }

        fn segment(&self, _segment_key: &str) -> Option<Segment> {
            None
        }
    }

    /// The parsed flag and its store.
    pub struct LaunchDarkly {
        /// Other flags and segments (none).
        pub store: EmptyStore,
        /// The flag.
        pub flag: Flag,
    }

    impl crate::Engine for LaunchDarkly {
        type Context = Context;
        type Output<'a> = Detail<&'a FlagValue>;
        const NAME: &'static str = "launchdarkly";

        fn new() -> Self {
            let flag: Flag = serde_json::from_value(flag_json()).expect("LaunchDarkly flag parses");
            LaunchDarkly {
                store: EmptyStore,
                flag,
            }
        }

        fn context(p: &Person) -> Context {
            context(p)
        }

        #[inline]
        fn evaluate<'a>(&'a self, context: &'a Context) -> Detail<&'a FlagValue> {
            ld_evaluate(&self.store, &self.flag, context, None)
        }

        fn outcome(d: &Detail<&FlagValue>) -> Outcome {
            outcome(d)
        }
    }

    /// The user as a LaunchDarkly context of kind `user`.
    pub fn context(p: &Person) -> Context {
        let mut b = ContextBuilder::new(p.key.clone());
        b.set_string("country", p.country)
            .set_string("plan", p.plan)
            .set_float("age", p.age as f64)
            .set_string("lifecycle", p.lifecycle)
            .set_float("orders_count", p.orders_count as f64)
            .set_value(
                "interests",
                AttributeValue::Array(p.interests.iter().map(|s| (*s).into()).collect()),
            )
            .set_string("device", p.device)
            .set_string("app_version", p.app_version)
            .set_string("city", p.city);
        b.build().expect("valid LaunchDarkly context")
    }

    /// What the evaluation decided; panics on an unexpected result.
    pub fn outcome(d: &Detail<&FlagValue>) -> Outcome {
        let value = d.value.and_then(|v| match v {
            FlagValue::Str(s) => Some(s.as_str()),
            _ => None,
        });
        match (&d.reason, value) {
            (Reason::RuleMatch { rule_index: 0, .. }, Some("control")) => Outcome::Control,
            (Reason::RuleMatch { rule_index: 0, .. }, Some("treatment")) => Outcome::Treatment,
            (Reason::Fallthrough { .. }, Some("off")) => Outcome::Default,
            _ => panic!("unexpected LaunchDarkly detail {d:?}"),
        }
    }
}

/// Share of `outcomes` that are `Treatment`, after checking that none is `Default`; or checks
/// that all are `Default` (returning 0) when `targeted` is false.
pub fn check_split(outcomes: impl Iterator<Item = Outcome>, targeted: bool) -> f64 {
    let (mut n, mut treated) = (0usize, 0usize);
    for o in outcomes {
        n += 1;
        match (targeted, o) {
            (true, Outcome::Treatment) => treated += 1,
            (true, Outcome::Control) | (false, Outcome::Default) => {}
            (true, Outcome::Default) => panic!("a targeted user got the default"),
            (false, o) => panic!("a non-matching user got {o:?}"),
        }
    }
    assert!(n > 0, "no evaluations");
    treated as f64 / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn splits<E: Engine>() {
        const N: usize = 20_000;
        let engine = E::new();
        let run = |person: fn(usize) -> Person, targeted| {
            check_split(
                (0..N).map(|i| {
                    let c = E::context(&person(i));
                    let outcome = E::outcome(&engine.evaluate(&c));
                    outcome
                }),
                targeted,
            )
        };
        let share = run(Person::targeted, true);
        assert!(
            (share - 0.5).abs() < 0.02,
            "{}: treatment share {share}",
            E::NAME
        );
        run(Person::non_matching, false);
    }

    /// Every engine splits targeted users about 50/50 and gives everyone else the default.
    #[test]
    fn every_engine_splits_the_targeted_users() {
        splits::<tailor::Tailor>();
        splits::<unleash::Unleash>();
        splits::<growthbook::GrowthBookCore>();
        splits::<launchdarkly::LaunchDarkly>();
    }
}
