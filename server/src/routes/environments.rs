//! Environment-level admin routes: environments, keys, export/import (config as code), the
//! evaluation preview and the audit log.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use tailor_core::{assign_with_profile, ConfigDocument, Reason, User};

use super::{check_if_match, parse_body, require_admin};
use crate::error::{ApiError, InternalError};
use crate::state::{AppState, Change};
use crate::store::{AuditQuery, KeyKind};

/// Mounts the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/environments", web::get().to(list_environments))
        .route("/api/v1/environments", web::post().to(create_environment))
        .route("/api/v1/environments/{env}/config", web::get().to(export))
        .route("/api/v1/environments/{env}/export", web::get().to(export))
        .route("/api/v1/environments/{env}/import", web::post().to(import))
        .route(
            "/api/v1/environments/{env}/preview",
            web::post().to(preview),
        )
        .route("/api/v1/environments/{env}/audit", web::get().to(audit))
        .route("/api/v1/keys", web::get().to(list_keys))
        .route("/api/v1/keys", web::post().to(create_key))
        .route("/api/v1/keys/{id}", web::delete().to(revoke_key));
}

#[derive(Serialize)]
struct EnvironmentSummary {
    key: String,
    revision: u64,
    flags: usize,
    segments: usize,
    experiments: usize,
}

async fn list_environments(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let mut out = Vec::new();
    for key in state.environment_keys() {
        let current = state.environment(&key)?.current();
        let doc = current.snapshot.document();
        out.push(EnvironmentSummary {
            key,
            revision: current.revision,
            flags: doc.flags.len(),
            segments: doc.segments.len(),
            experiments: doc.experiments.len(),
        });
    }
    Ok(HttpResponse::Ok().json(out))
}

#[derive(Deserialize)]
struct CreateEnvironment {
    key: String,
    /// Partitions of its event log (1-1024; default `--partitions`).
    partitions: Option<u32>,
}

async fn create_environment(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let body: CreateEnvironment = parse_body(&req, &body).await?;
    let published = state.create_environment(&body.key, body.partitions).await?;
    Ok(HttpResponse::Created().json(serde_json::json!({
        "key": body.key,
        "revision": published.revision,
        "partitions": state.collector.partitions(&body.key),
    })))
}

#[derive(Deserialize)]
struct ExportQuery {
    format: Option<String>,
}

/// The whole environment document, JSON (default) or YAML, with the environment ETag.
async fn export(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let current = state.environment(&path)?.current();
    let (content_type, body) = export_body(current.snapshot.document(), query.format.as_deref())?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, current.etag.clone()))
        .insert_header(("X-Tailor-Revision", current.revision.to_string()))
        .content_type(content_type)
        .body(body))
}

/// The exported document and its content type. A document that cannot be written is an
/// error: an empty 200 would read as an empty config, and importing it would wipe one.
fn export_body(
    doc: &ConfigDocument,
    format: Option<&str>,
) -> Result<(&'static str, String), ApiError> {
    let (content_type, body) = match format {
        None | Some("json") => ("application/json", doc.try_to_json_pretty()),
        Some("yaml") => ("application/yaml", doc.try_to_yaml()),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "format: must be `json` or `yaml`, got `{other}`"
            )))
        }
    };
    Ok((content_type, body.map_err(InternalError::Export)?))
}

#[derive(Deserialize)]
struct ImportQuery {
    #[serde(default)]
    dry_run: bool,
}

/// One resource that an import adds, removes or changes.
#[derive(Debug, Serialize)]
struct DiffEntry {
    kind: &'static str,
    key: String,
    change: &'static str,
}

/// Adds to `out` what changes from `old` to `new`. Items are compared as JSON; one that cannot
/// be serialized is an error, not "unchanged".
fn diff_kind<T: Serialize>(
    kind: &'static str,
    old: &[T],
    new: &[T],
    key: impl Fn(&T) -> &str,
    out: &mut Vec<DiffEntry>,
) -> Result<(), ApiError> {
    for n in new {
        match old.iter().find(|o| key(o) == key(n)) {
            None => out.push(DiffEntry {
                kind,
                key: key(n).to_string(),
                change: "added",
            }),
            Some(o) if as_json(o)? != as_json(n)? => out.push(DiffEntry {
                kind,
                key: key(n).to_string(),
                change: "changed",
            }),
            Some(_) => {}
        }
    }
    for o in old {
        if !new.iter().any(|n| key(n) == key(o)) {
            out.push(DiffEntry {
                kind,
                key: key(o).to_string(),
                change: "removed",
            });
        }
    }
    Ok(())
}

/// An imported or replaced value as JSON, for the diff and the audit log.
fn as_json<T: Serialize>(value: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(value)
        .map_err(InternalError::serialize("the config for the import's diff"))
        .map_err(ApiError::from)
}

fn diff(old: &ConfigDocument, new: &ConfigDocument) -> Result<Vec<DiffEntry>, ApiError> {
    let mut out = Vec::new();
    diff_kind(
        "segment",
        &old.segments,
        &new.segments,
        |s| &s.key,
        &mut out,
    )?;
    diff_kind("flag", &old.flags, &new.flags, |f| &f.key, &mut out)?;
    diff_kind(
        "experiment",
        &old.experiments,
        &new.experiments,
        |e| &e.key,
        &mut out,
    )?;
    diff_kind("layer", &old.layers, &new.layers, |l| &l.key, &mut out)?;
    diff_kind("trait", &old.traits, &new.traits, |t| &t.key, &mut out)?;
    Ok(out)
}

/// Top-level fields of a config document. Reading ignores unknown fields (forward
/// compatibility), but an import is authored by a person: an unknown field is a typo or the
/// wrong file, and silently ignoring it could replace an environment with an empty config.
const DOCUMENT_FIELDS: [&str; 7] = [
    "environment",
    "revision",
    "segments",
    "flags",
    "experiments",
    "layers",
    "traits",
];

fn import_document(value: serde_json::Value) -> Result<ConfigDocument, ApiError> {
    let Some(fields) = value.as_object() else {
        return Err(ApiError::BadRequest(
            "body: an import is a config document object with segments, flags, experiments and layers".into(),
        ));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !DOCUMENT_FIELDS.contains(&k.as_str()))
    {
        return Err(ApiError::BadRequest(format!(
            "{unknown}: unknown top-level field; a config document has {}",
            DOCUMENT_FIELDS.join(", ")
        )));
    }
    if !["segments", "flags", "experiments", "layers", "traits"]
        .iter()
        .any(|k| fields.contains_key(*k))
    {
        return Err(ApiError::BadRequest(
            "body: the document has none of segments, flags, experiments, layers or traits; to empty an environment import them as empty lists explicitly".into(),
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        ApiError::BadRequest(format!(
            "invalid config document at `{}`: {}",
            e.path(),
            e.inner()
        ))
    })
}

/// Replaces the environment's config with the body (JSON or YAML). `?dry_run=true` validates and
/// returns the diff without changing anything. `If-Match` (the export's ETag) is honoured.
async fn import(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ImportQuery>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (_, actor) = require_admin(&req, &state)?;
    let env_key = path.into_inner();
    let mut incoming = import_document(parse_body(&req, &body).await?)?;
    let env = state.environment(&env_key)?;
    if query.dry_run {
        let current = env.current();
        check_if_match(&req, &current.etag, false)?;
        incoming.environment = env_key.clone();
        incoming.revision = current.revision + 1;
        let changes = diff(current.snapshot.document(), &incoming)?;
        tailor_core::key_rule::check_new_keys(current.snapshot.document(), &incoming)
            .map_err(ApiError::InvalidConfig)?;
        tailor_core::compile(incoming).map_err(ApiError::InvalidConfig)?;
        return Ok(HttpResponse::Ok().json(serde_json::json!({
            "dry_run": true,
            "revision": current.revision,
            "changes": changes,
        })));
    }
    let mut changes = Vec::new();
    let published = state
        .write(&env_key, &actor, |doc| {
            check_if_match(&req, &env.current().etag, false)?;
            changes = diff(doc, &incoming)?;
            let before = Some(as_json(&*doc)?);
            let after = Some(as_json(&incoming)?);
            *doc = incoming;
            Ok(Change {
                action: "import",
                kind: "environment",
                key: env_key.clone(),
                before,
                after,
            })
        })
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, published.etag.clone()))
        .insert_header(("X-Tailor-Revision", published.revision.to_string()))
        .json(serde_json::json!({
            "dry_run": false,
            "revision": published.revision,
            "changes": changes,
        })))
}

#[derive(Deserialize)]
struct PreviewBody {
    user: User,
    #[serde(default)]
    flags: Option<Vec<String>>,
}

#[derive(Serialize)]
struct PreviewItem<'a> {
    flag: &'a str,
    variant: Option<&'a str>,
    value: &'a serde_json::Value,
    reason: Reason,
    experiment: Option<&'a str>,
    rule_id: Option<&'a str>,
    segment: Option<&'a str>,
    personalized: bool,
}

/// Evaluates flags for a user, with reasons, using the same engine as the SDK and the user's
/// traits and list memberships as the server computes them now.
async fn preview(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let body: PreviewBody = parse_body(&req, &body).await?;
    let env = state.environment(&path)?;
    let current = env.current();
    let snapshot = &current.snapshot;
    let profile = crate::profiles::profile(&state, &env.key, snapshot, body.user.key()).await?;
    let keys: Vec<&str> = match &body.flags {
        Some(list) => list.iter().map(String::as_str).collect(),
        None => snapshot.flag_keys().collect(),
    };
    let items: Vec<PreviewItem> = keys
        .into_iter()
        .map(|flag| {
            let a = assign_with_profile(snapshot, &body.user, Some(&profile), flag);
            PreviewItem {
                flag,
                variant: a.variant_key(),
                value: a.value(),
                reason: a.reason,
                experiment: a.experiment,
                rule_id: a.rule_id,
                segment: a.segment,
                personalized: a.personalized(),
            }
        })
        .collect();
    let traits: serde_json::Map<String, serde_json::Value> = profile
        .traits()
        .map(|(k, v)| (k.to_string(), crate::profiles::trait_json(v)))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "revision": current.revision,
        "traits": traits,
        "lists": profile.lists().collect::<Vec<_>>(),
        "assignments": items,
    })))
}

async fn audit(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    state.environment(&path)?;
    let entries = state.store.audit(&path, &query).await?;
    Ok(HttpResponse::Ok().json(entries))
}

/// A key as the API shows it: never its digest (a digest of a human-chosen secret could be
/// guessed offline).
#[derive(Serialize)]
struct KeyView {
    id: String,
    name: String,
    kind: KeyKind,
    environment: Option<String>,
    created_at: String,
    revoked_at: Option<String>,
}

impl From<crate::store::ApiKey> for KeyView {
    fn from(k: crate::store::ApiKey) -> Self {
        KeyView {
            id: k.id,
            name: k.name,
            kind: k.kind,
            environment: k.environment,
            created_at: k.created_at,
            revoked_at: k.revoked_at,
        }
    }
}

async fn list_keys(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let keys: Vec<KeyView> = state.list_keys().into_iter().map(KeyView::from).collect();
    Ok(HttpResponse::Ok().json(keys))
}

#[derive(Deserialize)]
struct CreateKey {
    name: String,
    kind: KeyKind,
    environment: Option<String>,
}

async fn create_key(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let body: CreateKey = parse_body(&req, &body).await?;
    if body.name.trim().is_empty() {
        return Err(ApiError::BadRequest("name: must not be empty".into()));
    }
    match (body.kind, &body.environment) {
        (KeyKind::Admin, Some(_)) => {
            return Err(ApiError::BadRequest(
                "environment: admin keys are not scoped to an environment; omit it".into(),
            ))
        }
        (KeyKind::Sdk | KeyKind::Client, None) => {
            return Err(ApiError::BadRequest(
                "environment: SDK and client keys need the environment they may read".into(),
            ))
        }
        _ => {}
    }
    let (key, secret) = state
        .create_key(&body.name, body.kind, body.environment.as_deref(), None)
        .await?;
    Ok(HttpResponse::Created().json(serde_json::json!({
        "key": KeyView::from(key),
        "secret": secret,
    })))
}

async fn revoke_key(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (me, _) = require_admin(&req, &state)?;
    if me.id == *path {
        return Err(ApiError::BadRequest(
            "id: a key cannot revoke itself; use another admin key".into(),
        ));
    }
    if !state
        .store
        .revoke_key(&path, &crate::state::now_rfc3339()?)
        .await?
    {
        return Err(ApiError::NotFound(format!("no active key `{path}`")));
    }
    state.reload_keys().await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::Unserializable;

    #[test]
    fn an_unserializable_item_is_an_error_not_unchanged() {
        let old = [("a", Unserializable)];
        let new = [("a", Unserializable)];
        let mut out = Vec::new();
        let result = diff_kind("flag", &old, &new, |item| item.0, &mut out);
        assert!(
            matches!(
                result,
                Err(ApiError::Internal(InternalError::Serialize { .. }))
            ),
            "{result:?}"
        );
    }

    #[test]
    fn the_diff_names_added_changed_and_removed_items() {
        let old = [("a", 1), ("b", 1), ("c", 1)];
        let new = [("a", 1), ("b", 2), ("d", 1)];
        let mut out = Vec::new();
        diff_kind("flag", &old, &new, |item| item.0, &mut out).unwrap();
        let changes: Vec<_> = out.iter().map(|e| (e.key.as_str(), e.change)).collect();
        assert_eq!(
            changes,
            [("b", "changed"), ("d", "added"), ("c", "removed")]
        );
    }

    #[test]
    fn export_writes_json_or_yaml_and_refuses_other_formats() {
        let doc = ConfigDocument {
            environment: "dev".into(),
            revision: 4,
            ..ConfigDocument::default()
        };
        let (content_type, json) = export_body(&doc, None).unwrap();
        assert_eq!(content_type, "application/json");
        assert_eq!(ConfigDocument::from_json(&json).unwrap(), doc);
        let (content_type, yaml) = export_body(&doc, Some("yaml")).unwrap();
        assert_eq!(content_type, "application/yaml");
        assert_eq!(ConfigDocument::from_yaml(&yaml).unwrap(), doc);
        assert!(matches!(
            export_body(&doc, Some("toml")),
            Err(ApiError::BadRequest(_))
        ));
    }
}
