//! `TailorProvider` through the real `open-feature` API (`OpenFeature::singleton_mut()`,
//! `set_named_provider`, `create_named_client`) against offline clients: every value type,
//! reasons, variant and metadata, error codes, and the context → user mapping.
//!
//! Each test binds its provider under its own name, so tests running in parallel never see
//! each other's provider in the global singleton.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use open_feature::provider::{FeatureProvider, ProviderStatus};
use open_feature::{
    Client as OfClient, EvaluationContext, EvaluationContextFieldValue, EvaluationErrorCode,
    EvaluationReason, FlagMetadataValue, OpenFeature, StructValue, Value as OfValue,
};
use tailor::openfeature::{user_from_context, TailorProvider};
use tailor::{AttributeValue, Client, ConfigDocument};

const CONFIG: &str = r#"
environment: test
revision: 7
segments:
  - key: yogis
    conditions: {attribute: interests, op: contains_any, values: [yoga]}
experiments:
  - {key: checkout-test, status: running}
  - {key: homepage-personalization, status: running}
flags:
  - key: dark-mode
    type: bool
    variants: [{key: "off", value: false}, {key: "on", value: true}]
    default_variant: "off"
    overrides: [{variant: "on", keys: [vip]}]
    rules:
      - when: {attribute: country, op: eq, values: [US]}
        variant: "on"
  - key: killed
    type: bool
    enabled: false
    variants: [{key: "off", value: false}, {key: "on", value: true}]
    default_variant: "off"
  - key: banner
    type: string
    variants: [{key: plain, value: "Hello"}]
    default_variant: plain
  - key: max-items
    type: number
    variants: [{key: few, value: 10}, {key: many, value: 50.0}, {key: fraction, value: 2.5}]
    default_variant: few
    rules:
      - when: {attribute: plan, op: eq, values: [pro]}
        variant: many
      - when: {attribute: plan, op: eq, values: [trial]}
        variant: fraction
  - key: theme
    type: json
    variants:
      - {key: classic, value: {color: blue, size: 3, ratio: 0.5, tags: [a, b], missing: null, nested: {bold: true}}}
      - {key: list, value: [1, 2]}
    default_variant: classic
    rules:
      - when: {attribute: legacy, op: eq, values: [true]}
        variant: list
  - key: checkout
    type: string
    variants: [{key: control, value: "one-page"}, {key: treatment, value: "two-step"}]
    default_variant: control
    rules:
      - split: [{variant: control, weight: 5000}, {variant: treatment, weight: 5000}]
        experiment: checkout-test
  - key: homepage
    type: string
    variants: [{key: generic, value: "Welcome"}, {key: yoga-hero, value: "New mats"}]
    default_variant: generic
    rules:
      - when: {segment: yogis}
        variant: yoga-hero
        holdout: {basis_points: 10000}
        experiment: homepage-personalization
  - key: launch
    type: bool
    variants: [{key: "off", value: false}, {key: "on", value: true}]
    default_variant: "off"
    rules:
      - when: {attribute: signed_up, op: after, values: ["2026-01-01T00:00:00Z"]}
        variant: "on"
      - when: {attribute: age, op: gte, values: [18]}
        variant: "on"
      - when: {attribute: score, op: gt, values: [0.5]}
        variant: "on"
      - when: {attribute: beta, op: eq, values: [true]}
        variant: "on"
"#;

fn offline() -> Client {
    Client::offline(ConfigDocument::from_yaml(CONFIG).unwrap()).unwrap()
}

/// An OpenFeature client bound (by `name`) to a Tailor provider over `client`.
async fn openfeature(name: &str, client: Client) -> OfClient {
    let mut api = OpenFeature::singleton_mut().await;
    api.set_named_provider(name, TailorProvider::new(client))
        .await;
    api.create_named_client(name)
}

fn user(key: &str) -> EvaluationContext {
    EvaluationContext::default().with_targeting_key(key)
}

fn meta_str(m: &open_feature::FlagMetadata, key: &str) -> Option<String> {
    match m.values.get(key) {
        Some(FlagMetadataValue::String(s)) => Some(s.clone()),
        None => None,
        other => panic!("{key}: {other:?}"),
    }
}

#[tokio::test]
async fn metadata_names_the_provider() {
    let provider = TailorProvider::new(offline());
    assert_eq!(provider.metadata().name, "Tailor");
    assert_eq!(provider.status(), ProviderStatus::Ready);

    let mut api = OpenFeature::singleton_mut().await;
    api.set_named_provider("metadata", provider).await;
    assert_eq!(
        api.named_provider_metadata("metadata").await.unwrap().name,
        "Tailor"
    );
}

#[tokio::test]
async fn bool_values_and_reasons() {
    let flags = openfeature("bool", offline()).await;

    let us = user("u1").with_custom_field("country", "US");
    let d = flags
        .get_bool_details("dark-mode", Some(&us), None)
        .await
        .unwrap();
    assert!(d.value);
    assert_eq!(d.reason, Some(EvaluationReason::TargetingMatch));
    assert_eq!(d.variant.as_deref(), Some("on"));
    assert_eq!(
        meta_str(&d.flag_metadata, "tailorReason").as_deref(),
        Some("rule")
    );
    assert_eq!(
        d.flag_metadata.values["revision"],
        FlagMetadataValue::Int(7)
    );

    let d = flags
        .get_bool_details("dark-mode", Some(&user("vip")), None)
        .await
        .unwrap();
    assert!(d.value);
    assert_eq!(d.reason, Some(EvaluationReason::TargetingMatch));
    assert_eq!(
        meta_str(&d.flag_metadata, "tailorReason").as_deref(),
        Some("override")
    );

    let fr = user("u2").with_custom_field("country", "FR");
    let d = flags
        .get_bool_details("dark-mode", Some(&fr), None)
        .await
        .unwrap();
    assert!(!d.value);
    assert_eq!(d.reason, Some(EvaluationReason::Default));
    assert_eq!(d.variant.as_deref(), Some("off"));
    assert_eq!(
        meta_str(&d.flag_metadata, "tailorReason").as_deref(),
        Some("fallthrough")
    );

    let d = flags
        .get_bool_details("killed", Some(&us), None)
        .await
        .unwrap();
    assert!(!d.value);
    assert_eq!(d.reason, Some(EvaluationReason::Disabled));

    assert!(flags
        .get_bool_value("dark-mode", Some(&us), None)
        .await
        .unwrap());
}

#[tokio::test]
async fn string_values_splits_and_experiment_metadata() {
    let flags = openfeature("string", offline()).await;

    let d = flags
        .get_string_details("banner", Some(&user("u1")), None)
        .await
        .unwrap();
    assert_eq!(d.value, "Hello");
    // No rules and no overrides: everyone gets this value.
    assert_eq!(d.reason, Some(EvaluationReason::Static));
    assert_eq!(d.variant.as_deref(), Some("plain"));
    assert_eq!(meta_str(&d.flag_metadata, "experiment"), None);

    let mut seen = std::collections::BTreeSet::new();
    for i in 0..64 {
        let d = flags
            .get_string_details("checkout", Some(&user(&format!("user-{i}"))), None)
            .await
            .unwrap();
        assert_eq!(d.reason, Some(EvaluationReason::Split));
        assert_eq!(
            meta_str(&d.flag_metadata, "tailorReason").as_deref(),
            Some("split")
        );
        assert_eq!(
            meta_str(&d.flag_metadata, "experiment").as_deref(),
            Some("checkout-test")
        );
        let variant = d.variant.unwrap();
        let expected = if variant == "control" {
            "one-page"
        } else {
            "two-step"
        };
        assert_eq!(d.value, expected);
        seen.insert(variant);
    }
    assert_eq!(seen.len(), 2, "both arms are served: {seen:?}");

    // The whole segment is held out: the generic default, reported as a split, with the segment.
    let yogi = user("u3").with_custom_field(
        "interests",
        EvaluationContextFieldValue::new_struct(vec!["yoga".to_string(), "running".to_string()]),
    );
    let d = flags
        .get_string_details("homepage", Some(&yogi), None)
        .await
        .unwrap();
    assert_eq!(d.value, "Welcome");
    assert_eq!(d.variant.as_deref(), Some("generic"));
    assert_eq!(d.reason, Some(EvaluationReason::Split));
    assert_eq!(
        meta_str(&d.flag_metadata, "tailorReason").as_deref(),
        Some("holdout")
    );
    assert_eq!(
        meta_str(&d.flag_metadata, "segment").as_deref(),
        Some("yogis")
    );
    assert_eq!(
        meta_str(&d.flag_metadata, "experiment").as_deref(),
        Some("homepage-personalization")
    );
}

#[tokio::test]
async fn int_and_float_values() {
    let flags = openfeature("numbers", offline()).await;
    let free = user("u1");
    let pro = user("u1").with_custom_field("plan", "pro");
    let trial = user("u1").with_custom_field("plan", "trial");

    assert_eq!(
        flags
            .get_int_value("max-items", Some(&free), None)
            .await
            .unwrap(),
        10
    );
    // 50.0 is an integral number: an int flag may be written either way.
    let d = flags
        .get_int_details("max-items", Some(&pro), None)
        .await
        .unwrap();
    assert_eq!(d.value, 50);
    assert_eq!(d.variant.as_deref(), Some("many"));
    assert_eq!(d.reason, Some(EvaluationReason::TargetingMatch));

    let e = flags
        .get_int_value("max-items", Some(&trial), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::TypeMismatch);
    assert!(e.message.unwrap().contains("not an integer"));

    assert_eq!(
        flags
            .get_float_value("max-items", Some(&free), None)
            .await
            .unwrap(),
        10.0
    );
    assert_eq!(
        flags
            .get_float_value("max-items", Some(&trial), None)
            .await
            .unwrap(),
        2.5
    );
}

#[tokio::test]
async fn struct_values() {
    let flags = openfeature("struct", offline()).await;
    let d = flags
        .get_struct_details::<StructValue>("theme", Some(&user("u1")), None)
        .await
        .unwrap();
    assert_eq!(d.variant.as_deref(), Some("classic"));
    let s = d.value;
    assert_eq!(s.fields["color"], OfValue::String("blue".into()));
    assert_eq!(s.fields["size"], OfValue::Int(3));
    assert_eq!(s.fields["ratio"], OfValue::Float(0.5));
    assert_eq!(
        s.fields["tags"],
        OfValue::Array(vec![
            OfValue::String("a".into()),
            OfValue::String("b".into())
        ])
    );
    assert_eq!(
        s.fields["nested"].as_struct().unwrap().fields["bold"],
        OfValue::Bool(true)
    );
    assert!(
        !s.fields.contains_key("missing"),
        "null members are left out"
    );

    // An array is not a struct.
    let legacy = user("u1").with_custom_field("legacy", true);
    let e = flags
        .get_struct_value::<StructValue>("theme", Some(&legacy), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::TypeMismatch);
}

#[tokio::test]
async fn type_mismatches_are_errors() {
    let flags = openfeature("mismatch", offline()).await;
    let ctx = user("u1");
    let e = flags
        .get_string_value("dark-mode", Some(&ctx), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::TypeMismatch);
    assert!(e
        .message
        .unwrap()
        .contains("served a boolean, not a string"));
    let e = flags
        .get_bool_value("banner", Some(&ctx), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::TypeMismatch);
    let e = flags
        .get_int_value("banner", Some(&ctx), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::TypeMismatch);
    let e = flags
        .get_float_value("theme", Some(&ctx), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::TypeMismatch);
    let e = flags
        .get_struct_value::<StructValue>("max-items", Some(&ctx), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::TypeMismatch);
}

#[tokio::test]
async fn unknown_flags_and_missing_keys_are_errors() {
    let flags = openfeature("errors", offline()).await;

    let e = flags
        .get_bool_value("nope", Some(&user("u1")), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::FlagNotFound);
    assert!(e.message.unwrap().contains("nope"));

    let no_key = EvaluationContext::default().with_custom_field("country", "US");
    let e = flags
        .get_bool_value("dark-mode", Some(&no_key), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::TargetingKeyMissing);
    let e = flags
        .get_bool_value("dark-mode", None, None)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::TargetingKeyMissing);
    let e = flags
        .get_bool_value("dark-mode", Some(&user("")), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::TargetingKeyMissing);
}

#[tokio::test]
async fn exposures_are_recorded_only_for_served_values() {
    // A client with an event queue (its server is a closed port; config from a bootstrap file).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bootstrap.yaml");
    std::fs::write(&path, CONFIG).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = Client::builder(format!("http://127.0.0.1:{port}"), "tlr_sdk_test")
        .start_timeout(std::time::Duration::from_millis(50))
        .flush_timeout(std::time::Duration::from_millis(100))
        .bootstrap_file(path)
        .build()
        .await
        .unwrap();
    let flags = openfeature("exposures", client.clone()).await;

    let d = flags
        .get_string_details("checkout", Some(&user("u1")), None)
        .await
        .unwrap();
    assert_eq!(d.reason, Some(EvaluationReason::Split));
    assert_eq!(
        client.event_stats().queued,
        1,
        "the served split is an exposure"
    );

    // The wrong type: the caller serves its own default, so the user saw no variant.
    let e = flags
        .get_bool_value("checkout", Some(&user("u2")), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::TypeMismatch);
    assert_eq!(
        client.event_stats().queued,
        1,
        "no exposure for a type mismatch"
    );
    drop(flags);
    let _ = client.close().await;
}

#[tokio::test]
async fn a_client_without_config_is_not_ready() {
    // A connected client whose server is unreachable and that has no bootstrap: no config.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = Client::builder(format!("http://127.0.0.1:{port}"), "tlr_sdk_test")
        .start_timeout(std::time::Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    let provider = TailorProvider::new(client.clone());
    assert_eq!(provider.status(), ProviderStatus::NotReady);
    let flags = openfeature("not-ready", client.clone()).await;
    let e = flags
        .get_bool_value("dark-mode", Some(&user("u1")), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::ProviderNotReady);
    let _ = client.close().await;
}

#[tokio::test]
async fn every_context_field_type_reaches_targeting() {
    let flags = openfeature("context", offline()).await;
    let on = |ctx: EvaluationContext| {
        let flags = &flags;
        async move {
            flags
                .get_bool_value("launch", Some(&ctx), None)
                .await
                .unwrap()
        }
    };
    assert!(!on(user("u1")).await);
    let signed_up = time::macros::datetime!(2026-03-01 12:00 UTC);
    assert!(on(user("u1").with_custom_field("signed_up", signed_up)).await);
    let before = time::macros::datetime!(2025-03-01 12:00 UTC);
    assert!(!on(user("u1").with_custom_field("signed_up", before)).await);
    assert!(on(user("u1").with_custom_field("age", 30)).await);
    assert!(!on(user("u1").with_custom_field("age", 12)).await);
    assert!(on(user("u1").with_custom_field("score", 0.75)).await);
    assert!(on(user("u1").with_custom_field("beta", true)).await);
    assert!(
        !on(user("u1").with_custom_field("beta", "true")).await,
        "a string is not a bool"
    );
}

#[test]
fn context_maps_to_a_user() {
    let t = time::macros::datetime!(2026-01-31 12:00 UTC);
    let ctx = user("user-42")
        .with_custom_field("country", "US")
        .with_custom_field("vip", true)
        .with_custom_field("age", 31)
        .with_custom_field("score", 0.5)
        .with_custom_field("signed_up", t)
        .with_custom_field(
            "tags",
            EvaluationContextFieldValue::new_struct(vec!["a", "b"]),
        )
        .with_custom_field(
            "plan",
            EvaluationContextFieldValue::new_struct(AttributeValue::String("pro".into())),
        );
    let u = user_from_context(&ctx).unwrap();
    let attr = |name: &str| u.get(name).map(AttributeValue::from);
    assert_eq!(u.key(), "user-42");
    assert_eq!(attr("country"), Some(AttributeValue::String("US".into())));
    assert_eq!(attr("vip"), Some(AttributeValue::Bool(true)));
    assert_eq!(attr("age"), Some(AttributeValue::Number(31.0)));
    assert_eq!(attr("score"), Some(AttributeValue::Number(0.5)));
    assert_eq!(
        attr("signed_up"),
        Some(AttributeValue::Datetime(1_769_860_800_000))
    );
    assert_eq!(
        attr("tags"),
        Some(AttributeValue::List(vec!["a".into(), "b".into()]))
    );
    assert_eq!(attr("plan"), Some(AttributeValue::String("pro".into())));
}

#[test]
fn unusable_context_fields_are_rejected_with_the_reason() {
    #[derive(Debug)]
    struct Opaque;
    let cases: Vec<(EvaluationContextFieldValue, &str)> = vec![
        (
            EvaluationContextFieldValue::Struct(Arc::new(Opaque)),
            "struct Tailor cannot read",
        ),
        (EvaluationContextFieldValue::Int(1 << 60), "beyond ±2^53"),
        (
            EvaluationContextFieldValue::Float(f64::NAN),
            "not a finite number",
        ),
        (
            EvaluationContextFieldValue::Float(f64::INFINITY),
            "not a finite number",
        ),
    ];
    for (value, why) in cases {
        let ctx = user("u1").with_custom_field("field", value);
        let e = user_from_context(&ctx).unwrap_err();
        assert_eq!(e.code, EvaluationErrorCode::InvalidContext);
        let message = e.message.unwrap();
        assert!(
            message.contains("`field`") && message.contains(why),
            "{message}"
        );
    }
    let e = user_from_context(&user("u1").with_custom_field("key", "other")).unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::InvalidContext);
    assert!(e.message.unwrap().contains("targeting key"));
}

#[tokio::test]
async fn invalid_context_reaches_the_caller() {
    let flags = openfeature("invalid-context", offline()).await;
    let ctx = user("u1").with_custom_field("age", EvaluationContextFieldValue::Int(i64::MAX));
    let e = flags
        .get_bool_value("launch", Some(&ctx), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::InvalidContext);
}
