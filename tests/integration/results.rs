//! The collector and results engine: ingestion validation, attribution edge cases through the
//! HTTP API, rebuild identity, CSV, and the simulator's statistical coverage.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tailor_core::events::{Conversion, Event, Exposure};
use tailor_core::{assign, compile};
use tailor_examples::simulation::{self, Population, SEGMENTS};
use tailor_server::attribution::Attribution;
use tailor_server::results::{self, ResultsQuery};

use crate::support::{fixtures, send, Server};

const NOW: i64 = 1_790_000_000_000;

fn exposure(id: &str, user: &str, variant: &str, ts: i64) -> Value {
    json!({"type": "exposure", "id": id, "timestamp": ts, "user_key": user, "flag": "homepage",
           "variant": variant, "experiment": "hp", "rule": 0, "personalized": variant == "treatment",
           "revision": 2, "spec_version": 1})
}

fn conversion(id: &str, user: &str, ts: i64, value: Option<f64>) -> Value {
    let mut c = json!({"type": "conversion", "id": id, "timestamp": ts, "user_key": user, "event": "purchase"});
    if let Some(v) = value {
        c["value"] = json!(v);
    }
    c
}

/// A server with experiment `hp` on a 50/50 split flag `homepage`, and an SDK key.
pub(crate) async fn setup() -> (Server, String) {
    let server = Server::start().await;
    server
        .create("development", "experiments", &fixtures::experiment("hp"))
        .await;
    let mut flag = fixtures::split_flag("homepage", 10_000);
    flag["rules"][0]["experiment"] = json!("hp");
    server.create("development", "flags", &flag).await;
    let (_, sdk) = server.create_key("sdk", Some("development")).await;
    (server, sdk)
}

async fn post_events(server: &Server, key: &str, events: Vec<Value>) -> crate::support::Resp {
    send(
        server
            .with_key(Method::POST, "/sdk/v1/events", key)
            .json(&json!({"events": events})),
    )
    .await
}

/// Experiment `hp`'s results (`query`: e.g. `?metric=purchase`, or empty).
pub(crate) async fn results(server: &Server, query: &str) -> Value {
    let res = send(server.admin(
        Method::GET,
        &format!("/api/v1/environments/development/experiments/hp/results{query}"),
    ))
    .await;
    res.assert_status(StatusCode::OK);
    res.body
}

/// Waits until the results are loaded (after a start, the stored events are replayed in the
/// background).
async fn wait_for_results(server: &Server) {
    crate::support::eventually("results loaded", Duration::from_secs(60), || async {
        let res = send(server.admin(
            Method::GET,
            "/api/v1/environments/development/experiments/hp/results",
        ))
        .await;
        (res.status != StatusCode::SERVICE_UNAVAILABLE).then_some(())
    })
    .await
}

/// Users over every arm of a scope (`report["overall"]`, say).
pub(crate) fn users_in(scope: &Value) -> u64 {
    scope["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["users"].as_u64().unwrap())
        .sum()
}

fn arm<'a>(scope: &'a Value, variant: &str) -> &'a Value {
    scope["arms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["variant"] == variant)
        .unwrap()
}

#[tokio::test]
async fn bad_events_are_rejected_by_index_and_good_ones_kept() {
    let (server, sdk) = setup().await;
    let res = post_events(
        &server,
        &sdk,
        vec![
            exposure("e1", "u1", "control", NOW),
            json!({"type": "exposure", "id": "e2"}),
            conversion("c1", "u1", 1_000, None),
            conversion("c2", "", NOW, None),
            json!({"type": "teleport", "id": "x"}),
            conversion("c3", "u1", NOW + 1, Some(5.0)),
            json!({"type": "conversion", "id": "c4", "timestamp": "soon", "user_key": "u1", "event": "purchase"}),
            json!({"type": "conversion", "id": "c5", "timestamp": NOW, "user_key": "u1", "event": "purchase", "padding": "p".repeat(9000)}),
        ],
    )
    .await;
    res.assert_status(StatusCode::OK);
    assert_eq!(res.body["accepted"], 2, "{}", res.body);
    let rejected = res.body["rejected"].as_array().unwrap();
    let indexes: Vec<u64> = rejected
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [1, 2, 3, 4, 6, 7], "{}", res.body);
    let reason = |i: usize| rejected[i]["reason"].as_str().unwrap();
    assert!(reason(0).contains("missing field"), "{}", rejected[0]);
    assert!(
        reason(4).starts_with("timestamp: invalid type"),
        "a wrong type names its field: {}",
        rejected[4]
    );
    assert!(
        reason(5).contains("bytes of JSON"),
        "an oversized event is named as such: {}",
        rejected[5]
    );
    assert!(
        rejected[1]["reason"]
            .as_str()
            .unwrap()
            .contains("Unix milliseconds"),
        "{}",
        rejected[1]
    );
    assert!(
        rejected[2]["reason"].as_str().unwrap().contains("user_key"),
        "{}",
        rejected[2]
    );
    assert!(
        rejected[3]["reason"].as_str().unwrap().contains("teleport"),
        "{}",
        rejected[3]
    );

    let too_many: Vec<Value> = (0..1001)
        .map(|i| conversion(&format!("c{i}"), "u", NOW, None))
        .collect();
    let res = post_events(&server, &sdk, too_many).await;
    res.assert_error(StatusCode::BAD_REQUEST, "bad_request", "events");
    let res = send(
        server
            .with_key(Method::POST, "/sdk/v1/events", &sdk)
            .body("{not json"),
    )
    .await;
    res.assert_status(StatusCode::BAD_REQUEST);
    let res = send(
        server
            .admin(Method::POST, "/sdk/v1/events")
            .json(&json!({"events": []})),
    )
    .await;
    res.assert_status(StatusCode::FORBIDDEN);
    let res = send(
        server
            .anon(Method::POST, "/sdk/v1/events")
            .json(&json!({"events": []})),
    )
    .await;
    res.assert_status(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn attribution_edge_cases_through_the_api() {
    let (server, sdk) = setup().await;
    // u1: converts before exposure (not counted), then after (counted), with a duplicate resend.
    // u2: treatment, converts twice (one user converted, value summed).
    // u3: exposed to control, then to treatment: counted in control, reported as multi-variant.
    let batch = vec![
        conversion("c0", "u1", NOW - 10, Some(100.0)),
        exposure("e1", "u1", "control", NOW),
        conversion("c1", "u1", NOW + 10, Some(3.0)),
        exposure("e2", "u2", "treatment", NOW),
        conversion("c2", "u2", NOW + 5, Some(2.0)),
        conversion("c3", "u2", NOW + 6, Some(4.0)),
        exposure("e3", "u3", "control", NOW),
        exposure("e4", "u3", "treatment", NOW + 1),
    ];
    let res = post_events(&server, &sdk, batch.clone()).await;
    assert_eq!(res.body["duplicates"], 0, "{}", res.body);
    let res = post_events(&server, &sdk, batch).await;
    assert_eq!(
        res.body["duplicates"], 8,
        "a resent batch is a no-op: {}",
        res.body
    );

    let r = results(&server, "").await;
    let control = arm(&r["overall"], "control");
    let treatment = arm(&r["overall"], "treatment");
    assert_eq!(
        (control["users"].as_u64(), control["converted"].as_u64()),
        (Some(2), Some(1)),
        "{r}"
    );
    assert_eq!(control["value_sum"], 3.0);
    assert_eq!(
        (treatment["users"].as_u64(), treatment["converted"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(r["data_quality"]["multi_variant_users"], 1);
    assert!(r["data_quality"]["warnings"]
        .to_string()
        .contains("more than one variant"));
    assert_eq!(r["metric"], "purchase");
    assert!(r["revision"].as_u64().unwrap() >= 3);
    // Two users per arm at most: the comparison is explicitly not enough data, never NaN.
    assert_eq!(
        treatment["result"]["comparison"]["relative"]["status"], "not_enough_data",
        "{treatment}"
    );

    let v = results(&server, "?kind=value").await;
    assert_eq!(v["kind"], "value");
    assert_eq!(arm(&v["overall"], "treatment")["value_sum"], 6.0);

    let csv = send(server.admin(
        Method::GET,
        "/api/v1/environments/development/experiments/hp/results?format=csv",
    ))
    .await;
    csv.assert_status(StatusCode::OK);
    assert!(
        csv.text.starts_with("scope,variant,users,converted,mean"),
        "{}",
        csv.text
    );
    assert!(csv.text.contains("\noverall,control,2,1,"), "{}", csv.text);

    let bad = send(server.admin(
        Method::GET,
        "/api/v1/environments/development/experiments/hp/results?kind=median",
    ))
    .await;
    bad.assert_error(StatusCode::BAD_REQUEST, "bad_request", "kind");
    let missing = send(server.admin(
        Method::GET,
        "/api/v1/environments/development/experiments/nope/results",
    ))
    .await;
    missing.assert_status(StatusCode::NOT_FOUND);
}

fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A device whose clock runs two hours fast: its exposure is stored at the time it was received
/// (keeping the claimed time as `client_timestamp`), so the conversion that really followed it
/// counts. More than a day ahead is rejected.
#[tokio::test]
async fn an_exposure_from_a_clock_running_ahead_is_stored_when_received() {
    let (server, sdk) = setup().await;
    let hour = 3_600_000;
    let claimed = unix_ms_now() + 2 * hour;
    let res = post_events(
        &server,
        &sdk,
        vec![exposure("e1", "u1", "treatment", claimed)],
    )
    .await;
    assert_eq!(res.body["accepted"], 1, "{}", res.body);
    let res = post_events(
        &server,
        &sdk,
        vec![conversion("c1", "u1", unix_ms_now(), Some(5.0))],
    )
    .await;
    assert_eq!(res.body["accepted"], 1, "{}", res.body);
    let r = results(&server, "").await;
    let treatment = arm(&r["overall"], "treatment");
    assert_eq!(
        (treatment["users"].as_u64(), treatment["converted"].as_u64()),
        (Some(1), Some(1)),
        "{r}"
    );

    let db = rusqlite::Connection::open(server.data_dir().join("tailor.db")).unwrap();
    let (timestamp, client_timestamp): (i64, i64) = db
        .query_row(
            "SELECT payload ->> 'timestamp', payload ->> 'client_timestamp' FROM events WHERE id = 'e1'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(client_timestamp, claimed);
    assert!(
        timestamp < claimed - hour,
        "stored at its arrival: {timestamp}"
    );

    let res = post_events(
        &server,
        &sdk,
        vec![exposure("e2", "u2", "treatment", unix_ms_now() + 25 * hour)],
    )
    .await;
    assert_eq!(res.body["accepted"], 0, "{}", res.body);
    assert!(
        res.body["rejected"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("more than a day in the future")),
        "{}",
        res.body
    );
}

#[tokio::test]
async fn a_rebuild_from_raw_events_gives_identical_results_and_survives_restart() {
    let (mut server, sdk) = setup().await;
    let mut events = Vec::new();
    for u in 0..400 {
        let variant = if u % 2 == 0 { "control" } else { "treatment" };
        events.push(exposure(
            &format!("e{u}"),
            &format!("u{u}"),
            variant,
            NOW + u,
        ));
        if u % 5 == 0 || (u % 3 == 0 && variant == "treatment") {
            events.push(conversion(
                &format!("c{u}"),
                &format!("u{u}"),
                NOW + 1000 + u,
                Some(1.0 + f64::from(u as u32 % 7) * 0.33),
            ));
        }
    }
    for chunk in events.chunks(100) {
        post_events(&server, &sdk, chunk.to_vec())
            .await
            .assert_status(StatusCode::OK);
    }
    let mut before = results(&server, "?kind=value&sequential=true").await;
    let rebuilt = send(server.admin(
        Method::POST,
        "/api/v1/environments/development/results/rebuild",
    ))
    .await;
    rebuilt.assert_status(StatusCode::OK);
    assert_eq!(
        rebuilt.body["events_replayed"].as_u64(),
        Some(events.len() as u64)
    );
    let mut after = results(&server, "?kind=value&sequential=true").await;
    before["analyzed_at"] = Value::Null;
    after["analyzed_at"] = Value::Null;
    assert_eq!(before, after, "rebuild changed the numbers");

    server.restart().await;
    wait_for_results(&server).await;
    let mut restarted = results(&server, "?kind=value&sequential=true").await;
    restarted["analyzed_at"] = Value::Null;
    assert_eq!(before, restarted, "a restart rebuilt different numbers");
    let arms = before["overall"]["arms"].as_array().unwrap();
    assert_eq!(arms[0]["users"], 200);
    assert!(
        arms[1]["result"]["comparison"]["sequential"]["absolute"]["status"] == "ok",
        "{}",
        arms[1]
    );
}

/// Runs the simulation in-process through the same engine, attribution and statistics.
fn simulate_in_process(seed: u64, visitors: u32) -> results::ExperimentReport {
    let snapshot = compile(simulation::config().unwrap()).unwrap();
    let mut attribution = Attribution::default();
    let mut population = Population::new(seed);
    for i in 0..visitors {
        let visitor = population.visitor();
        let a = assign(&snapshot, &visitor.user, simulation::FLAG);
        let Some(experiment) = a.experiment else {
            continue;
        };
        let ts = NOW + i64::from(i);
        attribution.apply(&Event::Exposure(Exposure {
            id: format!("e{i}"),
            timestamp: ts,
            user_key: visitor.user.key().to_string(),
            flag: simulation::FLAG.into(),
            variant: a.variant_key().unwrap().into(),
            experiment: experiment.into(),
            rule: a.rule_index().unwrap(),
            segment: a.segment.map(str::to_string),
            personalized: a.personalized(),
            revision: snapshot.revision(),
            spec_version: 1,
        }));
        if population.converts(&visitor, a.personalized()) {
            attribution.apply(&Event::Conversion(Conversion {
                id: format!("c{i}"),
                timestamp: ts + 1,
                user_key: visitor.user.key().to_string(),
                event: simulation::METRIC.into(),
                value: Some(25.0),
            }));
        }
    }
    let totals = attribution.totals(simulation::EXPERIMENT);
    results::report(
        "sim",
        &snapshot,
        simulation::EXPERIMENT,
        totals.as_ref(),
        &ResultsQuery::default(),
        String::new(),
    )
    .unwrap()
}

#[test]
fn the_95_percent_interval_covers_the_true_lift_in_at_least_90_percent_of_200_runs() {
    let mut covered = 0;
    let mut intervals = 0;
    let mut srm_flags = 0;
    for seed in 0..200 {
        let report = simulate_in_process(seed, 12_000);
        if report
            .overall
            .srm
            .as_ref()
            .and_then(|s| s.value())
            .is_some_and(|s| s.mismatch)
        {
            srm_flags += 1;
        }
        let lifts = &report.personalization.as_ref().unwrap().segments;
        for truth in SEGMENTS {
            let lift = lifts.iter().find(|l| l.segment == truth.key).unwrap();
            let abs = lift
                .comparison
                .absolute
                .value()
                .expect("enough data in every segment");
            intervals += 1;
            if abs.ci.lower <= truth.lift() && truth.lift() <= abs.ci.upper {
                covered += 1;
            }
        }
    }
    let rate = f64::from(covered) / f64::from(intervals);
    eprintln!("coverage {covered}/{intervals} = {rate:.3}; SRM flagged in {srm_flags}/200 runs");
    assert!(rate >= 0.90, "coverage {rate:.3} below 90%");
    assert!(
        rate <= 0.99,
        "coverage {rate:.3} suspiciously high: intervals too wide?"
    );
    assert!(
        srm_flags <= 2,
        "SRM flagged {srm_flags} times at p < 0.001 on correctly split traffic"
    );
}

#[tokio::test]
async fn the_simulator_recovers_a_known_lift_end_to_end() {
    let server = Server::start().await;
    let res = send(
        server
            .admin(Method::POST, "/api/v1/environments/development/import")
            .json(&simulation::config().unwrap()),
    )
    .await;
    res.assert_status(StatusCode::OK);
    let (_, sdk_key) = server.create_key("sdk", Some("development")).await;
    let client = tailor::Client::builder(server.url(""), sdk_key)
        .event_capacity(100_000)
        .build()
        .await
        .unwrap();
    let mut population = Population::new(42);
    for _ in 0..20_000 {
        let visitor = population.visitor();
        let v = client.variant_detail(&visitor.user, simulation::FLAG);
        if population.converts(&visitor, v.key.as_deref() != Some("generic")) {
            client.track(&visitor.user, simulation::METRIC, Some(25.0));
        }
    }
    client.close().await.unwrap();
    assert_eq!(client.event_stats().dropped, 0);
    let r = send(server.admin(
        Method::GET,
        "/api/v1/environments/development/experiments/homepage-personalization/results",
    ))
    .await;
    r.assert_status(StatusCode::OK);
    let pooled = &r.body["personalization"]["pooled"];
    let users =
        pooled["personalized_users"].as_u64().unwrap() + pooled["generic_users"].as_u64().unwrap();
    assert_eq!(
        users, 20_000,
        "every visitor is in exactly one arm: {pooled}"
    );
    // Beginners have the largest true lift (+3 points); its interval must not exclude it.
    let beginners = r.body["personalization"]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["segment"] == "beginners")
        .unwrap();
    let ci = &beginners["comparison"]["absolute"]["ci"];
    let truth = SEGMENTS[0].lift();
    assert!(
        ci["lower"].as_f64().unwrap() <= truth && truth <= ci["upper"].as_f64().unwrap(),
        "{beginners}"
    );
    assert!(
        r.body["data_quality"]["warnings"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{}",
        r.body["data_quality"]
    );
}

/// A restart replays the stored events in the background: configs are served at once, results
/// answer 503 "loading" (and `/readyz` says which environment) until the replay is done, and
/// events ingested meanwhile are acknowledged and counted exactly once.
#[tokio::test]
async fn configs_are_served_while_a_large_event_log_loads_after_a_restart() {
    const USERS: usize = 100_000;
    const EVENTS_PER_USER: usize = 3;
    let (mut server, sdk) = setup().await;
    server.stop().await;
    {
        // A large log, written straight into the embedded store's tables: one batch row per
        // 10,000 events, and the ids that make resends duplicates.
        let mut db = rusqlite::Connection::open(server.data_dir().join("tailor.db")).unwrap();
        let tx = db.transaction().unwrap();
        let mut batch = Vec::new();
        for n in 0..USERS * EVENTS_PER_USER {
            let user = n % USERS;
            let variant = if user.is_multiple_of(2) {
                "control"
            } else {
                "treatment"
            };
            let id = format!("old-{n}");
            batch.push(exposure(&id, &format!("u{user}"), variant, NOW + n as i64).to_string());
            tx.execute(
                "INSERT INTO event_ids (environment, id) VALUES ('development', ?1)",
                [&id],
            )
            .unwrap();
            if batch.len() == 10_000 {
                tx.execute(
                    "INSERT INTO event_batches (environment, events) VALUES ('development', ?1)",
                    [format!("[{}]", batch.join(","))],
                )
                .unwrap();
                batch.clear();
            }
        }
        tx.commit().unwrap();
    }
    server.spawn().await;

    // Ready for SDKs at once.
    send(server.with_key(Method::GET, "/sdk/v1/config", &sdk))
        .await
        .assert_status(StatusCode::OK);
    let loading = send(server.admin(
        Method::GET,
        "/api/v1/environments/development/experiments/hp/results",
    ))
    .await;
    loading.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        loading.body["message"]
            .as_str()
            .unwrap()
            .contains("loading"),
        "{}",
        loading.body
    );
    let ready = send(server.anon(Method::GET, "/readyz")).await;
    ready.assert_status(StatusCode::OK);
    assert!(
        ready.body["results_loading"]["development"].is_u64(),
        "{}",
        ready.body
    );

    // Events ingested during the replay: new users, and a resend of a stored event.
    let mut during: Vec<Value> = (0..10)
        .map(|i| {
            exposure(
                &format!("new-{i}"),
                &format!("new-user-{i}"),
                "treatment",
                NOW,
            )
        })
        .collect();
    during.push(exposure("old-0", "u0", "control", NOW));
    let res = post_events(&server, &sdk, during).await;
    res.assert_status(StatusCode::OK);
    assert_eq!(res.body["accepted"], 11);
    assert_eq!(res.body["duplicates"], 1);

    let report = crate::support::eventually(
        "results after the replay",
        Duration::from_secs(120),
        || async {
            let res = send(server.admin(
                Method::GET,
                "/api/v1/environments/development/experiments/hp/results",
            ))
            .await;
            (res.status == StatusCode::OK).then_some(res.body)
        },
    )
    .await;
    assert_eq!(
        users_in(&report["overall"]),
        USERS as u64 + 10,
        "every user once, old and new"
    );
    assert_eq!(
        arm(&report["overall"], "treatment")["users"],
        USERS as u64 / 2 + 10
    );
    let ready = send(server.anon(Method::GET, "/readyz")).await;
    assert!(
        ready.body.get("results_loading").is_none(),
        "{}",
        ready.body
    );
}

/// A results CSV is safe to open in a spreadsheet: text cells that would run as formulas (here
/// segment labels sent with exposures) start with `'`, numbers stay numbers, and the file is a
/// download; no API answer, CSV, JSON or error, may be sniffed as another content type.
#[tokio::test]
async fn csv_exports_neutralise_formulas_and_api_answers_are_not_sniffed() {
    let (mut server, _sdk) = setup().await;
    // Labels like these can no longer be sent (exposures must name the config's segments) nor
    // configured (the key rule), but events stored by an earlier version may hold them: they
    // are written into the stopped server's event log, as that version stored them.
    let segments = [r#"=HYPERLINK("http://x")"#, "-2+3", "@SUM(1)"];
    let mut events = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        for variant in ["control", "treatment"] {
            let mut e = exposure(
                &format!("e{i}{variant}"),
                &format!("u{i}{variant}"),
                variant,
                NOW,
            );
            e["segment"] = json!(segment);
            events.push(e);
        }
    }
    server.stop().await;
    let db = rusqlite::Connection::open(server.data_dir().join("tailor.db")).unwrap();
    for e in &events {
        db.execute(
            "INSERT INTO event_ids (environment, id) VALUES ('development', ?1)",
            [e["id"].as_str().unwrap()],
        )
        .unwrap();
    }
    db.execute(
        "INSERT INTO event_batches (environment, events) VALUES ('development', ?1)",
        [Value::Array(events).to_string()],
    )
    .unwrap();
    drop(db);
    server.spawn().await;
    wait_for_results(&server).await;

    let csv = send(server.admin(
        Method::GET,
        "/api/v1/environments/development/experiments/hp/results?format=csv",
    ))
    .await;
    csv.assert_status(StatusCode::OK);
    for row in [
        "\n\"'=HYPERLINK(\"\"http://x\"\")\",control,1,0,",
        "\n'-2+3,treatment,1,0,",
        "\n'@SUM(1),control,1,0,",
    ] {
        assert!(csv.text.contains(row), "no {row:?} in\n{}", csv.text);
    }
    for line in csv.text.lines() {
        assert!(
            !line
                .trim_start_matches('"')
                .starts_with(['=', '+', '-', '@', '\t', '\r']),
            "a row starts like a formula: {line:?}"
        );
    }
    let header = |res: &crate::support::Resp, name: &str| {
        res.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(
        header(&csv, "content-disposition").as_deref(),
        Some(r#"attachment; filename="hp-results.csv""#)
    );
    assert_eq!(
        header(&csv, "x-content-type-options").as_deref(),
        Some("nosniff")
    );

    let json = send(server.admin(
        Method::GET,
        "/api/v1/environments/development/experiments/hp/results",
    ))
    .await;
    json.assert_status(StatusCode::OK);
    assert_eq!(
        header(&json, "x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(
        header(&json, "content-disposition"),
        None,
        "JSON is not a download"
    );
    let missing = send(server.admin(
        Method::GET,
        "/api/v1/environments/development/experiments/nope/results?format=csv",
    ))
    .await;
    missing.assert_status(StatusCode::NOT_FOUND);
    assert_eq!(
        header(&missing, "x-content-type-options").as_deref(),
        Some("nosniff")
    );
}

/// An exposure sent with the public client key that names a variant, segment, rule, flag or
/// experiment the config does not define is rejected on its own, with a reason; it never becomes
/// an arm or a segment row.
#[tokio::test]
async fn exposures_naming_what_the_config_does_not_define_are_rejected() {
    let (server, _sdk) = setup().await;
    let (_, client_key) = server.create_key("client", Some("development")).await;
    let now = 1_790_000_000_000;
    let forged = |id: &str, field: &str, value: Value| {
        let mut e = exposure(id, "u9", "treatment", now);
        e[field] = value;
        e
    };
    let batch = vec![
        exposure("ok", "u1", "treatment", now),
        forged("v", "variant", json!("@SUM(9)")),
        forged("s", "segment", json!("made-up")),
        forged("r", "rule", json!(7)),
        forged("f", "flag", json!("nope")),
        forged("x", "experiment", json!("invented")),
        forged("n", "revision", json!(999)),
    ];
    let res = post_events(&server, &client_key, batch).await;
    res.assert_status(StatusCode::OK);
    assert_eq!(res.body["accepted"], 1, "{}", res.body);
    let reasons: Vec<(u64, String)> = res.body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let starts: Vec<(u64, &str)> = reasons
        .iter()
        .map(|(i, r)| (*i, r.split(':').next().unwrap()))
        .collect();
    assert_eq!(
        starts,
        [
            (1, "variant"),
            (2, "segment"),
            (3, "rule"),
            (4, "flag"),
            (5, "experiment"),
            (6, "revision")
        ],
        "{reasons:?}"
    );
    let metrics = send(server.anon(Method::GET, "/metrics")).await.text;
    assert!(
        metrics.contains(r#"tailor_events_rejected_total{field="variant"} 1"#),
        "rejections are counted by field"
    );
    let r = results(&server, "").await;
    let arms: Vec<&str> = r["overall"]["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["variant"].as_str().unwrap())
        .collect();
    assert_eq!(arms, ["control", "treatment"], "{r}");
    assert!(
        !r.to_string().contains("made-up") && !r.to_string().contains("@SUM"),
        "{r}"
    );
}

/// CUPED end to end: users' purchases in the lookback before their first exposure are the
/// covariate. The report's adjusted lifts equal the statistics engine fed with sums computed
/// here from the events sent (the plain definition), the interval narrows, and a purchase
/// outside the lookback or after the exposure is not part of the covariate.
#[tokio::test]
async fn cuped_adjusts_with_purchases_in_the_lookback_before_first_exposure() {
    use tailor_server::stats::{self, AnalysisConfig, ArmStats, Covariate, ExperimentStats};

    let server = Server::start().await;
    let mut experiment = fixtures::experiment("hp");
    experiment["cuped_lookback_days"] = json!(7);
    server
        .create("development", "experiments", &experiment)
        .await;
    let mut flag = fixtures::split_flag("homepage", 10_000);
    flag["rules"][0]["experiment"] = json!("hp");
    server.create("development", "flags", &flag).await;
    let (_, sdk) = server.create_key("sdk", Some("development")).await;

    let day = 86_400_000;
    // Spenders before keep spending after: a covariate that predicts the outcome.
    let mut events = Vec::new();
    // Per arm: (users, Σx, Σx², Σxy, Σy, Σy²) for value; (users, with x, with both, with y).
    let mut value = [[0.0f64; 6]; 2];
    let mut conversion_sums = [[0u64; 4]; 2];
    for u in 0..400u32 {
        let user = format!("u{u}");
        let arm = (u % 2) as usize;
        let variant = ["control", "treatment"][arm];
        let habit = f64::from(u % 7);
        let pre = if u % 3 == 0 { 0.0 } else { habit * 5.0 + 1.0 };
        let post = if u % 5 == 0 {
            0.0
        } else {
            habit * 5.0 + 2.0 + arm as f64 * 3.0
        };
        if pre > 0.0 {
            // Two days before the exposure: inside the 7-day lookback.
            events.push(conversion(
                &format!("p{u}"),
                &user,
                NOW - 2 * day,
                Some(pre),
            ));
        }
        // Twenty days before: outside the lookback, never part of the covariate.
        events.push(conversion(
            &format!("o{u}"),
            &user,
            NOW - 20 * day,
            Some(1_000.0),
        ));
        events.push(exposure(&format!("e{u}"), &user, variant, NOW));
        if post > 0.0 {
            events.push(conversion(
                &format!("q{u}"),
                &user,
                NOW + 60_000,
                Some(post),
            ));
        }
        let v = &mut value[arm];
        v[0] += 1.0;
        v[1] += pre;
        v[2] += pre * pre;
        v[3] += pre * post;
        v[4] += post;
        v[5] += post * post;
        let c = &mut conversion_sums[arm];
        c[0] += 1;
        c[1] += u64::from(pre > 0.0);
        c[2] += u64::from(pre > 0.0 && post > 0.0);
        c[3] += u64::from(post > 0.0);
    }
    for chunk in events.chunks(500) {
        let res = post_events(&server, &sdk, chunk.to_vec()).await;
        res.assert_status(StatusCode::OK);
    }

    let plain = results(&server, "?kind=value").await;
    let adjusted = results(&server, "?kind=value&cuped=true").await;
    assert_eq!(adjusted["cuped_lookback_days"], 7, "{adjusted}");
    assert_eq!(plain["cuped_lookback_days"], Value::Null);
    let comparison = |r: &Value| arm(&r["overall"], "treatment")["result"]["comparison"].clone();
    let (p, a) = (comparison(&plain), comparison(&adjusted));
    assert_eq!(p["cuped"], Value::Null);

    // The engine on the plain definition's sums.
    let expected = stats::analyze(
        &ExperimentStats {
            arms: value
                .iter()
                .map(|v| ArmStats::continuous(v[0] as u64, v[4], v[5]))
                .collect(),
            weights: vec![1.0, 1.0],
            control: 0,
            covariates: Some(
                value
                    .iter()
                    .map(|v| Covariate {
                        sum: v[1],
                        sum_squares: v[2],
                        sum_products: v[3],
                    })
                    .collect(),
            ),
        },
        &AnalysisConfig::default(),
    )
    .unwrap();
    let want = expected.arms[1].comparison.unwrap();
    let want_abs = want.absolute.value().unwrap();
    let close = |got: &Value, want: f64| {
        let got = got.as_f64().unwrap();
        assert!(
            (got - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{got} vs {want}"
        );
    };
    close(&a["absolute"]["estimate"], want_abs.estimate);
    close(&a["absolute"]["std_error"], want_abs.std_error);
    close(&a["cuped"]["theta"], want.cuped.unwrap().theta);
    let reduction = a["cuped"]["variance_reduction"].as_f64().unwrap();
    assert!(
        reduction > 0.1,
        "a predictive covariate removes variance: {reduction}"
    );
    assert!(
        a["absolute"]["std_error"].as_f64().unwrap() < p["absolute"]["std_error"].as_f64().unwrap(),
        "the adjusted interval is narrower: {a} vs {p}"
    );

    // Conversion: whether each user purchased before, and after.
    let adjusted = results(&server, "?cuped=true").await;
    let a = comparison(&adjusted);
    let expected = stats::analyze(
        &ExperimentStats {
            arms: conversion_sums
                .iter()
                .map(|c| ArmStats::binomial(c[0], c[3]))
                .collect(),
            weights: vec![1.0, 1.0],
            control: 0,
            covariates: Some(
                conversion_sums
                    .iter()
                    .map(|c| Covariate {
                        sum: c[1] as f64,
                        sum_squares: c[1] as f64,
                        sum_products: c[2] as f64,
                    })
                    .collect(),
            ),
        },
        &AnalysisConfig::default(),
    )
    .unwrap();
    let want = expected.arms[1].comparison.unwrap();
    close(
        &a["relative"]["estimate"],
        want.relative.value().unwrap().estimate,
    );
    close(&a["cuped"]["theta"], want.cuped.unwrap().theta);

    // The lookback is fixed once the experiment runs.
    let current = send(server.admin(
        Method::GET,
        "/api/v1/environments/development/experiments/hp",
    ))
    .await;
    let mut changed = current.body.clone();
    changed["cuped_lookback_days"] = json!(30);
    let res = send(
        server
            .admin(
                Method::PUT,
                "/api/v1/environments/development/experiments/hp",
            )
            .header("If-Match", current.etag())
            .json(&changed),
    )
    .await;
    res.assert_problem_at("experiments.hp.cuped_lookback_days");
    // And out of range is refused with its path.
    let mut bad = fixtures::experiment("hp2");
    bad["cuped_lookback_days"] = json!(366);
    let res = send(
        server
            .admin(Method::POST, "/api/v1/environments/development/experiments")
            .json(&bad),
    )
    .await;
    res.assert_problem_at("experiments.hp2.cuped_lookback_days");
}
