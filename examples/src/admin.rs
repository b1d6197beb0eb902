//! The admin API calls the examples make: send a request, create-or-replace a resource.

use anyhow::bail;
use serde_json::Value;

/// Sends an admin request (with `If-Match: *`, so updates need no ETag); fails with the
/// server's answer on an error status.
pub async fn request(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let resp = http
        .request(method, format!("{url}{path}"))
        .bearer_auth(key)
        .header("If-Match", "*")
        .json(&body)
        .send()
        .await?;
    let status = resp.status();
    let value: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{path}: HTTP {status}: {value}");
    }
    Ok(value)
}

/// Creates a resource (`plural`: `segments`, `flags`, `traits`, …) in `environment`, or
/// replaces it when it exists.
pub async fn upsert(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    environment: &str,
    plural: &str,
    body: Value,
) -> anyhow::Result<()> {
    let id = body["key"].as_str().unwrap_or_default().to_string();
    let path = format!("/api/v1/environments/{environment}/{plural}");
    let created = request(http, url, key, reqwest::Method::POST, &path, body.clone()).await;
    if created.is_err() {
        request(
            http,
            url,
            key,
            reqwest::Method::PUT,
            &format!("{path}/{id}"),
            body,
        )
        .await?;
    }
    Ok(())
}
