//! Quick start: connect to a Tailor server with an SDK key and print a flag's variant.
//!
//! ```text
//! TAILOR_SDK_KEY=tlr_sdk_... cargo run -p tailor-examples --example quickstart -- homepage
//! ```
//! `TAILOR_URL` defaults to `http://127.0.0.1:8080` (the server's default address).

use anyhow::Context;
use tailor::{Client, User};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("TAILOR_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let key = std::env::var("TAILOR_SDK_KEY")
        .context("set TAILOR_SDK_KEY to an SDK key (the server prints one on its first start)")?;
    let flag = std::env::args().nth(1).unwrap_or_else(|| "homepage".into());

    let client = Client::builder(url, key).build().await?;
    let user = User::new("user-42")
        .with("country", "US")
        .with("lifecycle", "new");
    let detail = client.variant_detail(&user, &flag);
    println!(
        "flag `{flag}` at revision {:?}: variant {:?} = {} ({:?})",
        detail.revision, detail.key, detail.value, detail.reason
    );
    client.close().await?;
    Ok(())
}
