//! Dashboard sign-in sessions: random 256-bit ids in an `HttpOnly`, `SameSite=Strict` cookie,
//! kept server-side, in the store, with an absolute expiry.
//!
//! Only the SHA-256 of a session id is stored, like API keys, so reading the store does not hand
//! out live cookies. A session is bound to the admin key that opened it: revoking the key ends
//! its sessions at their next request. Because sessions live in the store, a restart keeps
//! everyone signed in and, with Redis, every instance behind a load balancer accepts a session
//! opened on any other (no sticky sessions needed); signing out ends it on all of them.

use std::time::Duration;

use actix_web::http::header;
use actix_web::HttpRequest;
use rand::RngCore;

use crate::keys;
use crate::store::{unix_now, ApiKey, Store, StoreError, StoredSession};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "tailor_session";
/// Path of the session cookie: the browser sends it to the dashboard only.
pub const COOKIE_PATH: &str = "/dashboard";

/// How sessions behave.
#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    /// How long a sign-in lasts (absolute, not sliding).
    pub lifetime: Duration,
    /// Add `Secure` to cookies (the dashboard is served over https).
    pub secure_cookies: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            lifetime: Duration::from_secs(8 * 3600),
            secure_cookies: false,
        }
    }
}

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// Digest of the admin key that signed in.
    pub key_digest: String,
    /// That key's name, for the page header and the audit log.
    pub key_name: String,
    /// The token every form of this session must send back (see [`super::csrf`]).
    pub csrf: String,
}

/// Opens, finds and ends sessions in the store.
#[derive(Debug, Default)]
pub struct Sessions {
    config: SessionConfig,
}

/// 256 random bits, hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Sessions {
    /// Sessions with these settings.
    pub fn new(config: SessionConfig) -> Self {
        Sessions { config }
    }

    /// The settings.
    pub fn config(&self) -> SessionConfig {
        self.config
    }

    /// Opens a session for `key`; returns the id to put in the cookie.
    pub async fn create(&self, store: &dyn Store, key: &ApiKey) -> Result<String, StoreError> {
        self.create_at(store, key, unix_now()).await
    }

    /// [`Sessions::create`] as of `now` (Unix seconds; a parameter so tests need not sleep).
    async fn create_at(
        &self,
        store: &dyn Store,
        key: &ApiKey,
        now: i64,
    ) -> Result<String, StoreError> {
        let id = random_token();
        let lifetime = i64::try_from(self.config.lifetime.as_secs()).unwrap_or(i64::MAX);
        let session = StoredSession {
            key_digest: key.digest.clone(),
            key_name: key.name.clone(),
            csrf: random_token(),
            expires_at: now.saturating_add(lifetime.max(1)),
        };
        store.put_session(&keys::digest(&id), &session).await?;
        Ok(id)
    }

    /// The live session with this id, if any.
    pub async fn get(&self, store: &dyn Store, id: &str) -> Result<Option<Session>, StoreError> {
        self.get_at(store, id, unix_now()).await
    }

    /// [`Sessions::get`] as of `now` (Unix seconds).
    async fn get_at(
        &self,
        store: &dyn Store,
        id: &str,
        now: i64,
    ) -> Result<Option<Session>, StoreError> {
        Ok(store
            .session(&keys::digest(id), now)
            .await?
            .map(|s| Session {
                key_digest: s.key_digest,
                key_name: s.key_name,
                csrf: s.csrf,
            }))
    }

    /// Ends a session.
    pub async fn remove(&self, store: &dyn Store, id: &str) -> Result<(), StoreError> {
        store.delete_session(&keys::digest(id)).await
    }

    /// The `Set-Cookie` value that stores a session id.
    pub fn cookie(&self, id: &str) -> String {
        cookie(
            SESSION_COOKIE,
            id,
            COOKIE_PATH,
            self.config.lifetime.as_secs(),
            self.config.secure_cookies,
        )
    }

    /// The `Set-Cookie` value that deletes the session cookie.
    pub fn clear_cookie(&self) -> String {
        cookie(
            SESSION_COOKIE,
            "",
            COOKIE_PATH,
            0,
            self.config.secure_cookies,
        )
    }
}

/// A `Set-Cookie` value: `HttpOnly` and `SameSite=Strict` always.
pub fn cookie(name: &str, value: &str, path: &str, max_age_secs: u64, secure: bool) -> String {
    let mut out =
        format!("{name}={value}; Path={path}; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict");
    if secure {
        out.push_str("; Secure");
    }
    out
}

/// A cookie the request carries.
pub fn request_cookie<'r>(req: &'r HttpRequest, name: &str) -> Option<&'r str> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::KeyKind;

    fn key() -> ApiKey {
        ApiKey {
            id: "key_1".into(),
            name: "admin".into(),
            kind: KeyKind::Admin,
            environment: None,
            digest: keys::digest("secret"),
            created_at: String::new(),
            revoked_at: None,
        }
    }

    #[tokio::test]
    async fn a_session_is_found_by_its_id_until_it_expires_or_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::sqlite::SqliteStore::open(dir.path()).unwrap();
        let sessions = Sessions::new(SessionConfig {
            lifetime: Duration::from_secs(3600),
            secure_cookies: true,
        });
        let now = unix_now();
        let id = sessions.create_at(&store, &key(), now).await.unwrap();
        assert_eq!(id.len(), 64, "256 bits, hex");
        let s = sessions.get(&store, &id).await.unwrap().unwrap();
        assert_eq!(s.key_name, "admin");
        assert_eq!(s.csrf.len(), 64);
        assert!(sessions
            .get(&store, "not-a-session")
            .await
            .unwrap()
            .is_none());
        assert!(
            sessions
                .get_at(&store, &id, now + 3599)
                .await
                .unwrap()
                .is_some(),
            "live until its last second"
        );
        assert!(
            sessions
                .get_at(&store, &id, now + 3600)
                .await
                .unwrap()
                .is_none(),
            "expired"
        );

        let id = sessions.create(&store, &key()).await.unwrap();
        sessions.remove(&store, &id).await.unwrap();
        assert!(sessions.get(&store, &id).await.unwrap().is_none());
    }

    #[test]
    fn cookies_are_http_only_strict_and_scoped_to_the_dashboard() {
        let sessions = Sessions::new(SessionConfig {
            lifetime: Duration::from_secs(3600),
            secure_cookies: true,
        });
        assert_eq!(
            sessions.cookie("abc"),
            "tailor_session=abc; Path=/dashboard; Max-Age=3600; HttpOnly; SameSite=Strict; Secure"
        );
        assert!(sessions.clear_cookie().contains("Max-Age=0"));
        assert!(!Sessions::default().cookie("abc").contains("Secure"));
    }
}
