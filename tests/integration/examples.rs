//! The README's walk through the examples, run as a newcomer runs them: `homepage`, then
//! `quickstart` (with only the admin key), then `simulate`, against a real server; and
//! `quickstart` with no server at all.

use std::process::{Command, Output, Stdio};

use reqwest::Method;

use crate::support::{example_binary, send, Server, ADMIN_KEY};

/// Runs an example with `TAILOR_URL` and `TAILOR_ADMIN_KEY` (blocking: the examples finish by
/// themselves within seconds).
async fn run(name: &str, url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(example_binary(name));
    cmd.args(args)
        .env("TAILOR_URL", url)
        .env("TAILOR_ADMIN_KEY", ADMIN_KEY)
        .env_remove("TAILOR_SDK_KEY")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    tokio::task::spawn_blocking(move || cmd.output().expect("running the example"))
        .await
        .expect("the example's task")
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn the_examples_compose_as_the_readme_runs_them() {
    let server = Server::start().await;
    let url = server.url("");

    let homepage = run("homepage", &url, &[], &[]).await;
    assert!(homepage.status.success(), "{}", text(&homepage));
    assert!(
        text(&homepage).contains("export TAILOR_SDK_KEY=tlr_sdk_"),
        "homepage prints the SDK key it created: {}",
        text(&homepage)
    );

    let quickstart = run("quickstart", &url, &["homepage"], &[]).await;
    assert!(quickstart.status.success(), "{}", text(&quickstart));
    assert!(
        text(&quickstart).contains("flag `homepage` at revision"),
        "{}",
        text(&quickstart)
    );
    let missing = run("quickstart", &url, &["no-such-flag"], &[]).await;
    assert!(!missing.status.success(), "an unknown flag fails");
    assert!(
        text(&missing).contains("flag `no-such-flag` does not exist"),
        "{}",
        text(&missing)
    );

    let simulate = run("simulate", &url, &["3000", "7"], &[]).await;
    assert!(simulate.status.success(), "{}", text(&simulate));
    assert!(
        text(&simulate).contains("warnings: []"),
        "{}",
        text(&simulate)
    );
    // The homepage example's experiment is untouched by the simulation, with no warning.
    let report = send(server.admin(
        Method::GET,
        "/api/v1/environments/development/experiments/homepage-personalization/results",
    ))
    .await;
    assert_eq!(
        report.body["data_quality"]["warnings"],
        serde_json::json!([]),
        "{}",
        report.text
    );
}

#[tokio::test]
async fn quickstart_without_a_server_fails_saying_what_to_do() {
    // A port nothing listens on: the quickstart waits up to 2 minutes for a server that is
    // starting, so point it at one that refuses at once and give it a short patience.
    let output = run(
        "quickstart",
        "http://127.0.0.1:9",
        &["homepage"],
        &[("TAILOR_WAIT_SECS", "1")],
    )
    .await;
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("no Tailor server at http://127.0.0.1:9"),
        "{}",
        text(&output)
    );
}
