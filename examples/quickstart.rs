//! Quick start: connect to a Tailor server with an SDK key and print a flag's variant.
//!
//! ```text
//! TAILOR_SDK_KEY=tlr_sdk_... cargo run -p tailor-examples --example quickstart -- homepage
//! ```
//! Without `TAILOR_SDK_KEY` but with `TAILOR_ADMIN_KEY`, it creates an SDK key for the
//! `development` environment first. `TAILOR_URL` defaults to `http://127.0.0.1:8080` (the
//! server's default address). It fails, saying what to do, when no config arrives or the flag
//! does not exist.

use std::time::Duration;

use anyhow::bail;
use tailor::{Client, User};
use tailor_examples::server;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = server::url();
    server::wait_until_ready(&url, Duration::from_secs(120)).await?;
    let key = match (
        std::env::var("TAILOR_SDK_KEY"),
        std::env::var("TAILOR_ADMIN_KEY"),
    ) {
        (Ok(key), _) => key,
        (Err(_), Ok(admin)) => {
            server::create_sdk_key(&url, &admin, "development", "quickstart").await?
        }
        (Err(_), Err(_)) => bail!(
            "set TAILOR_SDK_KEY to an SDK key (the server prints one on its first start), or \
             TAILOR_ADMIN_KEY to create one"
        ),
    };
    let flag = std::env::args().nth(1).unwrap_or_else(|| "homepage".into());

    let client = Client::builder(url.as_str(), key).build().await?;
    let user = User::new("user-42")
        .with("country", "US")
        .with("lifecycle", "new");
    let detail = client.variant_detail(&user, &flag);
    let Some(revision) = detail.revision else {
        let why = client.status().last_error.unwrap_or_default();
        client.close().await.ok();
        bail!(
            "no config from {url} ({why}). Is the server running (`cargo run --release -p \
             tailor-server -- serve`) and TAILOR_URL right? Is TAILOR_SDK_KEY an SDK key?"
        );
    };
    if detail.key.is_none() {
        client.close().await.ok();
        bail!(
            "flag `{flag}` does not exist at revision {revision}: create it, or run the homepage \
             example first (`cargo run -p tailor-examples --example homepage`)"
        );
    }
    println!(
        "flag `{flag}` at revision {:?}: variant {:?} = {} ({:?})",
        detail.revision, detail.key, detail.value, detail.reason
    );
    client.close().await?;
    Ok(())
}
