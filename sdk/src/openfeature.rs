//! An [OpenFeature](https://openfeature.dev) provider: use Tailor through the vendor-neutral
//! `open-feature` API. Behind the `openfeature` cargo feature (on by default).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use open_feature::{EvaluationContext, OpenFeature};
//! use tailor::openfeature::TailorProvider;
//!
//! let client = tailor::Client::builder("http://localhost:8080", "tlr_sdk_...").build().await?;
//! let mut api = OpenFeature::singleton_mut().await;
//! api.set_provider(TailorProvider::new(client)).await;
//! let flags = api.create_client();
//! let context = EvaluationContext::default()
//!     .with_targeting_key("user-42")
//!     .with_custom_field("country", "US");
//! // An error (unknown flag, wrong type, …) means: serve your own default.
//! let headline = flags
//!     .get_string_value("homepage", Some(&context), None)
//!     .await
//!     .unwrap_or_else(|_| "Welcome".to_string());
//! # let _ = headline;
//! # Ok(()) }
//! ```
//!
//! Evaluation is the same local, synchronous evaluation as [`Client::variant_detail`], and
//! exposures are recorded as there, except that a value of the wrong type (the caller then
//! serves its own default) records none. The OpenFeature API merely wraps it in a future.
//!
//! # Mapping
//! - **Context → [`User`]**: the targeting key is the user key (required:
//!   `TARGETING_KEY_MISSING` without it). Custom fields become attributes: strings, booleans,
//!   integers (exact within ±2^53), finite floats and datetimes (as Unix milliseconds). A struct
//!   field is accepted only when it holds a `Vec<String>`, a `Vec<&'static str>` or a Tailor
//!   [`AttributeValue`] (OpenFeature has no list type; Tailor's `contains_any` needs one); any
//!   other struct, a custom field named `key` (the user key is the targeting key), an integer
//!   beyond ±2^53 and a NaN or infinite float are rejected with `INVALID_CONTEXT` and a message
//!   naming the field, rather than silently skipped, so targeting never quietly sees less than
//!   the caller passed.
//! - **Reasons** come from `tailor_core::OpenFeatureReason`, the mapping the server's OFREP
//!   endpoint uses too: flag off → `DISABLED`; individual override or fixed-variant rule →
//!   `TARGETING_MATCH`; split or holdout → `SPLIT`; fallthrough → `STATIC` when the flag has no
//!   rules or overrides, otherwise (and for a rule matched without a bucketing attribute)
//!   `DEFAULT`; unknown flag → error `FLAG_NOT_FOUND`; no config yet → error
//!   `PROVIDER_NOT_READY`.
//! - **Values**: a value of the wrong type is error `TYPE_MISMATCH` (so OpenFeature serves the
//!   caller's default). `int` accepts any integral JSON number within `i64` (`3` and `3.0`),
//!   `float` any number, `struct` a JSON object (`null` members are left out: OpenFeature has no
//!   null; a `null` inside an array is a `TYPE_MISMATCH`).
//! - **Variant and metadata**: the resolution's `variant` is the Tailor variant key; flag
//!   metadata carries `revision`, `tailorReason` (Tailor's own reason, e.g. `holdout`) and, when
//!   present, `experiment` and `segment` — the same keys as the server's OFREP endpoint.

use std::collections::HashMap;

use open_feature::provider::{
    FeatureProvider, ProviderMetadata, ProviderStatus, ResolutionDetails,
};
use open_feature::{
    async_trait, EvaluationContext, EvaluationContextFieldValue, EvaluationError,
    EvaluationErrorCode, EvaluationReason, EvaluationResult, FlagMetadata, StructValue,
    Value as OfValue,
};
use serde_json::Value;
use tailor_core::{AttributeValue, OpenFeatureReason, Reason, User};

use crate::client::{Client, VariantDetail};

/// Largest integer an attribute (an `f64`) holds exactly.
const MAX_EXACT_INT: i64 = 1 << 53;

/// An OpenFeature provider backed by a Tailor [`Client`] (connected or offline).
///
/// Register it with `OpenFeature::singleton_mut().await.set_provider(TailorProvider::new(client))`.
/// The provider shares the client: keep a clone to `track` conversions and to `close()` it.
#[derive(Clone)]
pub struct TailorProvider {
    client: Client,
    metadata: ProviderMetadata,
}

impl TailorProvider {
    /// A provider evaluating with `client`.
    pub fn new(client: Client) -> Self {
        TailorProvider {
            client,
            metadata: ProviderMetadata::new("Tailor"),
        }
    }

    /// The client it evaluates with.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Evaluates `flag` and converts its value with `convert` (`None`: wrong type).
    fn resolve<T>(
        &self,
        flag: &str,
        context: &EvaluationContext,
        expected: &str,
        convert: impl FnOnce(&Value) -> Option<T>,
    ) -> EvaluationResult<ResolutionDetails<T>> {
        let user = user_from_context(context)?;
        // Convert while evaluating, so a value of the wrong type (the caller then serves its
        // own default) records no exposure.
        let mut converted = None;
        let detail = self.client.variant_detail_if(&user, flag, |v| {
            converted = convert(v);
            converted.is_some()
        });
        let revision = match (detail.reason, detail.revision) {
            (_, None) => {
                return Err(error(
                    EvaluationErrorCode::ProviderNotReady,
                    "the Tailor client has no config yet",
                ))
            }
            (Reason::UnknownFlag, Some(_)) => {
                return Err(error(
                    EvaluationErrorCode::FlagNotFound,
                    format!("flag `{flag}` was not found"),
                ))
            }
            (_, Some(revision)) => revision,
        };
        let Some(value) = converted else {
            return Err(error(
                EvaluationErrorCode::TypeMismatch,
                format!(
                    "flag `{flag}` served {}, not {expected}",
                    describe(&detail.value)
                ),
            ));
        };
        Ok(ResolutionDetails {
            value,
            reason: Some(reason(detail.openfeature_reason)),
            flag_metadata: Some(metadata(&detail, revision)),
            variant: detail.key,
        })
    }
}

impl std::fmt::Debug for TailorProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TailorProvider")
            .field("status", &self.client.status())
            .finish()
    }
}

#[async_trait]
impl FeatureProvider for TailorProvider {
    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    /// `Ready` once the client serves a config (from the server, a cache or a bootstrap file).
    fn status(&self) -> ProviderStatus {
        if self.client.status().revision.is_some() {
            ProviderStatus::Ready
        } else {
            ProviderStatus::NotReady
        }
    }

    async fn resolve_bool_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        self.resolve(flag_key, evaluation_context, "a boolean", Value::as_bool)
    }

    async fn resolve_int_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        self.resolve(flag_key, evaluation_context, "an integer", as_integer)
    }

    async fn resolve_float_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        self.resolve(flag_key, evaluation_context, "a number", Value::as_f64)
    }

    async fn resolve_string_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        self.resolve(flag_key, evaluation_context, "a string", |v| {
            v.as_str().map(str::to_string)
        })
    }

    async fn resolve_struct_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        self.resolve(flag_key, evaluation_context, "an object", |v| match v {
            Value::Object(_) => match to_openfeature(v)? {
                OfValue::Struct(s) => Some(s),
                _ => None,
            },
            _ => None,
        })
    }
}

fn error(code: EvaluationErrorCode, message: impl Into<String>) -> EvaluationError {
    EvaluationError {
        code,
        message: Some(message.into()),
    }
}

/// OpenFeature's reason enum for Tailor's shared mapping.
fn reason(reason: OpenFeatureReason) -> EvaluationReason {
    match reason {
        OpenFeatureReason::Static => EvaluationReason::Static,
        OpenFeatureReason::Default => EvaluationReason::Default,
        OpenFeatureReason::TargetingMatch => EvaluationReason::TargetingMatch,
        OpenFeatureReason::Split => EvaluationReason::Split,
        OpenFeatureReason::Disabled => EvaluationReason::Disabled,
        OpenFeatureReason::Error => EvaluationReason::Error,
    }
}

/// Tailor's reason name, as in its serialized form (`{"kind": "holdout", ...}`).
fn reason_kind(reason: Reason) -> &'static str {
    match reason {
        Reason::UnknownFlag => "unknown_flag",
        Reason::FlagOff => "flag_off",
        Reason::Override => "override",
        Reason::Rule { .. } => "rule",
        Reason::Split { .. } => "split",
        Reason::Holdout { .. } => "holdout",
        Reason::Fallthrough => "fallthrough",
        Reason::MissingUnit { .. } => "missing_unit",
    }
}

fn metadata(detail: &VariantDetail, revision: u64) -> FlagMetadata {
    let mut m = FlagMetadata::default()
        .with_value("revision", i64::try_from(revision).unwrap_or(i64::MAX))
        .with_value("tailorReason", reason_kind(detail.reason));
    if let Some(e) = &detail.experiment {
        m.add_value("experiment", e.as_str());
    }
    if let Some(s) = &detail.segment {
        m.add_value("segment", s.as_str());
    }
    m
}

/// An integral JSON number that fits `i64` (`3`, `3.0`); not `3.5`, not `1e300`.
fn as_integer(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    let f = v.as_f64()?;
    // `i64::MAX as f64` rounds up to 2^63, which does not fit: hence the strict bound.
    (f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
}

/// A JSON value as an OpenFeature value; `None` for a `null` that cannot be represented.
fn to_openfeature(v: &Value) -> Option<OfValue> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => OfValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => OfValue::Int(i),
            None => OfValue::Float(n.as_f64()?),
        },
        Value::String(s) => OfValue::String(s.clone()),
        Value::Array(items) => {
            OfValue::Array(items.iter().map(to_openfeature).collect::<Option<_>>()?)
        }
        Value::Object(members) => {
            let mut fields = HashMap::with_capacity(members.len());
            for (name, member) in members {
                // An absent member reads like a null one; OpenFeature has no null.
                if !member.is_null() {
                    fields.insert(name.clone(), to_openfeature(member)?);
                }
            }
            OfValue::Struct(StructValue { fields })
        }
    })
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The Tailor user an OpenFeature context describes (see the module docs for the mapping).
pub fn user_from_context(context: &EvaluationContext) -> EvaluationResult<User> {
    let key = match context.targeting_key.as_deref() {
        Some(k) if !k.is_empty() => k,
        _ => {
            return Err(error(
                EvaluationErrorCode::TargetingKeyMissing,
                "Tailor needs a targeting key: it is the user key that users are bucketed by",
            ))
        }
    };
    let mut user = User::new(key);
    for (name, field) in &context.custom_fields {
        let invalid = |why: String| {
            error(
                EvaluationErrorCode::InvalidContext,
                format!("context field `{name}`: {why}"),
            )
        };
        if name == "key" {
            return Err(invalid(
                "`key` is the user key in Tailor; pass it as the targeting key".into(),
            ));
        }
        let value = match field {
            EvaluationContextFieldValue::Bool(b) => AttributeValue::Bool(*b),
            EvaluationContextFieldValue::String(s) => AttributeValue::String(s.clone()),
            EvaluationContextFieldValue::Int(i) => {
                if !(-MAX_EXACT_INT..=MAX_EXACT_INT).contains(i) {
                    return Err(invalid(format!(
                        "{i} is beyond ±2^53 and cannot be compared exactly; pass it as a string"
                    )));
                }
                AttributeValue::Number(*i as f64)
            }
            EvaluationContextFieldValue::Float(f) => {
                if !f.is_finite() {
                    return Err(invalid(format!("{f} is not a finite number")));
                }
                AttributeValue::Number(*f)
            }
            EvaluationContextFieldValue::DateTime(t) => {
                AttributeValue::Datetime((t.unix_timestamp_nanos() / 1_000_000) as i64)
            }
            EvaluationContextFieldValue::Struct(any) => {
                if let Some(list) = any.downcast_ref::<Vec<String>>() {
                    AttributeValue::List(list.clone())
                } else if let Some(list) = any.downcast_ref::<Vec<&'static str>>() {
                    AttributeValue::List(list.iter().map(|s| s.to_string()).collect())
                } else if let Some(value) = any.downcast_ref::<AttributeValue>() {
                    value.clone()
                } else {
                    return Err(invalid(
                        "a struct Tailor cannot read; attributes are strings, numbers, booleans, \
                         datetimes and lists of strings (pass a list as a struct holding a \
                         Vec<String>)"
                            .into(),
                    ));
                }
            }
        };
        user.set(name.clone(), value);
    }
    Ok(user)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is the test failure
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_accept_integral_numbers_only() {
        assert_eq!(as_integer(&json!(3)), Some(3));
        assert_eq!(as_integer(&json!(3.0)), Some(3));
        assert_eq!(as_integer(&json!(-7)), Some(-7));
        assert_eq!(as_integer(&json!(3.5)), None);
        assert_eq!(as_integer(&json!(1e300)), None);
        assert_eq!(as_integer(&json!(u64::MAX)), None);
        assert_eq!(as_integer(&json!("3")), None);
    }

    #[test]
    fn json_converts_to_openfeature_values() {
        let v = to_openfeature(
            &json!({"a": 1, "b": 2.5, "c": [true, "x"], "d": null, "e": {"f": u64::MAX}}),
        )
        .unwrap();
        let s = v.as_struct().unwrap();
        assert_eq!(s.fields["a"], OfValue::Int(1));
        assert_eq!(s.fields["b"], OfValue::Float(2.5));
        assert_eq!(
            s.fields["c"],
            OfValue::Array(vec![OfValue::Bool(true), OfValue::String("x".into())])
        );
        assert!(!s.fields.contains_key("d"));
        assert_eq!(
            s.fields["e"].as_struct().unwrap().fields["f"],
            OfValue::Float(u64::MAX as f64)
        );
        assert_eq!(to_openfeature(&json!([1, null])), None);
    }
}
