//! Traffic simulator: drives the real SDK against a real server with synthetic users whose true
//! conversion rates per segment and variant are known, then prints what Tailor measured next to
//! the truth.
//!
//! ```text
//! cargo run --release -p tailor-server -- serve &        # with TAILOR_ADMIN_KEY set
//! TAILOR_ADMIN_KEY=... cargo run --release -p tailor-examples --example simulate -- 30000 7
//! ```
//! Arguments: number of visitors (default 30,000) and seed (default 1). It works in its own
//! environment, `simulation` (created on first use), whose config it replaces with the
//! simulation's through the import API, so it leaves `development` (and the homepage example's
//! experiment) alone.
//!
//! `cargo run --release -p tailor-examples --example simulate -- learned [periods] [visitors
//! per period] [seed]` runs the learned-personalization scenario instead (see `learned`).

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tailor::Client;
use tailor_examples::simulation::{self, Population, SEGMENTS};

/// The simulator's own environment.
const ENVIRONMENT: &str = "simulation";

async fn call(req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let resp = req.send().await?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("HTTP {status}: {body}");
    }
    Ok(body)
}

/// `simulate learned [periods] [visitors per period] [seed]`: learned personalization, in
/// process with simulated time (update periods of 15 minutes would take hours against a live
/// server): the one engine assigns, the server's attribution counts and the server's optimizer
/// updates the weights, as in the running server.
fn learned(args: &[String]) -> anyhow::Result<()> {
    use tailor_examples::learning::{self, ARMS, CONTEXTS};
    let arg = |i: usize, default: u64| -> anyhow::Result<u64> {
        Ok(args
            .get(i)
            .map(|a| a.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let (periods, visitors, seed) = (arg(0, 12)?, arg(1, 3_000)?, arg(2, 1)?);
    let outcome = learning::run(seed, periods, visitors)?;
    println!("learned personalization: {periods} periods × {visitors} visitors, seed {seed}");
    println!("arms: {}", ARMS.join(", "));
    for (truth, c) in CONTEXTS.iter().zip(&outcome.contexts) {
        let shares: Vec<String> = c
            .best_share
            .iter()
            .map(|s| format!("{:.0}%", s * 100.0))
            .collect();
        println!(
            "\n{} (best arm: {}): share of its traffic per period: {}",
            truth.label,
            ARMS[truth.best()],
            shares.join(" ")
        );
        println!(
            "  conversions expected: policy {:.1}, equal split {:.1} (+{:.1} gained), oracle {:.1} ({:.1} short)",
            c.policy_expected,
            c.equal_expected,
            c.policy_expected - c.equal_expected,
            c.oracle_expected,
            c.oracle_expected - c.policy_expected
        );
        print_lift(&outcome.report, truth.label, c.true_lift);
    }
    println!();
    print_lift(&outcome.report, "pooled", outcome.pooled_true_lift);
    let switches: Vec<String> = outcome
        .switch_share
        .iter()
        .map(|s| format!("{:.1}%", s * 100.0))
        .collect();
    println!(
        "returning users switching content per update: {}",
        switches.join(" ")
    );
    for (context, weights) in &outcome.weights {
        println!("final weights {context}: {weights:?}");
    }
    Ok(())
}

fn print_lift(report: &tailor_server::results::ExperimentReport, label: &str, truth: f64) {
    match tailor_examples::learning::measured_lift(report, label) {
        Some((estimate, lower, upper)) => println!(
            "  {label}: policy lift over generic {estimate:+.4} [{lower:+.4}, {upper:+.4}], true {truth:+.4}{}",
            if (lower..=upper).contains(&truth) { ", covered" } else { ", NOT covered" }
        ),
        None => println!("  {label}: not enough data for a policy lift yet"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("learned") {
        return learned(&args[1..]);
    }
    let url = tailor_examples::server::url();
    tailor_examples::server::wait_until_ready(&url, std::time::Duration::from_secs(120)).await?;
    let admin = std::env::var("TAILOR_ADMIN_KEY").context("set TAILOR_ADMIN_KEY")?;
    let visitors: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(30_000);
    let seed: u64 = std::env::args()
        .nth(2)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1);
    let http = reqwest::Client::new();
    let env = format!("{url}/api/v1/environments/{ENVIRONMENT}");
    let created = http
        .post(format!("{url}/api/v1/environments"))
        .bearer_auth(&admin)
        .json(&json!({ "key": ENVIRONMENT }))
        .send()
        .await
        .with_context(|| format!("no Tailor server at {url} (set TAILOR_URL, or start one)"))?;
    // 409: it exists from an earlier run.
    if !created.status().is_success() && created.status() != reqwest::StatusCode::CONFLICT {
        bail!(
            "creating environment `{ENVIRONMENT}`: HTTP {}: {}",
            created.status(),
            created.text().await.unwrap_or_default()
        );
    }

    call(
        http.post(format!("{env}/import"))
            .bearer_auth(&admin)
            .json(&simulation::config()?),
    )
    .await?;
    let key = call(
        http.post(format!("{url}/api/v1/keys"))
            .bearer_auth(&admin)
            .json(&json!({"name": "simulator", "kind": "sdk", "environment": ENVIRONMENT})),
    )
    .await?;
    let sdk_key = key["secret"]
        .as_str()
        .context("no SDK key returned")?
        .to_string();

    let client = Client::builder(&url, sdk_key)
        .event_capacity(100_000)
        .build()
        .await?;
    let mut population = Population::new(seed);
    for _ in 0..visitors {
        let visitor = population.visitor();
        let detail = client.variant_detail(&visitor.user, simulation::FLAG);
        let personalized = detail.key.as_deref() != Some("generic");
        if population.converts(&visitor, personalized) {
            client.track(&visitor.user, simulation::METRIC, Some(25.0));
        }
    }
    client.close().await?;
    let stats = client.event_stats();
    println!(
        "events: {} delivered, {} dropped",
        stats.delivered, stats.dropped
    );

    let report = call(
        http.get(format!(
            "{env}/experiments/{}/results",
            simulation::EXPERIMENT
        ))
        .bearer_auth(&admin),
    )
    .await?;
    println!(
        "\n{:<10} {:>22} {:>22} {:>10} {:>30} {:>8}",
        "segment",
        "generic true/measured",
        "personal true/measured",
        "true lift",
        "measured lift [95% CI]",
        "covers"
    );
    for truth in SEGMENTS {
        let lift = report["personalization"]["segments"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["segment"] == truth.key)
            .context("segment missing from the results")?;
        let rate = |users: &str, conv: &str| {
            lift[conv].as_f64().unwrap_or(0.0) / lift[users].as_f64().unwrap_or(1.0).max(1.0)
        };
        let abs = &lift["comparison"]["absolute"];
        let (est, lo, hi) = (
            abs["estimate"].as_f64(),
            abs["ci"]["lower"].as_f64(),
            abs["ci"]["upper"].as_f64(),
        );
        let covers =
            matches!((lo, hi), (Some(l), Some(h)) if l <= truth.lift() && truth.lift() <= h);
        println!(
            "{:<10} {:>10.4}/{:<11.4} {:>10.4}/{:<11.4} {:>10.4} {:>9.4} [{:.4}, {:.4}] {:>8}",
            truth.key,
            truth.generic_rate,
            rate("generic_users", "generic_converted"),
            truth.personalized_rate,
            rate("personalized_users", "personalized_converted"),
            truth.lift(),
            est.unwrap_or(f64::NAN),
            lo.unwrap_or(f64::NAN),
            hi.unwrap_or(f64::NAN),
            if covers { "yes" } else { "no" }
        );
    }
    println!("\nwarnings: {}", report["data_quality"]["warnings"]);
    // And learned personalization, in process (see `learned`): 12 periods of a tenth of the
    // visitors each.
    println!();
    learned(&[
        "12".into(),
        (visitors / 10).max(1).to_string(),
        seed.to_string(),
    ])
}
