//! Operations endpoints, CORS and unknown routes.

use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::support::{eventually, fixtures, send, Server, PATIENCE};

fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
}

#[tokio::test]
async fn health_readiness_and_openapi() {
    let server = Server::start().await;
    let res = send(server.anon(Method::GET, "/healthz")).await;
    res.assert_status(StatusCode::OK);
    assert_eq!(res.body["status"], "ok");
    let res = send(server.anon(Method::GET, "/readyz")).await;
    res.assert_status(StatusCode::OK);
    assert_eq!(res.body["status"], "ready");

    let res = send(server.anon(Method::GET, "/openapi.yaml")).await;
    res.assert_status(StatusCode::OK);
    assert!(res.header("content-type").unwrap().contains("yaml"));
    assert_eq!(res.text, tailor_server::routes::ops::OPENAPI_YAML);
    assert!(res.text.starts_with("openapi: 3.1"));
}

#[tokio::test]
async fn metrics_show_revisions_and_sse_clients() {
    let server = Server::start_with(&[("TAILOR_SSE_KEEPALIVE_SECS", "1")]).await;
    let (_, sdk) = server.create_key("sdk", Some("development")).await;
    let metrics = || async { send(server.anon(Method::GET, "/metrics")).await.text };

    let text = metrics().await;
    assert_eq!(
        metric(&text, "tailor_config_revision{environment=\"development\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "tailor_config_revision{environment=\"production\"}"),
        Some(1.0)
    );
    assert_eq!(metric(&text, "tailor_sse_clients"), Some(0.0), "{text}");

    server
        .create("development", "flags", &fixtures::bool_flag("banner"))
        .await;
    let text = metrics().await;
    assert_eq!(
        metric(&text, "tailor_config_revision{environment=\"development\"}"),
        Some(2.0)
    );

    // Open streams are counted, and no longer once closed.
    let mut a = server.sse(&sdk, None).await;
    let mut b = server.sse(&sdk, None).await;
    a.next_config(PATIENCE).await;
    b.next_config(PATIENCE).await;
    assert_eq!(metric(&metrics().await, "tailor_sse_clients"), Some(2.0));
    drop(a);
    drop(b);
    eventually(
        "the SSE gauge to drop to 0",
        Duration::from_secs(10),
        || async { (metric(&metrics().await, "tailor_sse_clients") == Some(0.0)).then_some(()) },
    )
    .await;

    // Requests are counted by route pattern (bounded labels), not by raw path.
    let text = metrics().await;
    assert!(text.contains("tailor_http_requests_total"), "{text}");
    assert!(
        text.contains("route=\"/api/v1/environments/{env}/flags\""),
        "{text}"
    );
    assert!(
        !text.contains("route=\"/api/v1/environments/development/flags\""),
        "{text}"
    );
}

#[tokio::test]
async fn cors_preflight_for_sdk_and_ofrep_but_not_admin() {
    let server = Server::start().await;
    let origin = "https://shop.example";
    let preflight = |path: &str, method: &str| {
        send(
            server
                .anon(Method::OPTIONS, path)
                .header("Origin", origin)
                .header("Access-Control-Request-Method", method)
                .header(
                    "Access-Control-Request-Headers",
                    "authorization, content-type",
                ),
        )
    };
    for (path, method) in [
        ("/sdk/v1/config", "GET"),
        ("/sdk/v1/stream", "GET"),
        ("/ofrep/v1/evaluate/flags", "POST"),
        ("/ofrep/v1/evaluate/flags/banner", "POST"),
    ] {
        let res = preflight(path, method).await;
        assert!(
            res.status.is_success(),
            "{path}: {} {}",
            res.status,
            res.text
        );
        let allowed = res
            .header("access-control-allow-origin")
            .unwrap_or_default();
        assert!(
            allowed == "*" || allowed == origin,
            "{path}: allow-origin {allowed:?}"
        );
        let methods = res
            .header("access-control-allow-methods")
            .unwrap_or_default();
        assert!(
            methods.contains(method),
            "{path}: allow-methods {methods:?}"
        );
        let headers = res
            .header("access-control-allow-headers")
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(
            headers.contains("authorization"),
            "{path}: allow-headers {headers:?}"
        );
    }
    // A real cross-origin request sees the ETag.
    let (_, sdk) = server.create_key("sdk", Some("development")).await;
    let res = send(
        server
            .with_key(Method::GET, "/sdk/v1/config", &sdk)
            .header("Origin", origin),
    )
    .await;
    res.assert_status(StatusCode::OK);
    assert!(res.header("access-control-allow-origin").is_some());
    let exposed = res
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(exposed.contains("etag"), "expose-headers {exposed:?}");

    // The admin API allows no cross-origin calls.
    for path in [
        "/api/v1/environments",
        "/api/v1/environments/development/flags",
    ] {
        let res = preflight(path, "POST").await;
        assert!(!res.status.is_success(), "{path}: preflight allowed");
        assert!(
            res.header("access-control-allow-origin").is_none(),
            "{path}"
        );
    }
    let res = send(
        server
            .admin(Method::GET, "/api/v1/environments")
            .header("Origin", origin),
    )
    .await;
    res.assert_status(StatusCode::OK);
    assert!(res.header("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn unknown_routes_are_json_404() {
    let server = Server::start().await;
    for (method, path) in [
        (Method::GET, "/nope"),
        (Method::GET, "/api/v1/nope"),
        (
            Method::PATCH,
            "/api/v1/environments/development/flags/banner",
        ),
        (Method::GET, "/sdk/v1/nope"),
        (Method::GET, "/ofrep/v1/evaluate/flags"),
    ] {
        let res = send(server.admin(method.clone(), path)).await;
        res.assert_error(StatusCode::NOT_FOUND, "not_found", "no such route");
    }
}

/// A second server on a data directory in use refuses to start, naming the directory and the
/// holder, and the first keeps serving and accepting writes (before the lock, the second started
/// and the two diverged: each made revisions the other never published).
#[tokio::test]
async fn a_second_server_on_the_same_data_directory_refuses_to_start() {
    let server = Server::start().await;
    let stderr_path = server.data_dir().with_file_name("second.log");
    let mut second = std::process::Command::new(crate::support::server_binary())
        .arg("serve")
        .env("TAILOR_BIND", "127.0.0.1:0")
        .env("TAILOR_DATA_DIR", server.data_dir())
        .env("TAILOR_ADMIN_KEY", crate::support::ADMIN_KEY)
        .stdin(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            second.kill().unwrap();
            second.wait().unwrap();
            panic!("the second server on the same data directory kept running");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(!status.success(), "the second server started:\n{stderr}");
    let directory = server.data_dir().display().to_string();
    assert!(
        stderr.contains(&format!("data directory {directory} is in use by process ")),
        "the refusal names the directory and the holder:\n{stderr}"
    );

    server
        .create("development", "flags", &fixtures::bool_flag("still-mine"))
        .await
        .assert_status(StatusCode::CREATED);
}
