//! A personalized homepage, end to end: segments, rule-based personalization with a generic
//! holdout, exposures and conversions.
//!
//! With a server running (`cargo run --release -p tailor-server -- serve`), set its admin key:
//! ```text
//! TAILOR_ADMIN_KEY=tlr_admin_... cargo run -p tailor-examples --example homepage
//! ```
//! The example configures the `development` environment through the admin API (segments
//! `beginners` and `yoga-buyers`, experiment `homepage-personalization`, flag `homepage`),
//! creates an SDK key, then serves 2,000 simulated visitors with the SDK and records purchases.

use serde_json::{json, Value};
use tailor::{Client, User};

const ENV: &str = "development";

/// Creates or replaces a resource in the example's environment.
async fn upsert(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    plural: &str,
    body: Value,
) -> anyhow::Result<()> {
    tailor_examples::admin::upsert(http, url, key, ENV, plural, body).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (url, admin_key) = tailor_examples::server::ready_with_admin_key().await?;
    let http = reqwest::Client::new();

    upsert(
        &http,
        &url,
        &admin_key,
        "segments",
        json!({
            "key": "beginners",
            "conditions": {"attribute": "lifecycle", "op": "eq", "values": ["new"]}
        }),
    )
    .await?;
    upsert(&http, &url, &admin_key, "segments", json!({
        "key": "yoga-buyers",
        "conditions": {"attribute": "purchased_categories", "op": "contains_any", "values": ["yoga-books"]}
    })).await?;
    upsert(
        &http,
        &url,
        &admin_key,
        "experiments",
        json!({
            "key": "homepage-personalization", "status": "running", "primary_metric": "purchase"
        }),
    )
    .await?;
    upsert(
        &http,
        &url,
        &admin_key,
        "flags",
        json!({
            "key": "homepage",
            "type": "json",
            "variants": [
                {"key": "generic", "value": {"hero": "Welcome to our shop"}},
                {"key": "beginner-onboarding", "value": {"hero": "New here? Start with our guide"}},
                {"key": "yoga-mats", "value": {"hero": "Yoga mats for your practice"}}
            ],
            "default_variant": "generic",
            "rules": [
                {"when": {"segment": "beginners"}, "variant": "beginner-onboarding",
                 "holdout": {"basis_points": 1000}, "experiment": "homepage-personalization"},
                {"when": {"segment": "yoga-buyers"}, "variant": "yoga-mats",
                 "holdout": {"basis_points": 1000}, "experiment": "homepage-personalization"}
            ]
        }),
    )
    .await?;
    let sdk_key =
        tailor_examples::server::create_sdk_key(&url, &admin_key, ENV, "homepage example").await?;

    println!("SDK key for environment `{ENV}` (shown once; the quickstart needs it):");
    println!("  export TAILOR_SDK_KEY={sdk_key}");
    let client = Client::builder(&url, sdk_key.as_str()).build().await?;
    let mut shown = std::collections::BTreeMap::<String, u32>::new();
    for i in 0..2_000u32 {
        let user = match i % 3 {
            0 => User::new(format!("visitor-{i}")).with("lifecycle", "new"),
            1 => User::new(format!("visitor-{i}"))
                .with("lifecycle", "active")
                .with("purchased_categories", ["yoga-books"]),
            _ => User::new(format!("visitor-{i}")).with("lifecycle", "active"),
        };
        let homepage = client.variant(&user, "homepage");
        let key = homepage.key().unwrap_or("none").to_string();
        // Personalized content converts a little better in this simulation.
        let converts = match key.as_str() {
            "generic" => i % 20 == 0,
            _ => i % 14 == 0,
        };
        *shown.entry(key).or_default() += 1;
        if converts {
            client.track(&user, "purchase", Some(29.99));
        }
    }
    client.close().await?;
    println!("homepage variants shown: {shown:?}");
    println!("events: {:?}", client.event_stats());
    Ok(())
}
