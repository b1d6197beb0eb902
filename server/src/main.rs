//! `tailor-server serve`: runs the server on the embedded store (or as configured).
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::Parser;
use tailor_server::settings::{Cli, Command, LogFormat};
use tailor_server::Application;
use tracing_subscriber::EnvFilter;

// glibc's allocator spent about a third of the server's CPU under event ingest (arena locking and
// consolidation when buffers allocated on a worker are freed on the event writer thread);
// mimalloc's per-thread free lists avoid both. Measured in BENCHMARKS.md (Collector).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let Command::Serve(settings) = cli.command;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match settings.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
        LogFormat::Pretty => tracing_subscriber::fmt().with_env_filter(filter).init(),
    }
    // Thousands of SSE clients need thousands of file descriptors; raise the soft limit to the
    // hard limit rather than failing at the default 1024.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(error = %e, "could not raise the open-file limit");
    }
    let app = Application::build(&settings)
        .await
        .with_context(|| format!("starting with {}", settings.store_description()))?;
    if !app.new_keys.is_empty() {
        println!("\nFirst start: these keys are shown once. Store them now.");
        for key in &app.new_keys {
            println!("  {:<28} {}", key.label, key.secret);
        }
        println!();
    }
    tracing::info!(
        port = app.port(),
        store = %settings.store_description(),
        "tailor-server listening"
    );
    app.run_until_stopped().await.context("server failed")
}
