//! Admin CRUD for segments, flags, experiments, layers and traits of one environment, plus the flag
//! rollout, toggle and restore actions. One generic implementation serves all five kinds.
//!
//! Every write is validated by compiling the whole new config (so a segment delete that a flag
//! still uses is rejected naming the flag's field), requires `If-Match` with the resource's ETag
//! for updates and deletes, bumps the revision and appends to the audit log.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tailor_core::model::{Experiment, Flag, Layer, Segment, TraitDefinition, FULL_COVERAGE};
use tailor_core::ConfigDocument;

use std::sync::Arc;

use super::{
    check_if_match, check_if_match_value, content_etag, parse_body, path_segment, require_admin,
};
use crate::error::{ApiError, InternalError};
use crate::keys::Actor;
use crate::publish::Published;
use crate::state::{AppState, Change};

/// A keyed list in the config document that the admin API manages.
pub trait Resource: Serialize + DeserializeOwned + Clone + Send + 'static {
    /// Singular name, for messages and the audit log.
    const KIND: &'static str;
    /// The key.
    fn key(&self) -> &str;
    /// Sets the key.
    fn set_key(&mut self, key: String);
    /// The list in a document.
    fn list(doc: &ConfigDocument) -> &Vec<Self>;
    /// The list in a document, mutable.
    fn list_mut(doc: &mut ConfigDocument) -> &mut Vec<Self>;
}

macro_rules! resource {
    ($ty:ty, $kind:literal, $field:ident) => {
        impl Resource for $ty {
            const KIND: &'static str = $kind;
            fn key(&self) -> &str {
                &self.key
            }
            fn set_key(&mut self, key: String) {
                self.key = key;
            }
            fn list(doc: &ConfigDocument) -> &Vec<Self> {
                &doc.$field
            }
            fn list_mut(doc: &mut ConfigDocument) -> &mut Vec<Self> {
                &mut doc.$field
            }
        }
    };
}
resource!(Segment, "segment", segments);
resource!(Flag, "flag", flags);
resource!(Experiment, "experiment", experiments);
resource!(Layer, "layer", layers);
resource!(TraitDefinition, "trait", traits);

/// Mounts the CRUD routes for every kind.
pub fn configure(cfg: &mut web::ServiceConfig) {
    mount::<Segment>(cfg, "segments");
    mount::<Flag>(cfg, "flags");
    mount::<Experiment>(cfg, "experiments");
    mount::<Layer>(cfg, "layers");
    mount::<TraitDefinition>(cfg, "traits");
    cfg.route(
        "/api/v1/environments/{env}/flags/{key}/rollout",
        web::post().to(rollout),
    )
    .route(
        "/api/v1/environments/{env}/flags/{key}/toggle",
        web::post().to(toggle),
    )
    .route(
        "/api/v1/environments/{env}/flags/{key}/restore",
        web::post().to(restore),
    );
}

fn mount<R: Resource>(cfg: &mut web::ServiceConfig, plural: &str) {
    cfg.route(
        &format!("/api/v1/environments/{{env}}/{plural}"),
        web::get().to(list::<R>),
    )
    .route(
        &format!("/api/v1/environments/{{env}}/{plural}"),
        web::post().to(create::<R>),
    )
    .route(
        &format!("/api/v1/environments/{{env}}/{plural}/{{key}}"),
        web::get().to(get::<R>),
    )
    .route(
        &format!("/api/v1/environments/{{env}}/{plural}/{{key}}"),
        web::put().to(update::<R>),
    )
    .route(
        &format!("/api/v1/environments/{{env}}/{plural}/{{key}}"),
        web::delete().to(delete::<R>),
    );
}

fn find<'d, R: Resource>(doc: &'d ConfigDocument, key: &str) -> Option<&'d R> {
    R::list(doc).iter().find(|r| r.key() == key)
}

fn not_found<R: Resource>(env: &str, key: &str) -> ApiError {
    ApiError::NotFound(format!(
        "{} `{key}` does not exist in environment `{env}`",
        R::KIND
    ))
}

/// A resource as JSON, for the audit log and responses. A failure is an error: an audit entry
/// without its before or after would hide what changed.
fn to_json<T: Serialize>(v: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v)
        .map_err(InternalError::serialize("a resource"))
        .map_err(ApiError::from)
}

fn written(
    status: actix_web::http::StatusCode,
    published: &Published,
    etag: Option<String>,
    body: Option<serde_json::Value>,
) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    res.insert_header(("X-Tailor-Revision", published.revision.to_string()));
    if let Some(etag) = etag {
        res.insert_header((header::ETAG, etag));
    }
    match body {
        Some(b) => res.json(b),
        None => res.finish(),
    }
}

#[derive(Serialize)]
struct ListBody<'a, R> {
    revision: u64,
    items: &'a [R],
}

async fn list<R: Resource>(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let env = state.environment(&path)?;
    let current = env.current();
    let doc = current.snapshot.document();
    Ok(HttpResponse::Ok().json(ListBody {
        revision: current.revision,
        items: R::list(doc),
    }))
}

async fn get<R: Resource>(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let (env_key, key) = path.into_inner();
    let current = state.environment(&env_key)?.current();
    let item = find::<R>(current.snapshot.document(), &key)
        .ok_or_else(|| not_found::<R>(&env_key, &key))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, content_etag(item)?))
        .insert_header(("X-Tailor-Revision", current.revision.to_string()))
        .json(item))
}

async fn create<R: Resource>(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (_, actor) = require_admin(&req, &state)?;
    let env_key = path.into_inner();
    let item: R = parse_body(&req, &body).await?;
    if item.key().is_empty() || item.key() == "." || item.key() == ".." {
        return Err(ApiError::BadRequest(format!(
            "key: `{}` is not a usable key (it must not be empty, `.` or `..`)",
            item.key()
        )));
    }
    let key = item.key().to_string();
    let etag = content_etag(&item)?;
    let after = Some(to_json(&item)?);
    let published = state
        .write(&env_key, &actor, |doc| {
            if find::<R>(doc, &key).is_some() {
                return Err(ApiError::Conflict(format!(
                    "{} `{key}` already exists in environment `{env_key}`; update it with PUT",
                    R::KIND
                )));
            }
            R::list_mut(doc).push(item);
            Ok(Change {
                action: "create",
                kind: R::KIND,
                key: key.clone(),
                before: None,
                after,
            })
        })
        .await?;
    let mut res = written(
        actix_web::http::StatusCode::CREATED,
        &published,
        Some(etag),
        find::<R>(published.snapshot.document(), &key)
            .map(to_json)
            .transpose()?,
    );
    res.headers_mut().insert(
        header::LOCATION,
        header::HeaderValue::from_str(&format!("{}/{}", req.path(), path_segment(&key)))
            .unwrap_or(header::HeaderValue::from_static("")),
    );
    Ok(res)
}

async fn update<R: Resource>(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (_, actor) = require_admin(&req, &state)?;
    let (env_key, key) = path.into_inner();
    let mut item: R = parse_body(&req, &body).await?;
    if item.key().is_empty() {
        item.set_key(key.clone());
    } else if item.key() != key {
        return Err(ApiError::BadRequest(format!(
            "key: the body's key `{}` differs from the URL's `{key}`; keys cannot be renamed (create a new {} instead)",
            item.key(),
            R::KIND
        )));
    }
    let etag = content_etag(&item)?;
    let after = Some(to_json(&item)?);
    let published = state
        .write(&env_key, &actor, |doc| {
            let list = R::list_mut(doc);
            let slot = list
                .iter_mut()
                .find(|r| r.key() == key)
                .ok_or_else(|| not_found::<R>(&env_key, &key))?;
            check_if_match(&req, &content_etag(&*slot)?, true)?;
            let before = Some(to_json(&*slot)?);
            *slot = item;
            Ok(Change {
                action: "update",
                kind: R::KIND,
                key: key.clone(),
                before,
                after,
            })
        })
        .await?;
    Ok(written(
        actix_web::http::StatusCode::OK,
        &published,
        Some(etag),
        find::<R>(published.snapshot.document(), &key)
            .map(to_json)
            .transpose()?,
    ))
}

async fn delete<R: Resource>(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (_, actor) = require_admin(&req, &state)?;
    let (env_key, key) = path.into_inner();
    let published = state
        .write(&env_key, &actor, |doc| {
            let list = R::list_mut(doc);
            let index = list
                .iter()
                .position(|r| r.key() == key)
                .ok_or_else(|| not_found::<R>(&env_key, &key))?;
            check_if_match(&req, &content_etag(&list[index])?, true)?;
            let before = Some(to_json(&list[index])?);
            list.remove(index);
            Ok(Change {
                action: "delete",
                kind: R::KIND,
                key: key.clone(),
                before,
                after: None,
            })
        })
        .await?;
    Ok(written(
        actix_web::http::StatusCode::NO_CONTENT,
        &published,
        None,
        None,
    ))
}

/// Which rule a rollout changes: its index or its id.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RuleRef {
    /// Position in the flag's rules, from 0.
    Index(usize),
    /// The rule's `id`.
    Id(String),
}

#[derive(Debug, Deserialize)]
struct RolloutBody {
    rule: RuleRef,
    coverage: u32,
}

/// The `If-Match` header's value, if sent.
fn if_match(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
}

/// Changes one rule's rollout coverage (basis points) in one call.
async fn rollout(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (_, actor) = require_admin(&req, &state)?;
    let (env_key, key) = path.into_inner();
    let body: RolloutBody = parse_body(&req, &body).await?;
    let published = rollout_flag(
        &state,
        &env_key,
        &key,
        &actor,
        if_match(&req),
        &body.rule,
        body.coverage,
    )
    .await?;
    flag_written(&published, &key)
}

#[derive(Debug, Deserialize)]
struct ToggleBody {
    enabled: bool,
}

/// Switches a flag on or off (off serves the generic default to everyone).
async fn toggle(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (_, actor) = require_admin(&req, &state)?;
    let (env_key, key) = path.into_inner();
    let body: ToggleBody = parse_body(&req, &body).await?;
    let published =
        toggle_flag(&state, &env_key, &key, &actor, if_match(&req), body.enabled).await?;
    flag_written(&published, &key)
}

#[derive(Debug, Deserialize)]
struct RestoreBody {
    audit_id: i64,
}

/// Rolls a flag back to how it was before the given audit entry.
async fn restore(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (_, actor) = require_admin(&req, &state)?;
    let (env_key, key) = path.into_inner();
    let body: RestoreBody = parse_body(&req, &body).await?;
    let published = restore_flag(
        &state,
        &env_key,
        &key,
        &actor,
        if_match(&req),
        body.audit_id,
    )
    .await?;
    flag_written(&published, &key)
}

// The flag actions below are the one implementation behind both the admin API handlers above
// and the dashboard's forms: same validation, same write path, same audit entries.

/// Sets one rule's rollout coverage (basis points, 0–10000). `if_match`: the flag's ETag, when
/// the caller wants the change refused if the flag changed since it was read.
pub async fn rollout_flag(
    state: &AppState,
    env_key: &str,
    key: &str,
    actor: &Actor,
    if_match: Option<&str>,
    rule: &RuleRef,
    coverage: u32,
) -> Result<Arc<Published>, ApiError> {
    if coverage > FULL_COVERAGE {
        return Err(ApiError::BadRequest(format!(
            "coverage: must be between 0 and 10000 basis points, got {coverage}"
        )));
    }
    edit_flag(state, env_key, key, actor, if_match, "rollout", |flag| {
        let index = match rule {
            RuleRef::Index(i) => *i,
            RuleRef::Id(id) => flag
                .rules
                .iter()
                .position(|r| r.id.as_deref() == Some(id))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "rule: flag `{}` has no rule with id `{id}`",
                        flag.key
                    ))
                })?,
        };
        let count = flag.rules.len();
        let rule = flag.rules.get_mut(index).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "rule: flag has {count} rules, there is no rule {index}"
            ))
        })?;
        rule.coverage = coverage;
        Ok(())
    })
    .await
}

/// Freezes rule `index`'s learned policy (or resumes learning): frozen, each context serves
/// its best variant (`best`, one per context in [`tailor_core::model::Optimize::all_contexts`]
/// order) to all its users and the optimizer stops updating it; resumed, the optimizer updates
/// it again at its next period. A normal flag change (action `freeze` or `unfreeze`).
pub async fn freeze_optimize(
    state: &AppState,
    env_key: &str,
    key: &str,
    actor: &Actor,
    if_match: Option<&str>,
    index: usize,
    best: Option<&[String]>,
) -> Result<Arc<Published>, ApiError> {
    let action = if best.is_some() { "freeze" } else { "unfreeze" };
    edit_flag(state, env_key, key, actor, if_match, action, |flag| {
        let optimize = flag
            .rules
            .get_mut(index)
            .and_then(|r| r.optimize.as_mut())
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "rule: rule {index} of `{key}` is not an optimize rule"
                ))
            })?;
        match best {
            None => optimize.frozen = false,
            Some(best) => {
                let contexts: Vec<String> = optimize
                    .all_contexts()
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                if best.len() != contexts.len() {
                    return Err(ApiError::BadRequest(format!(
                        "best: one variant per context ({}), got {}",
                        contexts.len(),
                        best.len()
                    )));
                }
                let period = optimize.weights.iter().map(|w| w.period).max().unwrap_or(0);
                let mut weights = Vec::with_capacity(contexts.len());
                for (context, variant) in contexts.into_iter().zip(best) {
                    let arm = optimize
                        .variants
                        .iter()
                        .position(|v| v == variant)
                        .ok_or_else(|| {
                            ApiError::BadRequest(format!(
                                "best: `{variant}` is not one of the rule's variants"
                            ))
                        })?;
                    let mut w = vec![0; optimize.variants.len()];
                    w[arm] = FULL_COVERAGE;
                    weights.push(tailor_core::model::ContextWeights {
                        context,
                        weights: w,
                        period,
                    });
                }
                optimize.weights = weights;
                optimize.frozen = true;
            }
        }
        Ok(())
    })
    .await
}

/// Switches a flag on or off.
pub async fn toggle_flag(
    state: &AppState,
    env_key: &str,
    key: &str,
    actor: &Actor,
    if_match: Option<&str>,
    enabled: bool,
) -> Result<Arc<Published>, ApiError> {
    edit_flag(state, env_key, key, actor, if_match, "toggle", |flag| {
        flag.enabled = enabled;
        Ok(())
    })
    .await
}

/// The flag as it was before audit entry `audit_id` of this flag, if that entry has a before.
pub async fn flag_before(
    state: &AppState,
    env_key: &str,
    key: &str,
    audit_id: i64,
) -> Result<Flag, ApiError> {
    let entries = state
        .store
        .audit(
            env_key,
            &crate::store::AuditQuery {
                kind: Some("flag".into()),
                key: Some(key.to_string()),
                limit: Some(1000),
            },
        )
        .await?;
    let entry = entries
        .into_iter()
        .find(|e| e.id == audit_id)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "audit_id: no audit entry {audit_id} for flag `{key}`"
            ))
        })?;
    match entry.before {
        Some(v) => serde_json::from_value(v).map_err(|e| {
            ApiError::BadRequest(format!(
                "audit_id: entry {audit_id} cannot be restored: {e}"
            ))
        }),
        None => Err(ApiError::BadRequest(format!(
            "audit_id: entry {audit_id} created the flag; there is no earlier version (delete the flag instead)"
        ))),
    }
}

/// Rolls a flag back to how it was before audit entry `audit_id`.
pub async fn restore_flag(
    state: &AppState,
    env_key: &str,
    key: &str,
    actor: &Actor,
    if_match: Option<&str>,
    audit_id: i64,
) -> Result<Arc<Published>, ApiError> {
    let before = flag_before(state, env_key, key, audit_id).await?;
    edit_flag(
        state,
        env_key,
        key,
        actor,
        if_match,
        "restore",
        move |flag| {
            *flag = before;
            Ok(())
        },
    )
    .await
}

async fn edit_flag(
    state: &AppState,
    env_key: &str,
    key: &str,
    actor: &Actor,
    if_match: Option<&str>,
    action: &'static str,
    edit: impl FnOnce(&mut Flag) -> Result<(), ApiError>,
) -> Result<Arc<Published>, ApiError> {
    state
        .write(env_key, actor, |doc| {
            let flag = doc
                .flags
                .iter_mut()
                .find(|f| f.key == key)
                .ok_or_else(|| not_found::<Flag>(env_key, key))?;
            check_if_match_value(if_match, &content_etag(&*flag)?, false)?;
            let before = Some(to_json(&*flag)?);
            edit(flag)?;
            Ok(Change {
                action,
                kind: "flag",
                key: key.to_string(),
                before,
                after: Some(to_json(&*flag)?),
            })
        })
        .await
}

/// The response of a flag action: the flag as written, its ETag and the new revision.
fn flag_written(published: &Published, key: &str) -> Result<HttpResponse, ApiError> {
    let flag = find::<Flag>(published.snapshot.document(), key);
    Ok(written(
        actix_web::http::StatusCode::OK,
        published,
        flag.map(content_etag).transpose()?,
        flag.map(to_json).transpose()?,
    ))
}
