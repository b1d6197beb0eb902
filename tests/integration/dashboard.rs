//! The web dashboard against a real server: in headless Chromium ([`crate::browser`]) sign in,
//! read an experiment seeded with known counts and check every number shown (users,
//! conversions, rates, lifts with their intervals, p-values, chances to win, SRM, not enough
//! data), sort by lift, take screenshots at laptop and phone widths; change a rollout with its
//! confirmation and see the new revision reach an SDK and the audit log; pause and roll back.
//! Over plain HTTP: nothing is reachable without a session, forms need their CSRF token and
//! this site's origin, cookies carry the right attributes. Profiles: segment sizes and computed
//! traits on the segments page, and a user lookup (traits, lists, segments, every flag's answer)
//! for a user seeded with purchases, an unknown user and an empty key.
//!
//! Expected statistics were computed independently with scipy (Welch's t with the delta
//! method for the relative lift, as gbstats does) for the seeded counts:
//!
//! | scope, arm vs control               | lift   | 95% interval        | p     | chance |
//! |-------------------------------------|--------|---------------------|-------|--------|
//! | overall, beginner-onboarding        | +73.3% | [+34.8%, +111.9%]   | <.001 | >99.9% |
//! | overall, loyalty-offer              | +6.7%  | [−21.1%, +34.5%]    | 0.638 | 68.1%  |
//! | beginners, beginner-onboarding      | +30.0% | [−1.9%, +61.9%]     | 0.066 | 96.7%  |
//! | lapsed, loyalty-offer               | +60.0% | [+5.2%, +114.8%]    | 0.032 | 98.4%  |
//! | all segments, tailored vs generic   | +40.0% | [+12.0%, +68.0%]    | 0.005 | 99.7%  |

use std::time::Duration;

use reqwest::header::{HeaderMap, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::browser::Browser;
use crate::support::{eventually, fixtures, send, Server, ADMIN_KEY};

const ENV: &str = "development";
const EXPERIMENT: &str = "homepage-personalization";
const HOUR: i64 = 3_600_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Segments, the personalization experiment on `homepage`, an A/B test whose traffic is split
/// badly (`checkout-test`) and one without any data (`pricing-test`).
async fn seed_config(server: &Server) {
    for (key, stage) in [("beginners", "new"), ("lapsed", "lapsed")] {
        server
            .create(
                ENV,
                "segments",
                &json!({"key": key, "name": format!("Lifecycle: {stage}"),
                        "conditions": {"attribute": "lifecycle", "op": "eq", "values": [stage]}}),
            )
            .await;
    }
    let mut experiment = fixtures::experiment(EXPERIMENT);
    experiment["name"] = json!("Homepage personalization");
    experiment["hypothesis"] = json!("Tailored heroes convert better than the generic one");
    server.create(ENV, "experiments", &experiment).await;
    server
        .create(
            ENV,
            "flags",
            &json!({
                "key": "homepage",
                "type": "string",
                "variants": [
                    {"key": "generic", "value": "Welcome"},
                    {"key": "beginner-onboarding", "value": "New here? Start with our guide"},
                    {"key": "loyalty-offer", "value": "Welcome back: 10% off"},
                ],
                "default_variant": "generic",
                "rules": [
                    {"id": "beginners", "when": {"segment": "beginners"}, "variant": "beginner-onboarding",
                     "holdout": {"basis_points": 5000}, "experiment": EXPERIMENT},
                    {"id": "lapsed", "when": {"segment": "lapsed"}, "variant": "loyalty-offer",
                     "holdout": {"basis_points": 5000}, "experiment": EXPERIMENT},
                ],
            }),
        )
        .await;
    for (experiment, flag) in [
        ("checkout-test", "checkout-button"),
        ("pricing-test", "pricing"),
    ] {
        server
            .create(ENV, "experiments", &fixtures::experiment(experiment))
            .await;
        let mut f = fixtures::split_flag(flag, 10_000);
        f["rules"][0]["experiment"] = json!(experiment);
        server.create(ENV, "flags", &f).await;
    }
}

struct Arm {
    experiment: &'static str,
    flag: &'static str,
    rule: usize,
    segment: Option<&'static str>,
    variant: &'static str,
    personalized: bool,
    users: usize,
    converted: usize,
}

/// Exposures spread over the last 48 hours (so the chart has a curve) and conversions an hour
/// after exposure, for users `<experiment>-<variant>-<segment>-<i>`.
fn events(arms: &[Arm]) -> Vec<Value> {
    let now = now_ms();
    let start = now - 48 * HOUR;
    let mut out = Vec::new();
    for arm in arms {
        for i in 0..arm.users {
            let user = format!(
                "{}-{}-{}-{i}",
                arm.experiment,
                arm.variant,
                arm.segment.unwrap_or("all")
            );
            let at = start + (i as i64 * 46 * HOUR) / arm.users as i64;
            let mut exposure = json!({
                "type": "exposure", "id": format!("x-{user}"), "timestamp": at, "user_key": user,
                "flag": arm.flag, "variant": arm.variant, "experiment": arm.experiment,
                "rule": arm.rule, "personalized": arm.personalized, "revision": 2, "spec_version": 1,
            });
            if let Some(s) = arm.segment {
                exposure["segment"] = json!(s);
            }
            out.push(exposure);
            // Conversions spread evenly over the users, so the cumulative rate is steady.
            if (i * arm.converted) / arm.users != ((i + 1) * arm.converted) / arm.users {
                out.push(json!({"type": "conversion", "id": format!("c-{user}"),
                    "timestamp": at + HOUR, "user_key": user, "event": "purchase", "value": 20.0}));
            }
        }
    }
    out
}

async fn seed_events(server: &Server) {
    let (_, sdk) = server.create_key("sdk", Some(ENV)).await;
    let p = |segment, rule, variant, personalized, users, converted| Arm {
        experiment: EXPERIMENT,
        flag: "homepage",
        rule,
        segment: Some(segment),
        variant,
        personalized,
        users,
        converted,
    };
    let ab = |variant, users, converted| Arm {
        experiment: "checkout-test",
        flag: "checkout-button",
        rule: 0,
        segment: None,
        variant,
        personalized: true,
        users,
        converted,
    };
    let all = events(&[
        p("beginners", 0, "generic", false, 1000, 100),
        p("beginners", 0, "beginner-onboarding", true, 1000, 130),
        p("lapsed", 1, "generic", false, 1000, 50),
        p("lapsed", 1, "loyalty-offer", true, 1000, 80),
        ab("control", 1000, 100),
        ab("treatment", 800, 96),
    ]);
    for batch in all.chunks(1000) {
        let res = send(
            server
                .with_key(Method::POST, "/sdk/v1/events", &sdk)
                .json(&json!({"events": batch})),
        )
        .await;
        res.assert_status(StatusCode::OK);
        assert_eq!(
            res.body["accepted"].as_u64(),
            Some(batch.len() as u64),
            "{}",
            res.text
        );
    }
}

fn results_url(server: &Server, experiment: &str) -> String {
    server.url(&format!("/dashboard/env/{ENV}/experiments/{experiment}"))
}

pub(crate) async fn sign_in(browser: &Browser, key: &str) {
    browser.find("form.login").await;
    browser
        .find("#key")
        .await
        .send_keys(key)
        .await
        .expect("typing the key");
    browser.click("form.login button[type=submit]").await;
}

/// The text of `cell` (a CSS selector inside the row) in the row of `variant` in `scope`.
async fn cell(browser: &Browser, scope: &str, row: &str, cell: &str) -> String {
    browser
        .text(&format!("{scope} tr[{row}] {cell}"))
        .await
        .trim()
        .to_string()
}

#[tokio::test]
async fn the_results_page_shows_the_seeded_numbers_in_a_real_browser() {
    let server = Server::start().await;
    seed_config(&server).await;
    seed_events(&server).await;
    let browser = Browser::start().await;

    // Not signed in: the sign-in page, and none of the experiment's data.
    browser.goto(&results_url(&server, EXPERIMENT)).await;
    browser.wait_for_url("/dashboard/login").await;
    let page = browser.source().await;
    assert!(
        !page.contains("beginner-onboarding") && !page.contains("2,000"),
        "the sign-in page shows experiment data:\n{page}"
    );

    // A wrong key is refused; the admin key lands on the page asked for.
    sign_in(&browser, "tlr_admin_not_a_real_key_000000").await;
    assert!(browser
        .text(".alert-error")
        .await
        .contains("not an active admin key"));
    sign_in(&browser, ADMIN_KEY).await;
    browser
        .wait_for_url(&format!("/experiments/{EXPERIMENT}"))
        .await;
    assert!(browser
        .text("h1")
        .await
        .contains("Homepage personalization"));

    // Overall: users, conversions, rates, lifts with intervals, p-values, chances to win.
    let overall = "#overall";
    for (variant, users, conv, rate) in [
        ("generic", "2,000", "150", "7.50%"),
        ("beginner-onboarding", "1,000", "130", "13.00%"),
        ("loyalty-offer", "1,000", "80", "8.00%"),
    ] {
        let row = format!("data-variant=\"{variant}\"");
        assert_eq!(
            cell(&browser, overall, &row, "td.users").await,
            users,
            "{variant}"
        );
        assert_eq!(
            cell(&browser, overall, &row, "td.conversions").await,
            conv,
            "{variant}"
        );
        assert_eq!(
            cell(&browser, overall, &row, "td.rate").await,
            rate,
            "{variant}"
        );
    }
    let lift = |variant: &str| format!("data-variant=\"{variant}\"");
    assert_eq!(
        cell(&browser, overall, &lift("generic"), "td.lift").await,
        "baseline"
    );
    for (scope, variant, estimate, interval, p, chance) in [
        (
            overall,
            "beginner-onboarding",
            "+73.3%",
            "[+34.8%, +111.9%]",
            "< 0.001",
            "> 99.9%",
        ),
        (
            overall,
            "loyalty-offer",
            "+6.7%",
            "[−21.1%, +34.5%]",
            "0.638",
            "68.1%",
        ),
        (
            "[data-scope=beginners]",
            "beginner-onboarding",
            "+30.0%",
            "[−1.9%, +61.9%]",
            "0.066",
            "96.7%",
        ),
        (
            "[data-scope=lapsed]",
            "loyalty-offer",
            "+60.0%",
            "[+5.2%, +114.8%]",
            "0.032",
            "98.4%",
        ),
    ] {
        let row = lift(variant);
        let what = format!("{scope} {variant}");
        assert_eq!(
            cell(&browser, scope, &row, "td.lift .estimate").await,
            estimate,
            "{what}"
        );
        assert_eq!(
            cell(&browser, scope, &row, "td.lift .interval").await,
            interval,
            "{what}"
        );
        assert_eq!(cell(&browser, scope, &row, "td.p-value").await, p, "{what}");
        assert_eq!(
            cell(&browser, scope, &row, "td.chance").await,
            chance,
            "{what}"
        );
        // The interval is drawn as a bar around zero, green when it excludes zero upwards.
        let bar = browser
            .find(&format!("{scope} tr[{row}] td.bar svg rect.ci-bar"))
            .await;
        let class = bar.attr("class").await.unwrap().unwrap_or_default();
        let significant = !interval.starts_with("[−");
        assert_eq!(class.contains("ci-up"), significant, "{what}: {class}");
    }

    // Per segment: the arm a segment never serves has no data, and says so.
    assert_eq!(
        cell(
            &browser,
            "[data-scope=beginners]",
            &lift("loyalty-offer"),
            "td.users"
        )
        .await,
        "0"
    );
    assert_eq!(
        cell(
            &browser,
            "[data-scope=beginners]",
            &lift("loyalty-offer"),
            "td.lift .not-enough-data"
        )
        .await,
        "not enough data"
    );
    assert_eq!(
        cell(
            &browser,
            "[data-scope=beginners]",
            &lift("generic"),
            "td.rate"
        )
        .await,
        "10.00%"
    );

    // Personalization: tailored vs generic per segment and over all segments.
    for (segment, tailored_rate, generic_rate, estimate, interval) in [
        ("beginners", "13.00%", "10.00%", "+30.0%", "[−1.9%, +61.9%]"),
        ("lapsed", "8.00%", "5.00%", "+60.0%", "[+5.2%, +114.8%]"),
        ("pooled", "10.50%", "7.50%", "+40.0%", "[+12.0%, +68.0%]"),
    ] {
        let row = format!("data-segment=\"{segment}\"");
        let scope = "#personalization";
        let rate = cell(&browser, scope, &row, "td.personalized-rate").await;
        assert!(rate.starts_with(tailored_rate), "{segment}: {rate}");
        let rate = cell(&browser, scope, &row, "td.generic-rate").await;
        assert!(rate.starts_with(generic_rate), "{segment}: {rate}");
        assert_eq!(
            cell(&browser, scope, &row, "td.lift .estimate").await,
            estimate,
            "{segment}"
        );
        assert_eq!(
            cell(&browser, scope, &row, "td.lift .interval").await,
            interval,
            "{segment}"
        );
    }
    assert_eq!(
        cell(
            &browser,
            "#personalization",
            "data-segment=\"pooled\"",
            "td.p-value"
        )
        .await,
        "0.005"
    );
    assert_eq!(
        cell(
            &browser,
            "#personalization",
            "data-segment=\"pooled\"",
            "td.chance"
        )
        .await,
        "99.7%"
    );

    // The chart: one cumulative-rate line per variant, drawn server-side as SVG.
    assert_eq!(
        browser
            .find_all("#chart svg.chart-wide polyline")
            .await
            .len(),
        3
    );
    assert_eq!(
        browser
            .find_all("#chart svg.chart-narrow polyline")
            .await
            .len(),
        3
    );
    assert!(
        browser.find_all("#warnings").await.is_empty(),
        "no warnings expected"
    );
    assert!(browser
        .text("#overall .srm")
        .await
        .contains("Traffic split as configured"));

    // CUPED on: the comparisons are re-analysed with each user's purchases before their first
    // exposure. These users made none, so θ is 0 and every number stays as it was.
    assert!(browser.find_all("#cuped").await.is_empty());
    browser.click("#cuped-on").await;
    browser.wait_for_url("cuped=on").await;
    let line = browser.text("#cuped").await;
    assert!(
        line.contains("in the 14 days before their first exposure")
            && line.contains("beginner-onboarding: θ = 0.000"),
        "{line}"
    );
    assert_eq!(
        cell(
            &browser,
            overall,
            &lift("beginner-onboarding"),
            "td.lift .estimate"
        )
        .await,
        "+73.3%"
    );
    browser.goto(&results_url(&server, EXPERIMENT)).await;

    // A correction across variants × metrics: an adjusted column, never below the raw p-value.
    assert!(browser.find_all("td.adjusted").await.is_empty());
    browser.click("#correction-holm").await;
    browser.wait_for_url("correction=holm_bonferroni").await;
    assert!(browser
        .text("#correction")
        .await
        .contains("Holm–Bonferroni (family-wise error)"));
    let raw = cell(
        &browser,
        overall,
        &lift("beginner-onboarding"),
        "td.p-value",
    )
    .await;
    let adjusted = cell(
        &browser,
        overall,
        &lift("beginner-onboarding"),
        "td.adjusted",
    )
    .await;
    // `0.032` or `< 0.001`, then (adjusted) the interval on the next line.
    let number = |text: &str| {
        let first = text.lines().next().unwrap_or_default();
        first
            .trim_start_matches(['<', ' '])
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("a p-value: {text}"))
    };
    assert!(number(&adjusted) >= number(&raw), "{adjusted} vs {raw}");

    // A proper prior, typed into the form (a GET: it only changes the view).
    assert!(browser.text("#prior").await.contains("flat (none)"));
    for (field, value) in [("#prior-mean", "0"), ("#prior-sd", "0.05")] {
        let input = browser.find(field).await;
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
    }
    browser.click("#prior-form button[type=submit]").await;
    browser.wait_for_url("prior_sd=0.05").await;
    let prior = browser.text("#prior").await;
    assert!(
        prior.contains("normal, mean 0, sd 0.05 (relative)"),
        "{prior}"
    );
    // The correction chosen before is kept.
    assert!(browser.url().await.contains("correction=holm_bonferroni"));
    browser.click("#prior-flat").await;
    browser.wait_for_url("prior=flat").await;
    assert!(browser.text("#prior").await.contains("flat (none)"));
    browser.goto(&results_url(&server, EXPERIMENT)).await;

    // No request for anything but this server: no CDN, fonts or scripts from elsewhere.
    let page = browser.source().await;
    assert!(!page.contains("<script"), "the dashboard needs no script");
    for foreign in ["http://", "https://", "//fonts", "//cdn"] {
        let outside = page.match_indices(foreign).any(|(i, _)| {
            !page[i..].starts_with(&server.url("")) && !page[i..].starts_with("http://www.w3.org")
        });
        assert!(
            !outside,
            "the page references {foreign} outside this server"
        );
    }

    // Screenshots at laptop and phone widths, for people to look at.
    let laptop = browser.screenshot("results-laptop", 1280).await;
    let phone = browser.screenshot("results-phone", 390).await;
    assert!(
        browser.viewport_width().await <= 500,
        "a phone-width viewport"
    );
    assert!(std::fs::metadata(&laptop).unwrap().len() > 10_000);
    assert!(std::fs::metadata(&phone).unwrap().len() > 10_000);
    browser.client.set_window_size(1280, 900).await.unwrap();

    // Sorting by lift: the best variant first, the control (lift 0) after the positive ones.
    browser.click("#overall th.lift-col a.sort").await;
    browser.wait_for_url("sort=lift").await;
    let order: Vec<String> = {
        let mut out = Vec::new();
        for row in browser.find_all("#overall tbody tr").await {
            out.push(row.attr("data-variant").await.unwrap().unwrap_or_default());
        }
        out
    };
    assert_eq!(order, ["beginner-onboarding", "loyalty-offer", "generic"]);

    // A badly split A/B test carries the sample-ratio-mismatch warning.
    browser.goto(&results_url(&server, "checkout-test")).await;
    let warnings = browser.text("#warnings").await;
    assert!(
        warnings.contains("sample ratio mismatch in overall"),
        "{warnings}"
    );
    assert!(browser
        .text("#overall .srm")
        .await
        .contains("Sample ratio mismatch"));
    browser.screenshot("results-srm-laptop", 1280).await;

    // An experiment without data says so instead of showing numbers.
    browser.goto(&results_url(&server, "pricing-test")).await;
    assert!(browser
        .text("#not-enough-data")
        .await
        .contains("Not enough data yet"));
    assert_eq!(
        cell(
            &browser,
            "#overall",
            "data-variant=\"treatment\"",
            "td.lift .not-enough-data"
        )
        .await,
        "not enough data"
    );
    assert_eq!(
        browser.find_all("#chart svg.chart").await.len(),
        0,
        "no chart without data"
    );
    assert!(browser.text("#chart").await.contains("No exposures yet"));
    browser.screenshot("results-no-data-phone", 390).await;
    browser.client.set_window_size(1280, 900).await.unwrap();

    // The other pages render, with the seeded config.
    browser
        .goto(&server.url(&format!("/dashboard/env/{ENV}/segments")))
        .await;
    assert!(browser
        .text("tr[data-segment=beginners]")
        .await
        .contains("lifecycle is \"new\""));
    browser
        .goto(&server.url(&format!("/dashboard/env/{ENV}/flags")))
        .await;
    assert!(browser
        .text("tr[data-flag=homepage]")
        .await
        .contains("in segment beginners"));
    browser.goto(&server.url("/dashboard")).await;
    assert!(browser
        .text("tr[data-env=development]")
        .await
        .contains("development"));

    // Signing out ends the session: the results are behind the sign-in page again.
    browser.click("form.signout button").await;
    browser.wait_for_url("/dashboard/login").await;
    browser.goto(&results_url(&server, EXPERIMENT)).await;
    browser.wait_for_url("/dashboard/login").await;
    assert!(!browser.source().await.contains("beginner-onboarding"));
    browser.close().await;
}

async fn sdk_config(server: &Server, sdk: &str) -> Value {
    let res = send(server.with_key(Method::GET, "/sdk/v1/config", sdk)).await;
    res.assert_status(StatusCode::OK);
    res.body
}

fn flag<'a>(config: &'a Value, key: &str) -> &'a Value {
    config["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == key)
        .unwrap()
}

#[tokio::test]
async fn a_rollout_changed_in_the_browser_reaches_sdks_and_the_audit_log() {
    let server = Server::start().await;
    server
        .create(ENV, "flags", &fixtures::split_flag("checkout", 2500))
        .await;
    let (_, sdk) = server.create_key("sdk", Some(ENV)).await;
    let client = tailor::Client::builder(server.url(""), sdk.clone())
        .build()
        .await
        .expect("SDK client");
    let start = server.revision(ENV).await;
    assert!(
        client
            .wait_for_revision(start, Duration::from_secs(10))
            .await
    );

    let browser = Browser::start().await;
    let flag_page = server.url(&format!("/dashboard/env/{ENV}/flags/checkout"));
    browser.goto(&flag_page).await;
    sign_in(&browser, ADMIN_KEY).await;
    browser.wait_for_url("/flags/checkout").await;
    assert_eq!(browser.text("#rule-0 .coverage").await, "25%");

    // 25% → 50%: a confirmation page first, which changes nothing by itself.
    browser.click("#rule-0 a[data-step=\"5000\"]").await;
    browser.wait_for_url("/rollout?").await;
    assert_eq!(
        browser.text("h1").await,
        "Change the coverage of rule 0 (main) from 25% to 50%?"
    );
    assert_eq!(
        server.revision(ENV).await,
        start,
        "reviewing changes nothing"
    );
    browser.screenshot("rollout-confirm-phone", 390).await;
    browser.client.set_window_size(1280, 900).await.unwrap();
    browser.click("#confirm").await;
    let url = browser.wait_for_url("published=").await;
    let revision = start + 1;
    assert!(url.contains(&format!("published={revision}")), "{url}");
    assert!(browser
        .text("[data-published]")
        .await
        .contains(&format!("Published revision {revision}")));
    assert_eq!(browser.text("#rule-0 .coverage").await, "50%");
    browser.screenshot("flag-laptop", 1280).await;
    browser.screenshot("flag-phone", 390).await;
    browser.client.set_window_size(1280, 900).await.unwrap();

    // The new revision is served to SDKs: pushed to a connected client, and in the config.
    assert!(
        client
            .wait_for_revision(revision, Duration::from_secs(10))
            .await,
        "the SDK did not receive revision {revision}: {:?}",
        client.status()
    );
    let config = sdk_config(&server, &sdk).await;
    assert_eq!(config["revision"], revision);
    assert_eq!(flag(&config, "checkout")["rules"][0]["coverage"], 5000);

    // The audit log names the dashboard and the key, and what changed.
    let res = send(server.admin(
        Method::GET,
        &format!("/api/v1/environments/{ENV}/audit?kind=flag&key=checkout"),
    ))
    .await;
    let entry = &res.body[0];
    assert_eq!(entry["action"], "rollout", "{}", res.text);
    assert_eq!(entry["actor"], "admin (TAILOR_ADMIN_KEY) via dashboard");
    assert_eq!(entry["revision"], revision);
    browser.click("a[href$=\"/flags/checkout/history\"]").await;
    browser.wait_for_url("/history").await;
    let row = browser.text("table.audit tbody tr:first-child").await;
    for part in [
        "rollout",
        "admin (TAILOR_ADMIN_KEY) via dashboard",
        "rule 0 (main): coverage 25% → 50%",
    ] {
        assert!(row.contains(part), "`{part}` not in the history row: {row}");
    }
    browser.screenshot("history-phone", 390).await;
    browser.client.set_window_size(1280, 900).await.unwrap();

    // Another amount through the form: 12.5%.
    browser.goto(&flag_page).await;
    let input = browser.find("#coverage-0").await;
    input.clear().await.unwrap();
    input.send_keys("12.5").await.unwrap();
    browser.click("#rule-0 form.inline button").await;
    browser.wait_for_url("/rollout?").await;
    assert_eq!(
        browser.text("h1").await,
        "Change the coverage of rule 0 (main) from 50% to 12.5%?"
    );
    browser.click("#confirm").await;
    browser.wait_for_url("published=").await;
    assert_eq!(browser.text("#rule-0 .coverage").await, "12.5%");
    let config = sdk_config(&server, &sdk).await;
    assert_eq!(flag(&config, "checkout")["rules"][0]["coverage"], 1250);

    // Pause: everyone gets the default.
    browser.click("a[href$=\"toggle?enabled=false\"]").await;
    browser.wait_for_url("/toggle?").await;
    assert_eq!(browser.text("h1").await, "Pause flag checkout?");
    browser.click("#confirm").await;
    browser.wait_for_url("published=").await;
    assert_eq!(browser.text("h1 .badge").await, "Paused");
    let paused = server.revision(ENV).await;
    assert!(
        client
            .wait_for_revision(paused, Duration::from_secs(10))
            .await
    );
    let config = sdk_config(&server, &sdk).await;
    assert_eq!(flag(&config, "checkout")["enabled"], false);
    assert_eq!(
        client
            .variant(&tailor::User::new("anyone"), "checkout")
            .key(),
        Some("control")
    );

    // Roll back the pause from the history: on again, at 12.5%.
    browser.goto(&format!("{flag_page}/history")).await;
    browser
        .click("table.audit tbody tr:first-child a[href*=\"restore?audit_id=\"]")
        .await;
    browser.wait_for_url("/restore?").await;
    assert!(browser
        .text("h1")
        .await
        .starts_with("Roll back flag checkout to before change #"));
    assert!(browser
        .text("ul.changes")
        .await
        .contains("resumed (turned on)"));
    browser.click("#confirm").await;
    browser.wait_for_url("published=").await;
    assert_eq!(browser.text("h1 .badge").await, "On");
    let config = sdk_config(&server, &sdk).await;
    let checkout = flag(&config, "checkout");
    assert_eq!(checkout["enabled"], true);
    assert_eq!(checkout["rules"][0]["coverage"], 1250);
    let res = send(server.admin(
        Method::GET,
        &format!("/api/v1/environments/{ENV}/audit?kind=flag&key=checkout"),
    ))
    .await;
    let actions: Vec<&str> = res
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["restore", "toggle", "rollout", "rollout", "create"]
    );
    browser.close().await;
    client.close().await.ok();
}

/// An HTTP client that does not follow redirects.
/// `GET url` with a cookie header (`name=value`), redirects not followed.
pub(crate) async fn get_with_cookie(
    http: &reqwest::Client,
    url: String,
    cookie: &str,
) -> reqwest::Response {
    http.get(url).header(COOKIE, cookie).send().await.unwrap()
}

pub(crate) fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect()
}

fn cookie_value(set_cookies: &[String], name: &str) -> Option<String> {
    set_cookies.iter().find_map(|c| {
        c.split(';')
            .next()?
            .trim()
            .strip_prefix(&format!("{name}="))
            .map(str::to_string)
    })
}

/// The value of the hidden `name` field in a page.
fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in {html}"))
        + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_string()
}

/// Signs in over HTTP; returns the session cookie and the page's CSRF token.
pub(crate) async fn http_sign_in(
    server: &Server,
    http: &reqwest::Client,
    key: &str,
) -> (String, String) {
    let res = attempt_sign_in(server, http, key, "/dashboard").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookies = set_cookies(res.headers());
    let session = cookie_value(&cookies, "tailor_session").expect("a session cookie");
    let page = get_with_cookie(
        http,
        server.url("/dashboard"),
        &format!("tailor_session={session}"),
    )
    .await;
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = hidden_field(&page.text().await.unwrap(), "csrf");
    (session, csrf)
}

#[tokio::test]
async fn without_a_session_there_is_no_data_and_forms_need_their_csrf_token() {
    let server = Server::start().await;
    seed_config(&server).await;
    let http = no_redirects();
    let pages = [
        "/dashboard".to_string(),
        "/dashboard/".to_string(),
        format!("/dashboard/env/{ENV}/flags"),
        format!("/dashboard/env/{ENV}/flags/homepage"),
        format!("/dashboard/env/{ENV}/flags/homepage/history"),
        format!("/dashboard/env/{ENV}/flags/homepage/rollout?rule=0&coverage=50"),
        format!("/dashboard/env/{ENV}/flags/homepage/toggle?enabled=false"),
        format!("/dashboard/env/{ENV}/flags/homepage/restore?audit_id=1"),
        format!("/dashboard/env/{ENV}/segments"),
        format!("/dashboard/env/{ENV}/experiments"),
        format!("/dashboard/env/{ENV}/experiments/{EXPERIMENT}"),
        format!("/dashboard/env/{ENV}/audit"),
        "/dashboard/env/no-such-env/flags".to_string(),
    ];
    for cookie in [None, Some("tailor_session=0123456789abcdef")] {
        for page in &pages {
            let mut req = http.get(server.url(page));
            if let Some(c) = cookie {
                req = req.header(COOKIE, c);
            }
            let res = req.send().await.unwrap();
            assert_eq!(
                res.status(),
                StatusCode::SEE_OTHER,
                "GET {page} ({cookie:?})"
            );
            let location = res.headers()[LOCATION].to_str().unwrap().to_string();
            assert!(
                location.starts_with("/dashboard/login"),
                "{page} → {location}"
            );
            let body = res.text().await.unwrap();
            assert!(
                !body.contains("homepage") && !body.contains("beginners"),
                "{page} leaks data: {body}"
            );
        }
    }
    let before = server.revision(ENV).await;
    for action in ["rollout", "toggle", "restore"] {
        let res = http
            .post(server.url(&format!("/dashboard/env/{ENV}/flags/homepage/{action}")))
            .form(&[
                ("rule", "0"),
                ("coverage_bp", "0"),
                ("enabled", "false"),
                ("audit_id", "1"),
                ("if_match", "*"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "POST {action}");
    }
    assert_eq!(server.revision(ENV).await, before, "nothing changed");

    // The stylesheet is public (it holds no data) and served from the binary.
    let css = http
        .get(server.url("/dashboard/assets/dashboard.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert!(css.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));

    // Signing in: the form's own token is required, SDK keys are refused.
    let res = http
        .post(server.url("/dashboard/login"))
        .form(&[("csrf", "x"), ("key", ADMIN_KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "sign-in without the form's cookie"
    );
    assert!(cookie_value(&set_cookies(res.headers()), "tailor_session").is_none());
    let (_, sdk_key) = server.create_key("sdk", Some(ENV)).await;
    let res = attempt_sign_in(&server, &http, &sdk_key, "/dashboard").await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "an SDK key cannot sign in"
    );
    assert!(cookie_value(&set_cookies(res.headers()), "tailor_session").is_none());

    // The session cookie's attributes.
    let res = attempt_sign_in(&server, &http, ADMIN_KEY, "https://evil.example/").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/dashboard", "no open redirect");
    let cookie = set_cookies(res.headers())
        .into_iter()
        .find(|c| c.starts_with("tailor_session="))
        .unwrap();
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/dashboard",
        "Max-Age=28800",
    ] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }

    // Signed in: pages have data and a strict content security policy.
    let (session, csrf) = http_sign_in(&server, &http, ADMIN_KEY).await;
    let cookie = format!("tailor_session={session}");
    let res = get_with_cookie(
        &http,
        server.url(&format!("/dashboard/env/{ENV}/flags/homepage")),
        &cookie,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body = res.text().await.unwrap();
    assert!(body.contains("beginner-onboarding"));
    let etag = hidden_field(
        &http
            .get(server.url(&format!(
                "/dashboard/env/{ENV}/flags/homepage/toggle?enabled=false"
            )))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "if_match",
    )
    .replace("&quot;", "\"");
    let toggle = server.url(&format!("/dashboard/env/{ENV}/flags/homepage/toggle"));

    // A form without the token, with a wrong one, or from another site: 403, nothing changes.
    // (csrf field, Origin header)
    let attempts = [
        (None, None),
        (Some("0000"), None),
        (Some(csrf.as_str()), Some("http://evil.example")),
    ];
    for (token, origin) in attempts {
        let mut form = vec![("enabled", "false"), ("if_match", etag.as_str())];
        form.extend(token.map(|t| ("csrf", t)));
        let mut req = http.post(&toggle).header(COOKIE, &cookie).form(&form);
        if let Some(o) = origin {
            req = req.header(ORIGIN, o);
        }
        let res = req.send().await.unwrap();
        assert_eq!(
            res.status(),
            StatusCode::FORBIDDEN,
            "{form:?} from {origin:?}"
        );
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
    assert_eq!(server.revision(ENV).await, before, "nothing changed");

    // A stale review (the flag changed since) is refused too.
    let res = http
        .post(&toggle)
        .header(COOKIE, &cookie)
        .form(&[
            ("enabled", "false"),
            ("if_match", "\"stale\""),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
    assert!(res.text().await.unwrap().contains("review the change anew"));

    // The real thing: same origin, right token, reviewed version.
    let res = http
        .post(&toggle)
        .header(COOKIE, &cookie)
        .header(ORIGIN, server.url(""))
        .form(&[("enabled", "false"), ("if_match", &etag), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(server.revision(ENV).await, before + 1);
    assert_eq!(
        server.get(ENV, "flags", "homepage").await.body["enabled"],
        false
    );

    // Signing out needs the token as well, then the session is gone.
    let logout = server.url("/dashboard/logout");
    let res = http
        .post(&logout)
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = http
        .post(&logout)
        .header(COOKIE, &cookie)
        .form(&[("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(set_cookies(res.headers())
        .iter()
        .any(|c| c.starts_with("tailor_session=;") && c.contains("Max-Age=0")));
    let res = get_with_cookie(&http, server.url("/dashboard"), &cookie).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    // Revoking the admin key that signed in ends its sessions.
    let (id, secret) = server.create_key("admin", None).await;
    let (session, _) = http_sign_in(&server, &http, &secret).await;
    let cookie = format!("tailor_session={session}");
    let res = send(server.admin(Method::DELETE, &format!("/api/v1/keys/{id}"))).await;
    res.assert_status(StatusCode::NO_CONTENT);
    let res = get_with_cookie(&http, server.url("/dashboard"), &cookie).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "a revoked key's session"
    );
}

/// Sessions live in the store: a restart keeps the browser signed in, with the same CSRF token.
#[tokio::test]
async fn a_session_survives_a_restart() {
    let mut server = Server::start().await;
    let http = no_redirects();
    let (session, csrf) = http_sign_in(&server, &http, ADMIN_KEY).await;
    server.restart().await;
    let page = get_with_cookie(
        &http,
        server.url("/dashboard"),
        &format!("tailor_session={session}"),
    )
    .await;
    assert_eq!(page.status(), StatusCode::OK, "still signed in");
    assert_eq!(hidden_field(&page.text().await.unwrap(), "csrf"), csrf);
}

/// One sign-in attempt through the form, asking to go to `next` afterwards.
async fn attempt_sign_in(
    server: &Server,
    http: &reqwest::Client,
    key: &str,
    next: &str,
) -> reqwest::Response {
    attempt_sign_in_from(server, http, key, next, None).await
}

/// [`attempt_sign_in`] through a proxy that names the client in `X-Forwarded-For`.
async fn attempt_sign_in_from(
    server: &Server,
    http: &reqwest::Client,
    key: &str,
    next: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let form = http
        .get(server.url("/dashboard/login"))
        .send()
        .await
        .unwrap();
    let login_cookie = cookie_value(&set_cookies(form.headers()), "tailor_login").unwrap();
    let token = hidden_field(&form.text().await.unwrap(), "csrf");
    let mut post = http
        .post(server.url("/dashboard/login"))
        .header(COOKIE, format!("tailor_login={login_cookie}"));
    if let Some(client) = forwarded_for {
        post = post.header("x-forwarded-for", client);
    }
    post.form(&[("csrf", token.as_str()), ("key", key), ("next", next)])
        .send()
        .await
        .unwrap()
}

/// Failed admin-API authentications are throttled like sign-ins (one count per address), and
/// behind a trusted proxy each client named in `X-Forwarded-For` has its own count: one client
/// guessing keys does not lock the others out. Without the setting the header is ignored, so a
/// guesser cannot escape the count by making up addresses.
#[tokio::test]
async fn failed_authentications_count_per_client_behind_a_trusted_proxy() {
    let guess = |server: &Server, n: usize, client: &str| {
        send(
            server
                .with_key(
                    Method::GET,
                    "/api/v1/environments",
                    &format!("tlr_admin_guess{n}"),
                )
                .header("x-forwarded-for", client),
        )
    };
    let server = Server::start_with(&[("TAILOR_TRUSTED_PROXIES", "127.0.0.1/32, ::1")]).await;
    for n in 0..10 {
        guess(&server, n, "203.0.113.5")
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }
    let res = send(
        server
            .admin(Method::GET, "/api/v1/environments")
            .header("x-forwarded-for", "203.0.113.5"),
    )
    .await;
    res.assert_error(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        "retry in",
    );
    assert!(res.header("retry-after").is_some());
    send(
        server
            .admin(Method::GET, "/api/v1/environments")
            .header("x-forwarded-for", "203.0.113.6"),
    )
    .await
    .assert_status(StatusCode::OK);
    let http = no_redirects();
    let signed_in =
        attempt_sign_in_from(&server, &http, ADMIN_KEY, "/dashboard", Some("203.0.113.6")).await;
    assert_eq!(
        signed_in.status(),
        StatusCode::SEE_OTHER,
        "another client signs in"
    );
    let throttled =
        attempt_sign_in_from(&server, &http, ADMIN_KEY, "/dashboard", Some("203.0.113.5")).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);

    let untrusting = Server::start().await;
    for n in 0..10 {
        guess(&untrusting, n, &format!("198.51.100.{n}"))
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }
    guess(&untrusting, 10, "198.51.100.99")
        .await
        .assert_status(StatusCode::TOO_MANY_REQUESTS);
}

/// Guessing keys through the sign-in form stops after ten failures: then even the right key
/// waits, with `429` and `Retry-After`, and the page says why.
#[tokio::test]
async fn repeated_failed_sign_ins_are_throttled() {
    let server = Server::start().await;
    let http = no_redirects();
    for guess in 0..10 {
        let res = attempt_sign_in(
            &server,
            &http,
            &format!("guess-{guess}-xxxxxxxxxxxx"),
            "/dashboard",
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "guess {guess}");
    }
    let res = attempt_sign_in(&server, &http, ADMIN_KEY, "/dashboard").await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    assert!(set_cookies(res.headers())
        .iter()
        .all(|c| !c.starts_with("tailor_session=")));
    let body = res.text().await.unwrap();
    assert!(body.contains("Too many failed sign-ins"), "{body}");
}

/// Traits (`purchases_30d`, `last_purchase`), segments by trait (`repeat-buyers`), by attribute
/// (`pro-plan`) and by uploaded list (`vip`: `vip-1`, `vip-2`), and a `homepage` flag serving
/// them. With `purchases`, `buyer-1` buys twice and `buyer-2` once.
async fn seed_profiles(server: &Server, purchases: bool) {
    for t in [
        json!({"key": "purchases_30d", "events": ["purchase"], "aggregate": "count", "window_days": 30}),
        json!({"key": "last_purchase", "events": ["purchase"], "aggregate": "last_seen"}),
    ] {
        server.create(ENV, "traits", &t).await;
    }
    for s in [
        json!({"key": "repeat-buyers", "conditions": {"trait": "purchases_30d", "op": "gte", "values": [2]}}),
        fixtures::segment("pro-plan"),
        json!({"key": "vip", "list": true}),
    ] {
        server.create(ENV, "segments", &s).await;
    }
    let res = send(
        server
            .admin(
                Method::PUT,
                &format!("/api/v1/environments/{ENV}/segments/vip/members"),
            )
            .body("vip-1\nvip-2\n"),
    )
    .await;
    res.assert_status(StatusCode::OK);
    server
        .create(
            ENV,
            "flags",
            &json!({
                "key": "homepage", "type": "string",
                "variants": [{"key": "generic", "value": "Welcome"},
                             {"key": "loyalty", "value": "Welcome back"},
                             {"key": "vip", "value": "Your VIP offers"}],
                "default_variant": "generic",
                "rules": [{"id": "vips", "when": {"segment": "vip"}, "variant": "vip"},
                          {"id": "repeat", "when": {"segment": "repeat-buyers"}, "variant": "loyalty"}],
            }),
        )
        .await;
    if !purchases {
        return;
    }
    let (_, sdk) = server.create_key("sdk", Some(ENV)).await;
    let now = now_ms();
    let purchase = |id: &str, user: &str, at: i64, value: f64| {
        json!({"type": "conversion", "id": id, "timestamp": at, "user_key": user,
               "event": "purchase", "value": value})
    };
    let events = [
        purchase("p1", "buyer-1", now - 3 * HOUR, 20.0),
        purchase("p2", "buyer-1", now - HOUR, 9.5),
        purchase("p3", "buyer-2", now - 2 * HOUR, 12.0),
    ];
    let res = send(
        server
            .with_key(Method::POST, "/sdk/v1/events", &sdk)
            .json(&json!({"events": events})),
    )
    .await;
    res.assert_status(StatusCode::OK);
    eventually(
        "the server to count buyer-1's purchases",
        Duration::from_secs(10),
        || async {
            let res = send(server.admin(
                Method::GET,
                &format!("/api/v1/environments/{ENV}/users/buyer-1"),
            ))
            .await;
            (res.body["profile"]["traits"]["purchases_30d"] == 2.0).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn segment_sizes_traits_and_a_user_lookup_in_a_real_browser() {
    let server = Server::start().await;
    seed_profiles(&server, true).await;
    let browser = Browser::start().await;

    // Not signed in: the sign-in page, none of the user's data; then back to the lookup.
    let lookup = server.url(&format!("/dashboard/env/{ENV}/users?key=buyer-1"));
    browser.goto(&lookup).await;
    browser.wait_for_url("/dashboard/login").await;
    assert!(!browser.source().await.contains("purchases_30d"));
    sign_in(&browser, ADMIN_KEY).await;
    browser.wait_for_url("/users?key=buyer-1").await;

    // buyer-1: two purchases in the window, so a repeat buyer, served the loyalty content.
    let trait_value = |key: &'static str| {
        let browser = &browser;
        async move {
            browser
                .text(&format!("#user-traits tr[data-trait={key}] td.value"))
                .await
        }
    };
    assert_eq!(trait_value("purchases_30d").await, "2");
    assert!(
        trait_value("last_purchase").await.ends_with(" UTC"),
        "a datetime"
    );
    assert!(browser
        .text("#user-traits tr[data-trait=purchases_30d]")
        .await
        .contains("number of events (purchase), last 30 days"));
    assert_eq!(browser.text("#user-segments").await.trim(), "repeat-buyers");
    assert_eq!(browser.text("#user-lists").await, "In no uploaded list.");
    let homepage = "#user-flags tr[data-flag=homepage]";
    assert_eq!(
        browser.text(&format!("{homepage} td.variant")).await,
        "loyalty"
    );
    assert_eq!(
        browser.text(&format!("{homepage} td.value")).await,
        "\"Welcome back\""
    );
    let reason = browser.text(&format!("{homepage} td.reason")).await;
    assert!(reason.contains("rule 1 (repeat) matched"), "{reason}");
    assert!(browser.find_all("#no-data").await.is_empty());
    browser.screenshot("user-lookup-laptop", 1280).await;
    browser.screenshot("user-lookup-phone", 390).await;
    browser.client.set_window_size(1280, 900).await.unwrap();

    // The segments page: sizes over the 4 known users (3 buyers' and list keys), the list's
    // size, no size for a segment that reads attributes; the traits' definitions.
    browser
        .goto(&server.url(&format!("/dashboard/env/{ENV}/segments")))
        .await;
    assert!(browser
        .text("#segment-sizes")
        .await
        .contains("members among the 4 known users"));
    let size = |segment: &'static str| {
        let browser = &browser;
        async move {
            browser
                .find(&format!("tr[data-segment={segment}] td.size"))
                .await
        }
    };
    let repeat = size("repeat-buyers").await;
    assert_eq!(
        repeat.attr("data-size").await.unwrap().as_deref(),
        Some("1")
    );
    assert!(repeat.text().await.unwrap().contains("of 4 known"));
    let vip = size("vip").await;
    assert_eq!(vip.attr("data-size").await.unwrap().as_deref(), Some("2"));
    assert!(vip.text().await.unwrap().contains("list: 2 keys"));
    let pro = size("pro-plan").await;
    assert_eq!(pro.attr("data-size").await.unwrap(), None);
    assert!(pro
        .text()
        .await
        .unwrap()
        .contains("depends on attributes the server does not see"));
    let definition = browser.text("tr[data-trait=purchases_30d]").await;
    for part in ["count", "purchase", "last 30 days"] {
        assert!(definition.contains(part), "{part} not in {definition}");
    }
    assert!(browser
        .text("tr[data-trait=last_purchase] td.window")
        .await
        .contains("all time"));
    browser.screenshot("segments-sizes-phone", 390).await;
    browser.client.set_window_size(1280, 900).await.unwrap();

    // The form, through its label: an unknown user is a new user, not an error.
    browser
        .click(&format!("a[href=\"/dashboard/env/{ENV}/users\"]"))
        .await;
    browser.wait_for_url("/users").await;
    assert_eq!(browser.text("label[for=user-key]").await, "User key");
    browser
        .find("#user-key")
        .await
        .send_keys("nobody")
        .await
        .unwrap();
    browser.click("form.lookup button[type=submit]").await;
    browser.wait_for_url("key=nobody").await;
    assert_eq!(trait_value("purchases_30d").await, "0");
    assert!(trait_value("last_purchase").await.contains("no events"));
    assert!(browser.text("#no-data").await.contains("new user"));
    assert_eq!(browser.text("#user-segments").await, "In no segment.");
    assert_eq!(
        browser.text(&format!("{homepage} td.variant")).await,
        "generic"
    );

    // A list member gets the list's content.
    browser
        .goto(&server.url(&format!("/dashboard/env/{ENV}/users?key=vip-1")))
        .await;
    assert_eq!(browser.text("#user-lists").await.trim(), "vip");
    assert_eq!(browser.text(&format!("{homepage} td.variant")).await, "vip");
    browser.close().await;
}

#[tokio::test]
async fn the_user_lookup_needs_a_session_and_explains_bad_input() {
    let server = Server::start().await;
    seed_profiles(&server, false).await;
    let http = no_redirects();
    let users = |query: &str| server.url(&format!("/dashboard/env/{ENV}/users{query}"));
    for page in [
        users(""),
        users("?key=buyer-1"),
        server.url(&format!("/dashboard/env/{ENV}/segments")),
    ] {
        let res = http.get(&page).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "GET {page}");
        assert!(res.headers()[LOCATION]
            .to_str()
            .unwrap()
            .starts_with("/dashboard/login"));
        let body = res.text().await.unwrap();
        assert!(!body.contains("purchases_30d"), "{page} leaks data: {body}");
    }

    let (session, _) = http_sign_in(&server, &http, ADMIN_KEY).await;
    let cookie = format!("tailor_session={session}");
    // Bad input: a 400 page that says what is wrong, with the form to try again.
    for (query, message) in [
        ("?key=", "enter the key of the user to look up"),
        ("?key=%20%20", "enter the key of the user to look up"),
        ("?key=a%0Ab", "control characters"),
    ] {
        let res = get_with_cookie(&http, users(query), &cookie).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{query}");
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let body = res.text().await.unwrap();
        assert!(body.contains(message), "{query}: {body}");
        assert!(body.contains("<label for=\"user-key\">User key</label>"));
    }
    // An unknown user: a page with zero counts and no datetimes, not an error.
    let res = get_with_cookie(&http, users("?key=nobody"), &cookie).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body = res.text().await.unwrap();
    assert!(body.contains("id=\"no-data\""), "{body}");
    assert!(body.contains("data-user=\"nobody\""), "{body}");
    // The segments page sizes every segment; the list's two keys are the only known users.
    let res = get_with_cookie(
        &http,
        server.url(&format!("/dashboard/env/{ENV}/segments")),
        &cookie,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.text().await.unwrap();
    assert!(body.contains("data-known-users=\"2\""), "{body}");
    assert!(body.contains("data-trait=\"purchases_30d\""), "{body}");
}
