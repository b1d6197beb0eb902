//! SDK delivery: `/sdk/v1/config` (strong ETag, 304, gzip) and `/sdk/v1/stream` (server-sent
//! events: push on change, resume with `Last-Event-ID`, keep-alives).

use std::io::Read;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::{fixtures, raw_client, send, Server, PATIENCE};

#[tokio::test]
async fn config_has_a_strong_etag_and_answers_304() {
    let server = Server::start().await;
    let (_, sdk) = server.create_key("sdk", Some("development")).await;
    server
        .create("development", "flags", &fixtures::bool_flag("banner"))
        .await;

    let first = send(server.with_key(Method::GET, "/sdk/v1/config", &sdk)).await;
    first.assert_status(StatusCode::OK);
    let etag = first.etag();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong, quoted ETag: {etag}"
    );
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.body["environment"], "development");
    assert_eq!(first.body["revision"], first.revision());
    assert_eq!(first.body["flags"][0]["key"], "banner");

    // Unchanged: 304 with no body, for the exact tag, a list containing it, and `*`.
    for tag in [etag.clone(), format!("\"nope\", {etag}"), "*".to_string()] {
        let res = send(
            server
                .with_key(Method::GET, "/sdk/v1/config", &sdk)
                .header("If-None-Match", &tag),
        )
        .await;
        res.assert_status(StatusCode::NOT_MODIFIED);
        assert!(res.text.is_empty());
        assert_eq!(res.etag(), etag);
    }

    // Changed: 200 with a new tag; the old one no longer matches.
    server
        .create("development", "flags", &fixtures::bool_flag("second"))
        .await;
    let res = send(
        server
            .with_key(Method::GET, "/sdk/v1/config", &sdk)
            .header("If-None-Match", &etag),
    )
    .await;
    res.assert_status(StatusCode::OK);
    assert_ne!(res.etag(), etag);
    assert_eq!(res.revision(), first.revision() + 1);
    assert_eq!(res.body["flags"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn config_is_gzipped_when_asked() {
    let server = Server::start().await;
    let (_, sdk) = server.create_key("sdk", Some("development")).await;
    for i in 0..5 {
        server
            .create(
                "development",
                "flags",
                &fixtures::split_flag(&format!("flag-{i}"), 5000),
            )
            .await;
    }
    let raw = raw_client();
    let url = server.url("/sdk/v1/config");

    let plain = raw.get(&url).bearer_auth(&sdk).send().await.unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    assert!(plain.headers().get("content-encoding").is_none());
    let etag = plain.headers()["etag"].to_str().unwrap().to_string();
    let plain_bytes = plain.bytes().await.unwrap();
    let plain_json: Value = serde_json::from_slice(&plain_bytes).unwrap();

    let gz = raw
        .get(&url)
        .bearer_auth(&sdk)
        .header("Accept-Encoding", "br;q=1.0, gzip;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.status(), StatusCode::OK);
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert_eq!(
        gz.headers()["etag"].to_str().unwrap(),
        etag,
        "one ETag for both encodings"
    );
    assert!(gz.headers()["vary"]
        .to_str()
        .unwrap()
        .contains("Accept-Encoding"));
    let gz_bytes = gz.bytes().await.unwrap();
    assert!(gz_bytes.len() < plain_bytes.len(), "gzip is smaller");
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&gz_bytes[..])
        .read_to_end(&mut decoded)
        .expect("valid gzip");
    assert_eq!(decoded, plain_bytes, "gzip decodes to the identical bytes");
    let decoded_json: Value = serde_json::from_slice(&decoded).unwrap();
    assert_eq!(decoded_json, plain_json);

    // `gzip;q=0` refuses gzip.
    let refused = raw
        .get(&url)
        .bearer_auth(&sdk)
        .header("Accept-Encoding", "gzip;q=0")
        .send()
        .await
        .unwrap();
    assert!(refused.headers().get("content-encoding").is_none());

    // 304 applies to gzip requests too.
    let res = raw
        .get(&url)
        .bearer_auth(&sdk)
        .header("Accept-Encoding", "gzip")
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn a_change_reaches_an_open_stream() {
    let server = Server::start().await;
    let (_, sdk) = server.create_key("sdk", Some("development")).await;
    let mut stream = server.sse(&sdk, None).await;

    // The first event is the current config.
    let current = server.revision("development").await;
    let first = stream.next_config(PATIENCE).await;
    assert_eq!(first.revision, current);
    assert_eq!(first.document["revision"], current);
    assert_eq!(first.document["environment"], "development");

    // Each change arrives as a new event with the whole new document.
    for i in 0..3 {
        let started = Instant::now();
        let res = server
            .create(
                "development",
                "flags",
                &fixtures::bool_flag(&format!("flag-{i}")),
            )
            .await;
        // The design promises "within a second"; waiting up to 5 s is the correctness bound
        // (a loaded CI machine must not make this flaky), the latency is reported.
        let event = stream.next_config(Duration::from_secs(5)).await;
        let latency = started.elapsed();
        eprintln!("SSE push latency (write to event): {latency:?}");
        assert_eq!(event.revision, res.revision());
        assert_eq!(event.document["revision"], res.revision());
        assert_eq!(event.document["flags"].as_array().unwrap().len(), i + 1);
    }

    // Other environments' changes are not sent; the next event is development's.
    server
        .create("production", "flags", &fixtures::bool_flag("prod-only"))
        .await;
    let res = server
        .create("development", "flags", &fixtures::bool_flag("dev-again"))
        .await;
    let event = stream.next_config(PATIENCE).await;
    assert_eq!(event.revision, res.revision());
    assert_eq!(event.document["environment"], "development");
}

#[tokio::test]
async fn resuming_with_last_event_id() {
    let server = Server::start().await;
    let (_, sdk) = server.create_key("sdk", Some("development")).await;
    server
        .create("development", "flags", &fixtures::bool_flag("a"))
        .await;
    let current = server.revision("development").await;

    // Up to date: no repeat of the current config. The first config event is the next change.
    let mut stream = server.sse(&sdk, Some(&current.to_string())).await;
    let first = stream.next_frame(PATIENCE).await.expect("a first frame");
    assert_eq!(
        first.retry,
        Some(1000),
        "the stream opens with a retry hint: {first:?}"
    );
    assert_eq!(first.event, None, "{first:?}");
    let res = server
        .create("development", "flags", &fixtures::bool_flag("b"))
        .await;
    let event = stream.next_config(PATIENCE).await;
    assert_eq!(
        event.revision,
        res.revision(),
        "no duplicate of revision {current}"
    );
    drop(stream);

    // Behind: the current config at once.
    let current = res.revision();
    let mut stream = server.sse(&sdk, Some(&(current - 2).to_string())).await;
    let event = stream.next_config(PATIENCE).await;
    assert_eq!(event.revision, current);
    assert_eq!(event.document["flags"].as_array().unwrap().len(), 2);

    // Garbage ids are treated as "no id": the current config.
    let mut stream = server.sse(&sdk, Some("not-a-number")).await;
    assert_eq!(stream.next_config(PATIENCE).await.revision, current);
}

#[tokio::test]
async fn idle_streams_get_keep_alives() {
    let server = Server::start_with(&[("TAILOR_SSE_KEEPALIVE_SECS", "1")]).await;
    let (_, sdk) = server.create_key("sdk", Some("development")).await;
    let mut stream = server.sse(&sdk, None).await;
    stream.next_config(PATIENCE).await;
    for _ in 0..2 {
        let started = Instant::now();
        let frame = stream
            .next_frame(Duration::from_secs(5))
            .await
            .expect("a keep-alive within 5 s");
        assert_eq!(frame.comments, ["keep-alive"], "{frame:?}");
        assert!(frame.event.is_none() && frame.data.is_none());
        eprintln!("keep-alive after {:?}", started.elapsed());
    }
    // The stream still delivers changes afterwards.
    let res = server
        .create("development", "flags", &fixtures::bool_flag("late"))
        .await;
    assert_eq!(stream.next_config(PATIENCE).await.revision, res.revision());
}

#[tokio::test]
async fn many_quick_changes_end_at_the_newest_revision() {
    let server = Server::start().await;
    let (_, sdk) = server.create_key("sdk", Some("development")).await;
    let mut stream = server.sse(&sdk, None).await;
    let mut last = stream.next_config(PATIENCE).await.revision;
    let mut newest = 0;
    for i in 0..40 {
        let res = server
            .create(
                "development",
                "flags",
                &fixtures::bool_flag(&format!("f{i}")),
            )
            .await;
        newest = res.revision();
    }
    // Revisions only go up, and the stream reaches the newest (possibly skipping some: each
    // event is a whole config).
    while last < newest {
        let event = stream.next_config(PATIENCE).await;
        assert!(
            event.revision > last,
            "revision went from {last} to {}",
            event.revision
        );
        last = event.revision;
    }
    assert_eq!(last, newest);
}
