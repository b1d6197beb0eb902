//! OFREP (OpenFeature Remote Evaluation Protocol): single and bulk evaluation per the OFREP
//! OpenAPI document, version 0.3.0 (`service/openapi.yaml` of
//! <https://github.com/open-feature/protocol>), so any OpenFeature client can evaluate remotely.
//! The clients Tailor is tested with are listed in `tests/ofrep-clients/`.
//!
//! Reasons come from [`OpenFeatureReason`], the mapping the SDK's OpenFeature provider uses too:
//! flag off → `DISABLED`; override or fixed-variant rule → `TARGETING_MATCH`; split or holdout →
//! `SPLIT`; no rule matched → `STATIC` when the flag has no rules or overrides, `DEFAULT`
//! otherwise (OpenFeature's reason; the OFREP schema's enum omits it). Tailor's own reason is in
//! `metadata.tailorReason`.
//!
//! # The context
//!
//! The body is `{"context": {...}}`; a missing or `null` context is an empty one. The context
//! becomes a [`User`] ([`Context::read`]):
//!
//! - `targetingKey` is the user key. Absent, `null` or `""` means *no key* (a web page before
//!   sign-in); any other non-string is `INVALID_CONTEXT`.
//! - Strings, numbers and booleans are attributes; so are lists whose items are all strings.
//! - Nested objects are flattened into dotted names: `{"address": {"city": "Oslo"}}` is the
//!   attribute `address.city`, at any depth. When two spellings give the same name
//!   (`"address.city"` at the top and `address: {city}`), the shallower one wins.
//! - Everything else is ignored, never an error: `null`, lists holding anything but strings
//!   (numbers, objects, `null`), and empty objects.
//!
//! # Evaluating without a targeting key
//!
//! A context without a key is evaluated as a user with an empty key, which matches no override
//! and no segment `include`/`exclude` list. A flag whose result could depend on the key reports
//! `TARGETING_KEY_MISSING` on its own (`400` from the single endpoint, an error item in the bulk
//! `flags`); every other flag evaluates normally. A flag depends on the key when its evaluation
//! reaches (at or before the rule that decides) a rule that buckets by `key` (a split, a rollout
//! under 100 %, a holdout, or an experiment in a layer bucketing by `key`) or whose audience
//! tests the `key` attribute (directly or through a segment): see [`reads_key`]. A flag that
//! is off, has no rules, or only has rules on other attributes needs no key.
//!
//! # Values
//!
//! Number flags are written as JSON floats (`10.0`, not `10`): Tailor's numbers are 64-bit
//! floats, and OpenFeature clients that type-check (the Python provider's `get_float_*`) refuse
//! an integer literal for a float. JavaScript clients read `10.0` as the number `10`.
//!
//! # Errors
//!
//! Evaluation errors use OFREP's `{key?, errorCode, errorDetails}`. The other errors (no or
//! unknown key: `401`; an admin key: `403`; store not loaded: `503`) keep the API's
//! `{error, message}` body and add `errorCode: GENERAL` and `errorDetails`, so both OFREP
//! clients and Tailor's tools can read them.

use std::collections::BTreeMap;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};
use tailor_core::context::context_attributes;
use tailor_core::model::{
    Condition, ConfigDocument, Flag, Rule, Segment, ValueType, FULL_COVERAGE,
};
use tailor_core::{
    assign_with_profile, AttributeRef, OpenFeatureReason, Profile, Reason, Snapshot, User,
};

use super::authenticate;
use crate::error::{ApiError, InternalError};
use crate::profiles;
use crate::state::AppState;
use crate::store::KeyKind;

/// The attribute name that means the user key in conditions and `bucket_by`.
const KEY: &str = "key";

/// How deep segment references are followed when checking whether a flag reads the key;
/// deeper is taken as reading it (the config compiler rejects cycles; this only bounds work).
const MAX_SEGMENT_DEPTH: usize = 64;

/// Mounts the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/ofrep/v1")
            .wrap(super::sdk_cors())
            .route("/evaluate/flags/{key}", web::post().to(evaluate_one))
            .route("/evaluate/flags", web::post().to(evaluate_all)),
    );
}

/// An OFREP evaluation failure: an error code and its details.
#[derive(Debug)]
struct Rejection {
    code: &'static str,
    details: String,
}

impl Rejection {
    fn new(code: &'static str, details: impl Into<String>) -> Self {
        Rejection {
            code,
            details: details.into(),
        }
    }

    fn key_missing(flag: &str) -> Self {
        Rejection::new(
            "TARGETING_KEY_MISSING",
            format!(
                "flag `{flag}` depends on the user key (a split, rollout, holdout or key \
                 condition) and the context has no `targetingKey`"
            ),
        )
    }

    /// The OFREP body, with the flag key when there is one.
    fn body(&self, key: Option<&str>) -> Failure<'_> {
        Failure {
            key: key.map(str::to_string),
            error_code: self.code,
            error_details: &self.details,
        }
    }

    fn response(&self, status: StatusCode, key: Option<&str>) -> HttpResponse {
        HttpResponse::build(status).json(self.body(key))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Failure<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    error_code: &'static str,
    error_details: &'a str,
}

/// An evaluation context read from a request body.
struct Context {
    /// The user to evaluate (an empty key when the context has none).
    user: User,
    /// Whether the context named a user (`targetingKey`).
    has_key: bool,
    /// The user's computed traits and list memberships, when a flag reads them.
    profile: Option<Profile>,
}

impl Context {
    /// Reads `{"context": {...}}` (see the module docs for the rules).
    fn read(body: &[u8]) -> Result<Context, Rejection> {
        let context = context_object(body)?;
        let key = targeting_key(&context)?;
        let mut user = User::new(key.clone().unwrap_or_default());
        for (name, value) in context_attributes(&context) {
            user.set(name, value);
        }
        Ok(Context {
            user,
            has_key: key.is_some(),
            profile: None,
        })
    }

    /// Loads the user's profile when the config reads profiles (a trait or list segment): OFREP
    /// evaluates with the server's own trait values.
    async fn load_profile(
        &mut self,
        state: &AppState,
        environment: &str,
        snapshot: &Snapshot,
    ) -> Result<(), ApiError> {
        if self.has_key && snapshot.reads_profiles() {
            self.profile =
                Some(profiles::profile(state, environment, snapshot, self.user.key()).await?);
        }
        Ok(())
    }
}

/// The body's `context` object; a missing or `null` one is empty.
fn context_object(body: &[u8]) -> Result<Map<String, Value>, Rejection> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Rejection::new(
            "PARSE_ERROR",
            format!("request body is not valid JSON: {e}"),
        )
    })?;
    let Value::Object(mut request) = value else {
        return Err(Rejection::new(
            "INVALID_CONTEXT",
            "request body must be an object `{\"context\": {...}}`",
        ));
    };
    match request.remove("context") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(context)) => Ok(context),
        Some(other) => Err(Rejection::new(
            "INVALID_CONTEXT",
            format!("`context` must be an object, got {other}"),
        )),
    }
}

/// The user key: `None` when absent, `null` or empty.
fn targeting_key(context: &Map<String, Value>) -> Result<Option<String>, Rejection> {
    match context.get("targetingKey") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(k)) if k.is_empty() => Ok(None),
        Some(Value::String(k)) => Ok(Some(k.clone())),
        Some(other) => Err(Rejection::new(
            "INVALID_CONTEXT",
            format!("`targetingKey` must be a string, got {other}"),
        )),
    }
}

/// Whether `flag`'s evaluation, which ended in `assignment` for a user with the empty
/// placeholder key, could have come out differently with a real key: an override chose it, or
/// a rule it reached buckets by the key or tests it.
fn reads_key(doc: &ConfigDocument, flag: &Flag, reason: Reason, rule: Option<usize>) -> bool {
    let reached = match reason {
        Reason::FlagOff => return false,
        Reason::Override => return true,
        Reason::UnknownFlag | Reason::Fallthrough => flag.rules.len(),
        _ => rule.map_or(flag.rules.len(), |i| i + 1),
    };
    flag.rules
        .iter()
        .take(reached)
        .any(|r| rule_reads_key(doc, flag, r))
}

fn rule_reads_key(doc: &ConfigDocument, flag: &Flag, rule: &Rule) -> bool {
    buckets_by_key(flag, rule)
        || layer_buckets_by_key(doc, rule)
        || rule
            .when
            .as_ref()
            .is_some_and(|c| condition_reads_key(doc, c, 0))
}

/// The rule buckets (split, partial rollout, holdout) and its unit is the key.
fn buckets_by_key(flag: &Flag, rule: &Rule) -> bool {
    let unit = rule
        .bucket_by
        .as_deref()
        .or(flag.bucket_by.as_deref())
        .unwrap_or(KEY);
    let buckets = rule.split.is_some()
        || rule.optimize.is_some()
        || rule.coverage < FULL_COVERAGE
        || rule.holdout.is_some();
    buckets && unit == KEY
}

/// The rule's experiment owns a slice of a layer that buckets by the key.
fn layer_buckets_by_key(doc: &ConfigDocument, rule: &Rule) -> bool {
    let Some(experiment) = &rule.experiment else {
        return false;
    };
    doc.layers.iter().any(|layer| {
        layer.bucket_by.as_deref().unwrap_or(KEY) == KEY
            && layer.slices.iter().any(|s| &s.experiment == experiment)
    })
}

fn condition_reads_key(doc: &ConfigDocument, condition: &Condition, depth: usize) -> bool {
    if depth > MAX_SEGMENT_DEPTH {
        return true;
    }
    match condition {
        Condition::All { all: children } | Condition::Any { any: children } => {
            children.iter().any(|c| condition_reads_key(doc, c, depth))
        }
        Condition::Not { not } => condition_reads_key(doc, not, depth),
        Condition::Attribute(test) => test.attribute == KEY,
        // A trait is read from the profile of the user with this key.
        Condition::Trait(_) => true,
        Condition::Segment { segment } => doc
            .segments
            .iter()
            .find(|s| &s.key == segment)
            .is_some_and(|s| segment_reads_key(doc, s, depth + 1)),
    }
}

/// A segment reads the key through its conditions, or through an `include`/`exclude` list
/// that holds the empty placeholder key itself.
fn segment_reads_key(doc: &ConfigDocument, segment: &Segment, depth: usize) -> bool {
    segment.list
        || segment
            .include
            .iter()
            .chain(&segment.exclude)
            .any(String::is_empty)
        || segment
            .conditions
            .as_ref()
            .is_some_and(|c| condition_reads_key(doc, c, depth))
}

fn reason_kind(reason: Reason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.get("kind").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default()
}

/// A variant's value as OFREP sends it: number flags as floats (see the module docs).
fn wire_value(flag: &Flag, value: &Value) -> Value {
    match (flag.value_type, value) {
        (ValueType::Number, Value::Number(n)) => n
            .as_f64()
            .and_then(Number::from_f64)
            .map_or_else(|| value.clone(), Value::Number),
        _ => value.clone(),
    }
}

/// The evaluation object for `flag`, or why it cannot be evaluated for this context.
fn evaluation(snapshot: &Snapshot, flag: &Flag, context: &Context) -> Result<Value, Rejection> {
    let key = flag.key.as_str();
    let a = assign_with_profile(snapshot, &context.user, context.profile.as_ref(), key);
    if !context.has_key && reads_key(snapshot.document(), flag, a.reason, a.rule_index()) {
        return Err(Rejection::key_missing(key));
    }
    let mut metadata = Map::new();
    metadata.insert("tailorReason".into(), reason_kind(a.reason).into());
    metadata.insert("revision".into(), snapshot.revision().into());
    if let Some(e) = a.experiment {
        metadata.insert("experiment".into(), e.into());
    }
    if let Some(s) = a.segment {
        metadata.insert("segment".into(), s.into());
    }
    if let Some(d) = &flag.description {
        metadata.insert("description".into(), d.clone().into());
    }
    let mut out = Map::new();
    out.insert("key".into(), key.into());
    out.insert("value".into(), wire_value(flag, a.value()));
    out.insert(
        "reason".into(),
        OpenFeatureReason::of(snapshot, &a).as_str().into(),
    );
    if let Some(v) = a.variant_key() {
        out.insert("variant".into(), v.into());
    }
    out.insert("metadata".into(), Value::Object(metadata));
    Ok(Value::Object(out))
}

/// One item of a bulk answer: the evaluation, or the flag's own error.
fn bulk_item(snapshot: &Snapshot, flag: &Flag, context: &Context) -> Value {
    evaluation(snapshot, flag, context).unwrap_or_else(|rejection| {
        serde_json::to_value(rejection.body(Some(&flag.key)))
            .unwrap_or_else(|_| serde_json::json!({"key": flag.key, "errorCode": rejection.code}))
    })
}

/// The environment an OFREP caller evaluates: SDK and client keys only.
fn caller_environment(req: &HttpRequest, state: &AppState) -> Result<String, ApiError> {
    let key = authenticate(req, state)?;
    match (key.kind, key.environment) {
        (KeyKind::Sdk | KeyKind::Client, Some(env)) => Ok(env),
        _ => Err(ApiError::Forbidden(
            "OFREP evaluates one environment: use an SDK or client key".into(),
        )),
    }
}

/// An API error (no or unknown key, wrong kind of key, store not ready, a server failure) with
/// OFREP's `errorCode` (`GENERAL`) and `errorDetails` added to the API's `{error, message}` body;
/// status and headers (`Retry-After`) are the API's.
async fn api_failure(error: ApiError) -> HttpResponse {
    let response = error.error_response();
    let mut out = HttpResponse::build(response.status());
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.append_header((name.clone(), value.clone()));
        }
    }
    let mut body = match actix_web::body::to_bytes(response.into_body()).await {
        Ok(bytes) => serde_json::from_slice::<Map<String, Value>>(&bytes).unwrap_or_default(),
        Err(_) => Map::new(),
    };
    body.insert("errorCode".into(), "GENERAL".into());
    body.insert("errorDetails".into(), error.to_string().into());
    out.json(body)
}

async fn evaluate_one(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let key = path.into_inner();
    match evaluate_one_for_caller(&req, &state, &key, &body).await {
        Ok(response) => response,
        Err(error) => api_failure(error).await,
    }
}

async fn evaluate_one_for_caller(
    req: &HttpRequest,
    state: &AppState,
    key: &str,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let env = state.environment(&caller_environment(req, state)?)?;
    let mut context = match Context::read(body) {
        Ok(c) => c,
        Err(rejection) => return Ok(rejection.response(StatusCode::BAD_REQUEST, Some(key))),
    };
    let current = env.current();
    let snapshot = &current.snapshot;
    if snapshot.flag_reads_profile(key) {
        context.load_profile(state, &env.key, snapshot).await?;
    }
    let Some(flag) = snapshot.document().flag(key) else {
        let rejection = Rejection::new("FLAG_NOT_FOUND", format!("flag `{key}` was not found"));
        return Ok(rejection.response(StatusCode::NOT_FOUND, Some(key)));
    };
    Ok(match evaluation(snapshot, flag, &context) {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(rejection) => rejection.response(StatusCode::BAD_REQUEST, Some(key)),
    })
}

/// ETag of a bulk result: it depends on both the config revision and the context (attributes
/// that cannot be serialized are an error, not a hash of nothing shared by every such context).
fn bulk_etag(
    config_etag: &str,
    user: &User,
    profile: Option<&Profile>,
) -> Result<String, ApiError> {
    let attrs: BTreeMap<&str, AttributeRef<'_>> = user.attributes().collect();
    let attrs = serde_json::to_vec(&attrs).map_err(InternalError::serialize(
        "the evaluation context for its ETag",
    ))?;
    let mut h = Sha256::new();
    h.update(config_etag.as_bytes());
    h.update(user.key().as_bytes());
    h.update(attrs);
    if let Some(profile) = profile {
        // The traits and lists the answer read; not `as_of`, so an unchanged profile keeps it.
        let traits: Vec<(&str, Value)> = profile
            .traits()
            .map(|(k, v)| (k, profiles::trait_json(v)))
            .collect();
        let lists: Vec<&str> = profile.lists().collect();
        let bytes = serde_json::to_vec(&(traits, lists))
            .map_err(InternalError::serialize("the profile for its ETag"))?;
        h.update(bytes);
    }
    Ok(format!("\"{}\"", hex::encode(&h.finalize()[..12])))
}

async fn evaluate_all(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    match evaluate_all_for_caller(&req, &state, &body).await {
        Ok(response) => response,
        Err(error) => api_failure(error).await,
    }
}

async fn evaluate_all_for_caller(
    req: &HttpRequest,
    state: &AppState,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let env = state.environment(&caller_environment(req, state)?)?;
    let mut context = match Context::read(body) {
        Ok(c) => c,
        Err(rejection) => return Ok(rejection.response(StatusCode::BAD_REQUEST, None)),
    };
    let current = env.current();
    context
        .load_profile(state, &env.key, &current.snapshot)
        .await?;
    let etag = bulk_etag(&current.etag, &context.user, context.profile.as_ref())?;
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if matches {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    let snapshot = &current.snapshot;
    let flags: Vec<Value> = snapshot
        .document()
        .flags
        .iter()
        .map(|flag| bulk_item(snapshot, flag, &context))
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag))
        .json(serde_json::json!({
            "flags": flags,
            "metadata": {"environment": snapshot.environment(), "revision": current.revision},
        })))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tailor_core::AttributeValue;

    fn read(body: Value) -> Result<Context, Rejection> {
        Context::read(body.to_string().as_bytes())
    }

    #[test]
    fn nested_objects_become_dotted_attributes_and_unusable_values_are_ignored() {
        let context = read(serde_json::json!({"context": {
            "targetingKey": "u1",
            "address": {"city": "Oslo", "geo": {"lat": 59.9}, "empty": {}},
            "address.city": "Bergen",
            "tags": ["a", "b"],
            "scores": [1, 2],
            "mixed": ["a", 1],
            "gone": null,
        }}))
        .unwrap();
        let user = &context.user;
        assert!(context.has_key);
        assert_eq!(user.key(), "u1");
        // The top-level spelling is shallower than the nested one: it wins.
        assert_eq!(user.get("address.city"), Some(AttributeRef::Str("Bergen")));
        assert_eq!(
            user.get("address.geo.lat"),
            Some(AttributeRef::Number(59.9))
        );
        assert_eq!(
            user.get("tags").map(AttributeRef::to_value),
            Some(AttributeValue::List(vec!["a".into(), "b".into()]))
        );
        for ignored in ["scores", "mixed", "gone", "address", "address.empty"] {
            assert_eq!(user.get(ignored), None, "{ignored}");
        }
    }

    #[test]
    fn a_missing_null_or_empty_targeting_key_is_no_key() {
        for body in [
            serde_json::json!({}),
            serde_json::json!({"context": null}),
            serde_json::json!({"context": {}}),
            serde_json::json!({"context": {"targetingKey": null}}),
            serde_json::json!({"context": {"targetingKey": ""}}),
        ] {
            let context = read(body.clone()).unwrap();
            assert!(!context.has_key, "{body}");
            assert_eq!(context.user.key(), "");
        }
        for body in [
            serde_json::json!({"context": {"targetingKey": 42}}),
            serde_json::json!({"context": "u1"}),
            serde_json::json!([]),
        ] {
            let rejection = read(body.clone()).err().unwrap();
            assert_eq!(rejection.code, "INVALID_CONTEXT", "{body}");
        }
        let rejection = Context::read(b"{context").err().unwrap();
        assert_eq!(rejection.code, "PARSE_ERROR");
    }

    #[test]
    fn number_values_are_written_as_floats() {
        let flag: Flag = serde_json::from_value(serde_json::json!({
            "key": "limit", "type": "number", "default_variant": "a",
            "variants": [{"key": "a", "value": 10}],
        }))
        .unwrap();
        let v = wire_value(&flag, &serde_json::json!(10));
        assert_eq!(serde_json::to_string(&v).unwrap(), "10.0");
        assert_eq!(
            serde_json::to_string(&wire_value(&flag, &serde_json::json!(2.5))).unwrap(),
            "2.5"
        );
        let mut json = flag.clone();
        json.value_type = ValueType::Json;
        let v = wire_value(&json, &serde_json::json!({"n": 10}));
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"n":10}"#);
    }
}
