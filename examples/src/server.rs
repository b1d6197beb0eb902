//! Reaching the Tailor server the examples talk to: its URL, waiting until it is ready, and an
//! SDK key.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// The server's URL: `TAILOR_URL`, by default the server's default address.
pub fn url() -> String {
    std::env::var("TAILOR_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into())
}

/// Waits until the server at `url` answers `/readyz` (it may still be compiling or starting when
/// an example is started right after it), for at most `patience` (`TAILOR_WAIT_SECS` overrides
/// it).
pub async fn wait_until_ready(url: &str, patience: Duration) -> anyhow::Result<()> {
    let patience = std::env::var("TAILOR_WAIT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(patience, Duration::from_secs);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + patience;
    let mut said = false;
    loop {
        match http.get(format!("{url}/readyz")).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(_) | Err(_) if Instant::now() < deadline => {
                if !said {
                    eprintln!("waiting for the Tailor server at {url} to be ready …");
                    said = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Ok(r) => bail!(
                "the Tailor server at {url} is not ready: HTTP {}",
                r.status()
            ),
            Err(e) => bail!(
                "no Tailor server at {url} ({e}). Start one (`cargo run --release -p \
                 tailor-server -- serve`) or set TAILOR_URL"
            ),
        }
    }
}

/// The server's URL once it is ready, and the admin key from `TAILOR_ADMIN_KEY`: how the
/// examples that configure the server start.
pub async fn ready_with_admin_key() -> anyhow::Result<(String, String)> {
    let url = url();
    wait_until_ready(&url, Duration::from_secs(600)).await?;
    let admin_key = std::env::var("TAILOR_ADMIN_KEY")
        .context("set TAILOR_ADMIN_KEY to the server's admin key")?;
    Ok((url, admin_key))
}

/// Creates an SDK key for `environment` with the admin key; returns its secret.
pub async fn create_sdk_key(
    url: &str,
    admin_key: &str,
    environment: &str,
    name: &str,
) -> anyhow::Result<String> {
    let resp = reqwest::Client::new()
        .post(format!("{url}/api/v1/keys"))
        .bearer_auth(admin_key)
        .json(&json!({"name": name, "kind": "sdk", "environment": environment}))
        .send()
        .await
        .with_context(|| format!("creating an SDK key at {url}"))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("creating an SDK key: HTTP {status}: {body}");
    }
    body["secret"]
        .as_str()
        .map(str::to_string)
        .context("no SDK key in the response")
}
