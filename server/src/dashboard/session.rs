//! Dashboard sign-in sessions: random 256-bit ids in an `HttpOnly`, `SameSite=Strict` cookie,
//! kept server-side with an absolute expiry.
//!
//! Only the SHA-256 of a session id is kept, like API keys, so a memory dump of the map does not
//! hand out live cookies. A session is bound to the admin key that opened it: revoking the key
//! ends its sessions at their next request. Sessions live in memory: a restart signs everyone
//! out, which is the safe direction (and with several instances behind a load balancer the
//! dashboard needs sticky sessions).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::HttpRequest;
use rand::RngCore;

use crate::keys;
use crate::store::ApiKey;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "tailor_session";
/// Path of the session cookie: the browser sends it to the dashboard only.
pub const COOKIE_PATH: &str = "/dashboard";
/// Most sessions kept at once; past it the ones closest to expiry are dropped.
const MAX_SESSIONS: usize = 10_000;

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
    expires: Instant,
}

/// The server-side session map.
#[derive(Debug, Default)]
pub struct Sessions {
    config: SessionConfig,
    by_digest: Mutex<HashMap<String, Session>>,
}

/// 256 random bits, hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Sessions {
    /// An empty store.
    pub fn new(config: SessionConfig) -> Self {
        Sessions {
            config,
            by_digest: Mutex::new(HashMap::new()),
        }
    }

    /// The settings.
    pub fn config(&self) -> SessionConfig {
        self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // The map holds no invariant a panicking holder could break half-way.
        self.by_digest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session for `key`; returns the id to put in the cookie.
    pub fn create(&self, key: &ApiKey) -> String {
        let id = random_token();
        let now = Instant::now();
        let session = Session {
            key_digest: key.digest.clone(),
            key_name: key.name.clone(),
            csrf: random_token(),
            expires: now + self.config.lifetime,
        };
        let mut map = self.lock();
        map.retain(|_, s| s.expires > now);
        while map.len() >= MAX_SESSIONS {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(d, _)| d.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(keys::digest(&id), session);
        id
    }

    /// The live session with this id, if any (an expired one is removed).
    pub fn get(&self, id: &str) -> Option<Session> {
        let digest = keys::digest(id);
        let mut map = self.lock();
        match map.get(&digest) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(&digest);
                None
            }
            None => None,
        }
    }

    /// Ends a session.
    pub fn remove(&self, id: &str) {
        self.lock().remove(&keys::digest(id));
    }

    /// How many sessions are open (expired ones included until they are next looked at).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    #[test]
    fn a_session_is_found_by_its_id_until_it_expires_or_is_removed() {
        let sessions = Sessions::new(SessionConfig {
            lifetime: Duration::from_millis(50),
            secure_cookies: true,
        });
        let id = sessions.create(&key());
        assert_eq!(id.len(), 64, "256 bits, hex");
        let s = sessions.get(&id).unwrap();
        assert_eq!(s.key_name, "admin");
        assert_eq!(s.csrf.len(), 64);
        assert!(sessions.get("not-a-session").is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(sessions.get(&id).is_none(), "expired");
        assert!(sessions.is_empty(), "an expired session is dropped");

        let id = sessions.create(&key());
        sessions.remove(&id);
        assert!(sessions.get(&id).is_none());
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
