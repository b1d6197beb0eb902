//! Lifecycle segments from what users do: computed traits (signup age, last visit, purchases in
//! the last 30 days) turn events into `new`, `active`, `lapsed` and `repeat-buyers` segments, and
//! a banner tailored to each, evaluated locally by the SDK.
//!
//! With a server running (`cargo run --release -p tailor-server -- serve`):
//! ```text
//! TAILOR_ADMIN_KEY=tlr_admin_... cargo run -p tailor-examples --example lifecycle
//! TAILOR_ADMIN_KEY=tlr_admin_... cargo run -p tailor-examples --example lifecycle -- show cy
//! ```
//! The first configures the `development` environment (traits, segments, flag
//! `lifecycle-banner`), sends three users' history (two of them backdated), loads each user's
//! profile into the SDK and prints what they see; then `cy` buys twice and sees the loyalty
//! banner at once (read-your-writes). `show <user>` loads one user's profile in a new process
//! and prints their banner and traits.

use serde_json::{json, Value};
use tailor::{Client, User};
use tailor_examples::admin::upsert;

const ENV: &str = "development";
const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn configure(http: &reqwest::Client, url: &str, admin_key: &str) -> anyhow::Result<()> {
    for t in [
        json!({"key": "purchases_30d", "events": ["purchase"], "aggregate": "count", "window_days": 30}),
        json!({"key": "lifetime_value", "events": ["purchase"], "aggregate": "sum"}),
        json!({"key": "days_since_last_visit", "events": ["page_view", "purchase"], "aggregate": "days_since_last"}),
        json!({"key": "days_since_signup", "events": ["signup"], "aggregate": "days_since_first"}),
    ] {
        upsert(http, url, admin_key, ENV, "traits", t).await?;
    }
    for s in [
        json!({"key": "new-users", "conditions": {"trait": "days_since_signup", "op": "lt", "values": [7]}}),
        json!({"key": "active", "conditions": {"trait": "days_since_last_visit", "op": "lte", "values": [7]}}),
        json!({"key": "lapsed", "conditions": {"trait": "days_since_last_visit", "op": "gt", "values": [30]}}),
        json!({"key": "repeat-buyers", "conditions": {"trait": "purchases_30d", "op": "gte", "values": [2]}}),
    ] {
        upsert(http, url, admin_key, ENV, "segments", s).await?;
    }
    upsert(
        http,
        url,
        admin_key,
        ENV,
        "flags",
        json!({
            "key": "lifecycle-banner",
            "type": "string",
            "variants": [
                {"key": "generic", "value": "Welcome back"},
                {"key": "welcome", "value": "New here? Take the tour"},
                {"key": "win-back", "value": "We missed you: 15% off this week"},
                {"key": "loyalty", "value": "Thanks for coming back: free shipping"}
            ],
            "default_variant": "generic",
            "rules": [
                {"when": {"segment": "repeat-buyers"}, "variant": "loyalty"},
                {"when": {"segment": "new-users"}, "variant": "welcome"},
                {"when": {"segment": "lapsed"}, "variant": "win-back"}
            ]
        }),
    )
    .await
}

/// Sends past events (the SDK's `track` stamps events with the current time).
async fn send_history(
    http: &reqwest::Client,
    url: &str,
    sdk_key: &str,
    events: &[(&str, &str, i64)],
) -> anyhow::Result<()> {
    let events: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(i, (user, event, days_ago))| {
            json!({"type": "conversion", "id": format!("lifecycle-{user}-{event}-{i}-{}", now_ms()),
                   "timestamp": now_ms() - days_ago * DAY_MS, "user_key": user, "event": event})
        })
        .collect();
    let resp = http
        .post(format!("{url}/sdk/v1/events"))
        .bearer_auth(sdk_key)
        .json(&json!({"events": events}))
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "sending events: HTTP {}: {}",
        resp.status(),
        resp.text().await.unwrap_or_default()
    );
    Ok(())
}

/// Loads the user's profile and prints their banner and traits.
async fn show(client: &Client, key: &str) -> anyhow::Result<()> {
    let user = User::new(key);
    let profile = client.load_profile(&user).await?;
    print_user(client, &user, &profile);
    Ok(())
}

fn print_user(client: &Client, user: &User, profile: &tailor::Profile) {
    let banner = client.variant(user, "lifecycle-banner");
    let traits: Vec<String> = profile
        .traits()
        .map(|(k, v)| match v {
            tailor::TraitValue::Number(n) => format!("{k}={n}"),
            tailor::TraitValue::Datetime(ms) => format!("{k}={ms}"),
        })
        .collect();
    println!(
        "{}: {} ({}) [{}]",
        user.key(),
        banner.key().unwrap_or("none"),
        banner.value(),
        traits.join(", ")
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (url, admin_key) = tailor_examples::server::ready_with_admin_key().await?;
    let http = reqwest::Client::new();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sdk_key = match std::env::var("TAILOR_SDK_KEY") {
        Ok(key) => key,
        Err(_) => {
            tailor_examples::server::create_sdk_key(&url, &admin_key, ENV, "lifecycle example")
                .await?
        }
    };

    if let [command, user] = args.as_slice() {
        anyhow::ensure!(command == "show", "usage: lifecycle [show <user-key>]");
        let client = Client::builder(&url, sdk_key.as_str()).build().await?;
        show(&client, user).await?;
        client.close().await?;
        return Ok(());
    }
    anyhow::ensure!(args.is_empty(), "usage: lifecycle [show <user-key>]");

    configure(&http, &url, &admin_key).await?;
    send_history(
        &http,
        &url,
        &sdk_key,
        &[
            ("ada", "signup", 0),
            ("bo", "signup", 90),
            ("bo", "page_view", 45),
            ("cy", "signup", 60),
            ("cy", "page_view", 2),
        ],
    )
    .await?;
    let client = Client::builder(&url, sdk_key.as_str()).build().await?;
    for key in ["ada", "bo", "cy"] {
        show(&client, key).await?;
    }
    // Read-your-writes: two purchases through this client change cy's banner at once, before
    // the server has even received them.
    let cy = User::new("cy");
    client.track(&cy, "purchase", Some(29.99));
    client.track(&cy, "purchase", Some(12.50));
    if let Some(profile) = client.profile(&cy) {
        print_user(&client, &cy, &profile);
    }
    client.close().await?;
    Ok(())
}
