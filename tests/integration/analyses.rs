//! The results API's choosable analyses end to end: ratio metrics (including one added after its
//! events arrived), multiple-comparison corrections across variants × metrics, and a proper
//! Bayesian prior, each against the statistics engine fed with sums computed here from the
//! events sent; and their bad input.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tailor_server::stats::{
    self, adjust_p_values, AnalysisConfig, ArmStats, Correction, ExperimentStats, LiftScale, Prior,
};

use crate::results::results;
use crate::support::{fixtures, send, Server};

const NOW: i64 = 1_790_000_000_000;

fn event(id: &str, user: &str, ts: i64, name: &str, value: Option<f64>) -> Value {
    let mut e =
        json!({"type": "conversion", "id": id, "timestamp": ts, "user_key": user, "event": name});
    if let Some(v) = value {
        e["value"] = json!(v);
    }
    e
}

fn exposure(id: &str, user: &str, variant: &str) -> Value {
    json!({"type": "exposure", "id": id, "timestamp": NOW, "user_key": user, "flag": "homepage",
           "variant": variant, "experiment": "hp", "rule": 0, "personalized": variant == "treatment",
           "revision": 2, "spec_version": 1})
}

fn treatment(report: &Value) -> &Value {
    report["overall"]["arms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["variant"] == "treatment")
        .unwrap()
}

fn close(got: &Value, want: f64, what: &str) {
    let got = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number: {got}"));
    assert!(
        (got - want).abs() <= 1e-9 * want.abs().max(1.0),
        "{what}: {got} vs {want}"
    );
}

/// Per arm, the plain definition's per-user values: sessions, purchases, revenue, refunds.
struct Users {
    values: [Vec<[f64; 4]>; 2],
}

impl Users {
    /// `Σ` of one column, `Σ` of its squares, of the other's, and of the products.
    fn ratio(&self, arm: usize, m: usize, d: usize) -> ArmStats {
        let rows = &self.values[arm];
        let sum = |f: &dyn Fn(&[f64; 4]) -> f64| rows.iter().map(f).sum::<f64>();
        ArmStats::Ratio {
            users: rows.len() as u64,
            numerator_sum: sum(&|r| r[m]),
            numerator_sum_squares: sum(&|r| r[m] * r[m]),
            denominator_sum: sum(&|r| r[d]),
            denominator_sum_squares: sum(&|r| r[d] * r[d]),
            sum_products: sum(&|r| r[m] * r[d]),
        }
    }

    fn converted(&self, arm: usize, column: usize) -> ArmStats {
        let rows = &self.values[arm];
        let converted = rows.iter().filter(|r| r[column] > 0.0).count() as u64;
        ArmStats::binomial(rows.len() as u64, converted)
    }
}

/// Experiment `hp` (primary `purchase`, secondary `session` and `revenue_per_order`, guardrail
/// `refund`) on a 50/50 flag, and 600 users' sessions, purchases and refunds after exposure.
async fn seeded() -> (Server, Users) {
    let server = Server::start().await;
    let mut experiment = fixtures::experiment("hp");
    experiment["secondary_metrics"] = json!(["session", "revenue_per_order"]);
    experiment["guardrail_metrics"] = json!(["refund"]);
    experiment["ratio_metrics"] = json!([{
        "key": "revenue_per_order",
        "numerator": {"event": "purchase", "measure": "value"},
        "denominator": {"event": "purchase"},
    }]);
    server
        .create("development", "experiments", &experiment)
        .await;
    let mut flag = fixtures::split_flag("homepage", 10_000);
    flag["rules"][0]["experiment"] = json!("hp");
    server.create("development", "flags", &flag).await;
    let (_, sdk) = server.create_key("sdk", Some("development")).await;

    let mut users = Users {
        values: [Vec::new(), Vec::new()],
    };
    let mut events = Vec::new();
    for u in 0..600u32 {
        let user = format!("u{u}");
        let arm = (u % 2) as usize;
        events.push(exposure(
            &format!("e{u}"),
            &user,
            ["control", "treatment"][arm],
        ));
        let sessions = 1 + (u * 7 + 3) % 4;
        let purchases = (u * 13 + arm as u32 * 5) % (sessions + 2) % (sessions + 1);
        let refunds = u32::from(u % 17 == 0);
        let mut revenue = 0.0;
        for s in 0..sessions {
            let ts = NOW + 60_000 * (1 + i64::from(s));
            events.push(event(&format!("s{u}-{s}"), &user, ts, "session", None));
        }
        for p in 0..purchases {
            let value = f64::from(10 + (u + p * 3) % 40) + arm as f64 * 2.5;
            revenue += value;
            let ts = NOW + 90_000 * (1 + i64::from(p));
            events.push(event(
                &format!("p{u}-{p}"),
                &user,
                ts,
                "purchase",
                Some(value),
            ));
        }
        if refunds > 0 {
            events.push(event(
                &format!("r{u}"),
                &user,
                NOW + 600_000,
                "refund",
                None,
            ));
        }
        users.values[arm].push([
            f64::from(sessions),
            f64::from(purchases),
            revenue,
            f64::from(refunds),
        ]);
    }
    for chunk in events.chunks(500) {
        let res = send(
            server
                .with_key(Method::POST, "/sdk/v1/events", &sdk)
                .json(&json!({"events": chunk})),
        )
        .await;
        res.assert_status(StatusCode::OK);
    }
    (server, users)
}

/// Changes experiment `hp` with `edit`, as a client would: read it, change it, write it back
/// with `If-Match`.
async fn update_experiment(server: &Server, edit: impl FnOnce(&mut Value)) {
    let current = send(server.admin(
        Method::GET,
        "/api/v1/environments/development/experiments/hp",
    ))
    .await;
    let mut experiment = current.body.clone();
    edit(&mut experiment);
    let res = send(
        server
            .admin(
                Method::PUT,
                "/api/v1/environments/development/experiments/hp",
            )
            .header("If-Match", current.etag())
            .json(&experiment),
    )
    .await;
    res.assert_status(StatusCode::OK);
}

/// The engine's treatment comparison for two arms and a config.
fn engine(arms: [ArmStats; 2], config: &AnalysisConfig) -> stats::Comparison {
    stats::analyze(
        &ExperimentStats {
            arms: arms.to_vec(),
            weights: vec![1.0, 1.0],
            control: 0,
            covariates: None,
        },
        config,
    )
    .unwrap()
    .arms[1]
        .comparison
        .unwrap()
}

#[tokio::test]
async fn ratio_metrics_match_the_engine_on_the_plain_sums_even_when_added_after_the_events() {
    let (server, users) = seeded().await;

    // Revenue per order: one event's value over its count.
    let report = results(&server, "?metric=revenue_per_order").await;
    assert_eq!(report["kind"], "ratio", "{report}");
    let want = engine(
        [users.ratio(0, 2, 1), users.ratio(1, 2, 1)],
        &AnalysisConfig::default(),
    );
    let t = treatment(&report);
    let ArmStats::Ratio {
        numerator_sum,
        denominator_sum,
        ..
    } = users.ratio(1, 2, 1)
    else {
        unreachable!()
    };
    close(&t["ratio"]["numerator"], numerator_sum, "Σ revenue");
    close(&t["ratio"]["denominator"], denominator_sum, "Σ orders");
    let rel = want.relative.value().unwrap();
    close(
        &t["result"]["comparison"]["relative"]["estimate"],
        rel.estimate,
        "lift",
    );
    close(
        &t["result"]["comparison"]["relative"]["std_error"],
        rel.std_error,
        "se",
    );

    // Orders per session: two events, defined after the events arrived. The cross products
    // are re-derived from what each user's contribution holds, exactly.
    update_experiment(&server, |experiment| {
        experiment["ratio_metrics"]
            .as_array_mut()
            .unwrap()
            .push(json!({"key": "orders_per_session",
                         "numerator": {"event": "purchase"}, "denominator": {"event": "session"}}));
    })
    .await;
    let want = engine(
        [users.ratio(0, 1, 0), users.ratio(1, 1, 0)],
        &AnalysisConfig::default(),
    );
    let rel = *want.relative.value().unwrap();
    // The config change reaches the collector asynchronously; then the numbers are exact.
    let (s, want_se) = (&server, rel.std_error);
    let report = crate::support::eventually(
        "the new ratio metric",
        std::time::Duration::from_secs(10),
        move || async move {
            let report = results(s, "?metric=orders_per_session").await;
            let got = treatment(&report)["result"]["comparison"]["relative"]["std_error"].as_f64();
            got.is_some_and(|se| (se - want_se).abs() <= 1e-9 * want_se)
                .then_some(report)
        },
    )
    .await;
    close(
        &treatment(&report)["result"]["comparison"]["relative"]["estimate"],
        rel.estimate,
        "orders per session",
    );
    // A ratio has no other measure, and CUPED leaves it alone.
    let res = send(server.admin(
        Method::GET,
        "/api/v1/environments/development/experiments/hp/results?metric=orders_per_session&kind=value",
    ))
    .await;
    res.assert_status(StatusCode::BAD_REQUEST);
    assert!(res.body["message"].as_str().unwrap().contains("kind"));
    let cuped = results(&server, "?metric=orders_per_session&cuped=true").await;
    assert_eq!(cuped["cuped_lookback_days"], Value::Null);
}

#[tokio::test]
async fn corrections_adjust_across_variants_and_the_experiments_metrics() {
    let (server, users) = seeded().await;
    // The family: purchase, session, revenue_per_order, refund (one treatment each).
    let family = [
        (
            "purchase",
            engine(
                [users.converted(0, 1), users.converted(1, 1)],
                &AnalysisConfig::default(),
            ),
        ),
        (
            "session",
            engine(
                [users.converted(0, 0), users.converted(1, 0)],
                &AnalysisConfig::default(),
            ),
        ),
        (
            "revenue_per_order",
            engine(
                [users.ratio(0, 2, 1), users.ratio(1, 2, 1)],
                &AnalysisConfig::default(),
            ),
        ),
        (
            "refund",
            engine(
                [users.converted(0, 3), users.converted(1, 3)],
                &AnalysisConfig::default(),
            ),
        ),
    ];
    let defined: Vec<(&str, f64)> = family
        .iter()
        .filter_map(|(m, c)| c.relative.value().map(|l| (*m, l.p_value)))
        .collect();
    // Every user has a session, so that conversion lift is undefined (zero variance): not a
    // test, left out of the family.
    assert_eq!(
        defined.iter().map(|(m, _)| *m).collect::<Vec<_>>(),
        ["purchase", "revenue_per_order", "refund"]
    );
    let p: Vec<f64> = defined.iter().map(|(_, p)| *p).collect();
    for (method, name) in [
        (Correction::HolmBonferroni, "holm_bonferroni"),
        (Correction::BenjaminiHochberg, "benjamini_hochberg"),
    ] {
        let adjusted = adjust_p_values(&p, method);
        for (i, (metric, raw)) in defined.iter().enumerate() {
            let report = results(&server, &format!("?metric={metric}&correction={name}")).await;
            assert_eq!(report["correction"]["method"], name);
            assert_eq!(
                report["correction"]["metrics"],
                json!(["purchase", "session", "revenue_per_order", "refund"])
            );
            let t = treatment(&report);
            close(
                &t["result"]["comparison"]["relative"]["p_value"],
                *raw,
                metric,
            );
            close(&t["adjusted"]["p_value"], adjusted[i], metric);
            assert!(adjusted[i] >= *raw);
            // The control has no lift to adjust.
            assert_eq!(report["overall"]["arms"][0]["adjusted"], Value::Null);
        }
    }
    // Without a correction there is no adjusted column.
    let plain = results(&server, "").await;
    assert_eq!(plain["correction"], Value::Null);
    assert_eq!(treatment(&plain)["adjusted"], Value::Null);
    // The experiment's own correction applies by default, and `none` turns it off.
    update_experiment(&server, |experiment| {
        experiment["correction"] = json!("benjamini_hochberg");
    })
    .await;
    assert_eq!(
        results(&server, "").await["correction"]["method"],
        "benjamini_hochberg"
    );
    assert_eq!(
        results(&server, "?correction=none").await["correction"],
        Value::Null
    );
}

#[tokio::test]
async fn a_proper_prior_shrinks_the_bayesian_lift_as_gbstats_does() {
    let (server, users) = seeded().await;
    let arms = [users.converted(0, 1), users.converted(1, 1)];
    for (query, prior) in [
        (
            "?prior_mean=0&prior_sd=0.05",
            Prior {
                mean: 0.0,
                std_dev: 0.05,
                scale: LiftScale::Relative,
            },
        ),
        (
            "?prior_mean=0.01&prior_sd=0.02&prior_scale=absolute",
            Prior {
                mean: 0.01,
                std_dev: 0.02,
                scale: LiftScale::Absolute,
            },
        ),
    ] {
        let report = results(&server, query).await;
        let config = AnalysisConfig {
            prior: Some(prior),
            ..AnalysisConfig::default()
        };
        let want = engine(arms, &config);
        let want = want.bayesian.value().unwrap();
        let got = &treatment(&report)["result"]["comparison"]["bayesian"];
        close(&got["expected"], want.expected, "posterior mean");
        close(&got["std_dev"], want.std_dev, "posterior sd");
        close(&got["chance_to_win"], want.chance_to_win, "chance to win");
        assert_eq!(report["prior"]["std_dev"], json!(prior.std_dev));
        let flat = engine(arms, &AnalysisConfig::default());
        assert!(
            want.std_dev < flat.bayesian.value().unwrap().std_dev,
            "a proper prior adds information"
        );
    }
    // A prior in the experiment applies by default; `prior=flat` overrides it.
    update_experiment(&server, |experiment| {
        experiment["prior"] = json!({"mean": 0.0, "std_dev": 0.1});
    })
    .await;
    assert_eq!(
        results(&server, "").await["prior"],
        json!({"mean": 0.0, "std_dev": 0.1, "scale": "relative"})
    );
    assert_eq!(results(&server, "?prior=flat").await["prior"], Value::Null);
}

#[tokio::test]
async fn bad_analysis_settings_are_refused_with_their_name() {
    let server = Server::start().await;
    server
        .create("development", "experiments", &fixtures::experiment("hp"))
        .await;
    let mut flag = fixtures::split_flag("homepage", 10_000);
    flag["rules"][0]["experiment"] = json!("hp");
    server.create("development", "flags", &flag).await;
    for (query, names) in [
        ("?prior_sd=0", "prior_sd"),
        ("?prior_sd=-1&prior_mean=0", "prior_sd"),
        ("?prior_mean=0.1", "prior_sd"),
        ("?prior_sd=0.1&prior_scale=log", "prior_scale"),
        ("?prior=informative", "prior"),
        ("?correction=bonferroni", "correction"),
    ] {
        let res = send(server.admin(
            Method::GET,
            &format!("/api/v1/environments/development/experiments/hp/results{query}"),
        ))
        .await;
        res.assert_status(StatusCode::BAD_REQUEST);
        let message = res.body["message"].as_str().unwrap();
        assert!(message.starts_with(names), "{query}: {message}");
    }
    for (field, value, path) in [
        (
            "prior",
            json!({"mean": 0.0, "std_dev": 0.0}),
            "experiments.x.prior.std_dev",
        ),
        (
            "prior",
            json!({"mean": 0.0, "std_dev": -2.0}),
            "experiments.x.prior.std_dev",
        ),
        ("correction", json!("bonferroni"), "correction"),
        (
            "ratio_metrics",
            json!([{"key": "aov", "numerator": {"event": "purchase"}, "denominator": {"event": ""}}]),
            "experiments.x.ratio_metrics.aov.denominator.event",
        ),
        (
            "ratio_metrics",
            json!([{"key": "aov", "numerator": {"event": "purchase"}, "denominator": {"event": "order", "measure": "median"}}]),
            "measure",
        ),
    ] {
        let mut bad = fixtures::experiment("x");
        bad[field] = value;
        let res = send(
            server
                .admin(Method::POST, "/api/v1/environments/development/experiments")
                .json(&bad),
        )
        .await;
        assert!(res.status.is_client_error(), "{field}: {}", res.status);
        let text = res.body.to_string();
        assert!(text.contains(path), "{field}: {text}");
    }
}
