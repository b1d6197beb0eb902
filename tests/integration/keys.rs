//! API keys: what each kind may do, scoping to one environment, revocation, and secrets stored
//! only as digests.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};

use std::time::Duration;

use crate::support::{fixtures, send, Server, ADMIN_KEY, PATIENCE};

const OFREP_BULK: &str = "/ofrep/v1/evaluate/flags";

#[tokio::test]
async fn sdk_keys_read_only_their_own_environment() {
    let server = Server::start().await;
    server
        .create("development", "flags", &fixtures::bool_flag("dev-only"))
        .await;
    server
        .create("production", "flags", &fixtures::bool_flag("prod-only"))
        .await;
    let (_, dev) = server.create_key("sdk", Some("development")).await;
    let (_, prod) = server.create_key("sdk", Some("production")).await;

    for (key, env, flag, other) in [
        (&dev, "development", "dev-only", "prod-only"),
        (&prod, "production", "prod-only", "dev-only"),
    ] {
        let res = send(server.with_key(Method::GET, "/sdk/v1/config", key)).await;
        res.assert_status(StatusCode::OK);
        assert_eq!(res.body["environment"], env);
        let flags: Vec<_> = res.body["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["key"].as_str().unwrap())
            .collect();
        assert_eq!(flags, [flag], "{env} sees only its own flags");
        assert!(!res.text.contains(other));
        // The same through OFREP.
        let res = send(
            server
                .with_key(
                    Method::POST,
                    &format!("/ofrep/v1/evaluate/flags/{other}"),
                    key,
                )
                .json(&json!({"context": {"targetingKey": "u1"}})),
        )
        .await;
        res.assert_status(StatusCode::NOT_FOUND);
        assert_eq!(res.body["errorCode"], "FLAG_NOT_FOUND");
    }

    // The stream too.
    let mut stream = server.sse(&dev, None).await;
    let event = stream.next_config(PATIENCE).await;
    assert_eq!(event.document["environment"], "development");
}

#[tokio::test]
async fn sdk_and_client_keys_cannot_use_the_admin_api() {
    let server = Server::start().await;
    let (_, sdk) = server.create_key("sdk", Some("development")).await;
    let (_, client) = server.create_key("client", Some("development")).await;
    for key in [&sdk, &client] {
        for (method, path) in [
            (Method::GET, "/api/v1/environments"),
            (Method::GET, "/api/v1/environments/development/flags"),
            (Method::GET, "/api/v1/environments/development/config"),
            (Method::GET, "/api/v1/keys"),
        ] {
            send(server.with_key(method, path, key)).await.assert_error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "admin key",
            );
        }
        send(
            server
                .with_key(Method::POST, "/api/v1/environments/development/flags", key)
                .json(&fixtures::bool_flag("sneaky")),
        )
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden", "admin key");
        send(
            server
                .with_key(Method::POST, "/api/v1/keys", key)
                .json(&json!({"name": "escalate", "kind": "admin"})),
        )
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden", "admin key");
    }
    // Nothing was created.
    send(server.admin(Method::GET, "/api/v1/environments/development/flags/sneaky"))
        .await
        .assert_status(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn client_keys_evaluate_through_ofrep_but_never_see_rules() {
    let server = Server::start().await;
    server
        .create("development", "flags", &fixtures::bool_flag("banner"))
        .await;
    let (_, client) = server.create_key("client", Some("development")).await;

    send(server.with_key(Method::GET, "/sdk/v1/config", &client))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden", "OFREP");
    let res = server
        .with_key(Method::GET, "/sdk/v1/stream", &client)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let res = send(
        server
            .with_key(Method::POST, OFREP_BULK, &client)
            .json(&json!({"context": {"targetingKey": "u1"}})),
    )
    .await;
    res.assert_status(StatusCode::OK);
    assert_eq!(res.body["flags"][0]["key"], "banner");
    // Admin keys have no environment: they cannot evaluate.
    send(
        server
            .admin(Method::POST, OFREP_BULK)
            .json(&json!({"context": {"targetingKey": "u1"}})),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden", "SDK or client key");
}

#[tokio::test]
async fn missing_unknown_and_revoked_keys_are_401() {
    let server = Server::start().await;
    let (id, sdk) = server.create_key("sdk", Some("development")).await;

    for path in ["/sdk/v1/config", "/api/v1/environments", "/sdk/v1/stream"] {
        send(server.anon(Method::GET, path)).await.assert_error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "key",
        );
        send(server.with_key(
            Method::GET,
            path,
            "tlr_sdk_0000000000000000000000000000000000000000",
        ))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", "key");
    }
    send(
        server
            .anon(Method::POST, OFREP_BULK)
            .json(&json!({"context": {"targetingKey": "u1"}})),
    )
    .await
    .assert_status(StatusCode::UNAUTHORIZED);
    // `Basic` is not a way to send a key.
    send(
        server
            .anon(Method::GET, "/sdk/v1/config")
            .header("Authorization", format!("Basic {sdk}")),
    )
    .await
    .assert_status(StatusCode::UNAUTHORIZED);

    // Both header forms work.
    send(server.with_key(Method::GET, "/sdk/v1/config", &sdk))
        .await
        .assert_status(StatusCode::OK);
    send(
        server
            .anon(Method::GET, "/sdk/v1/config")
            .header("X-API-Key", &sdk),
    )
    .await
    .assert_status(StatusCode::OK);

    // Revoked: 401 at once; revoking again is 404; a key cannot revoke itself.
    send(server.admin(Method::DELETE, &format!("/api/v1/keys/{id}")))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    send(server.with_key(Method::GET, "/sdk/v1/config", &sdk))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", "key");
    send(server.admin(Method::DELETE, &format!("/api/v1/keys/{id}")))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", &id);
    let keys = send(server.admin(Method::GET, "/api/v1/keys")).await;
    let listed = keys
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .unwrap();
    assert!(listed["revoked_at"].is_string(), "{listed}");
    let admin_id = keys
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    send(server.admin(Method::DELETE, &format!("/api/v1/keys/{admin_id}")))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request", "itself");
}

#[tokio::test]
async fn key_creation_is_validated() {
    let server = Server::start().await;
    let bad = [
        (
            json!({"name": "a", "kind": "admin", "environment": "development"}),
            StatusCode::BAD_REQUEST,
            "environment",
        ),
        (
            json!({"name": "s", "kind": "sdk"}),
            StatusCode::BAD_REQUEST,
            "environment",
        ),
        (
            json!({"name": "s", "kind": "superuser", "environment": "development"}),
            StatusCode::BAD_REQUEST,
            "kind",
        ),
        (
            json!({"name": " ", "kind": "sdk", "environment": "development"}),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            json!({"kind": "sdk", "environment": "development"}),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            json!({"name": "s", "kind": "sdk", "environment": "staging"}),
            StatusCode::NOT_FOUND,
            "staging",
        ),
    ];
    for (body, status, field) in bad {
        let res = send(server.admin(Method::POST, "/api/v1/keys").json(&body)).await;
        assert_eq!(res.status, status, "{body}: {}", res.text);
        assert!(res.text.contains(field), "{body}: {}", res.text);
        assert!(res.body["error"].is_string(), "{}", res.text);
    }
    // A new admin key works as one.
    let (_, admin2) = server.create_key("admin", None).await;
    assert!(admin2.starts_with("tlr_admin_"));
    send(server.with_key(Method::GET, "/api/v1/keys", &admin2))
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn secrets_are_stored_only_as_digests() {
    let mut server = Server::start().await;
    let (_, sdk) = server.create_key("sdk", Some("development")).await;
    let (_, client) = server.create_key("client", Some("production")).await;
    let (_, admin) = server.create_key("admin", None).await;
    // The listing shows no secrets either.
    let listing = send(server.admin(Method::GET, "/api/v1/keys")).await;
    for secret in [&sdk, &client, &admin, &ADMIN_KEY.to_string()] {
        assert!(!listing.text.contains(secret.as_str()));
    }

    // Look at the bytes of every file in the data directory, before and after a clean stop
    // (which checkpoints the WAL into the main file).
    for phase in ["running", "stopped"] {
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(server.data_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                bytes.extend(std::fs::read(&path).unwrap());
            }
        }
        let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
        for secret in [&sdk, &client, &admin, &ADMIN_KEY.to_string()] {
            assert!(
                !contains(secret),
                "{phase}: a secret is stored in plain text"
            );
            // Sanity check that we looked at the right bytes: the digest is there.
            let digest = hex::encode(Sha256::digest(secret.as_bytes()));
            assert!(
                contains(&digest),
                "{phase}: digest of a key not found in the data files"
            );
        }
        if phase == "running" {
            server.stop().await;
        }
    }
}

#[tokio::test]
async fn revoking_a_key_ends_its_open_streams() {
    let server = Server::start_with(&[("TAILOR_SSE_KEEPALIVE_SECS", "1")]).await;
    let (id, sdk) = server.create_key("sdk", Some("development")).await;
    let (_, other) = server.create_key("sdk", Some("development")).await;
    let mut revoked = server.sse(&sdk, None).await;
    let mut kept = server.sse(&other, None).await;
    revoked.next_config(PATIENCE).await;
    kept.next_config(PATIENCE).await;

    send(server.admin(Method::DELETE, &format!("/api/v1/keys/{id}")))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    // The next wake-up (a change or a keep-alive) ends the revoked key's stream.
    let res = server
        .create("development", "flags", &fixtures::bool_flag("after"))
        .await;
    assert!(
        revoked.ends_within(Duration::from_secs(5)).await,
        "a revoked key's stream is still open"
    );
    // Other keys' streams carry on.
    assert_eq!(kept.next_config(PATIENCE).await.revision, res.revision());
}

#[tokio::test]
async fn a_revoked_configured_admin_key_stays_revoked_across_restarts() {
    let mut server = Server::start().await;
    let (_, admin2) = server.create_key("admin", None).await;
    let keys = send(server.admin(Method::GET, "/api/v1/keys")).await;
    let configured = keys
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"].as_str().unwrap().contains("TAILOR_ADMIN_KEY"))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    send(server.with_key(
        Method::DELETE,
        &format!("/api/v1/keys/{configured}"),
        &admin2,
    ))
    .await
    .assert_status(StatusCode::NO_CONTENT);

    // Restarting with the same TAILOR_ADMIN_KEY still starts (SDKs keep being served), and
    // the revoked key stays refused.
    server.restart().await;
    send(server.admin(Method::GET, "/api/v1/environments"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", "key");
    send(server.with_key(Method::GET, "/api/v1/environments", &admin2))
        .await
        .assert_status(StatusCode::OK);
    assert!(server.log().contains("TAILOR_ADMIN_KEY has been revoked"));
}
