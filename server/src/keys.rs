//! API keys: generation, hashing and the checks that decide who may call what.
//!
//! Secrets look like `tlr_admin_<32 hex>`; only their SHA-256 digest is stored. Lookup is by
//! digest, and the digest is then compared in constant time, so response timing reveals nothing
//! about a secret.

use actix_web::HttpRequest;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::store::{ApiKey, KeyKind};

/// A new random secret for a key of this kind.
pub fn generate_secret(kind: KeyKind) -> String {
    let mut bytes = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let prefix = match kind {
        KeyKind::Admin => "admin",
        KeyKind::Sdk => "sdk",
        KeyKind::Client => "client",
    };
    format!("tlr_{prefix}_{}", hex::encode(bytes))
}

/// A new public key id.
pub fn generate_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("key_{}", hex::encode(bytes))
}

/// SHA-256 of a secret, hex.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether two digests are equal, in constant time.
pub fn digests_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The secret a request presents: `Authorization: Bearer <key>` or `X-API-Key: <key>`.
pub fn presented_secret(req: &HttpRequest) -> Option<&str> {
    let headers = req.headers();
    if let Some(v) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if let Some(token) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
        {
            return Some(token.trim());
        }
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Who made an admin change, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor(pub String);

impl Actor {
    /// The key's name, plus the person from `X-Tailor-Actor` when a UI sends one.
    pub fn from_key(key: &ApiKey, req: &HttpRequest) -> Self {
        let person = req
            .headers()
            .get("x-tailor-actor")
            .and_then(|v| v.to_str().ok())
            .map(|s| {
                s.chars()
                    .filter(|c| !c.is_control())
                    .take(100)
                    .collect::<String>()
            })
            .filter(|s| !s.is_empty());
        match person {
            Some(p) => Actor(format!("{} ({p})", key.name)),
            None => Actor(key.name.clone()),
        }
    }
}

/// Checks a key may act on `environment` with SDK-level rights (config, events, OFREP).
pub fn check_environment_scope(key: &ApiKey, environment: &str) -> Result<(), ApiError> {
    match (&key.kind, &key.environment) {
        (KeyKind::Admin, _) => Ok(()),
        (_, Some(env)) if env == environment => Ok(()),
        _ => Err(ApiError::Forbidden(format!(
            "this key is scoped to environment `{}`, not `{environment}`",
            key.environment.as_deref().unwrap_or("?")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_prefixed() {
        let a = generate_secret(KeyKind::Sdk);
        let b = generate_secret(KeyKind::Sdk);
        assert!(a.starts_with("tlr_sdk_") && a.len() == 48, "{a}");
        assert_ne!(a, b);
        assert_eq!(digest(&a).len(), 64);
        assert!(digests_equal(&digest(&a), &digest(&a)));
        assert!(!digests_equal(&digest(&a), &digest(&b)));
    }
}
