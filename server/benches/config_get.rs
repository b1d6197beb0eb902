//! `GET /sdk/v1/config` throughput and p99 under `wrk`, against a fixed-bytes ceiling.
//!
//! ```sh
//! apt-get install -y wrk
//! cargo bench -p tailor-server --bench config_get
//! ```
//!
//! Spawns the release `tailor-server` (built by `cargo bench`) on a fresh data directory, imports
//! a realistic 100-flag config (≈27 KB), creates an SDK key, and runs
//! `wrk -t1 -c32 -d10s --latency` for three cases: 200 with `Accept-Encoding: gzip`, 200 without,
//! and 304 (`If-None-Match` with the current ETag). The same cases run against the practical
//! ceiling: this program re-executed as a trivial actix-web server with the same worker count that
//! returns the same bytes (gzip, plain or 304 by the same headers) with no auth, routing
//! middleware or metrics. Tailor's numbers are reported as a ratio of it. Loopback only.
//!
//! Environment variables: `BENCH_DURATION` (seconds, default 10), `BENCH_CONNECTIONS` (32),
//! `BENCH_THREADS` (1), `BENCH_FLAGS` (100), `BENCH_RUNS` (1; the median by requests/s is shown),
//! `TAILOR_BENCH_WORKERS` (2), `BENCH_SAVE_CONFIG` (a path: save the served document there),
//! `BENCH_SETUP_ONLY=1` (stop after the setup checks).

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use common::{env_or, Spawned};

const CEILING_DIR: &str = "TAILOR_BENCH_CEILING_DIR";

struct Case {
    name: &'static str,
    gzip: bool,
    conditional: bool,
}

const CASES: [Case; 3] = [
    Case {
        name: "200, Accept-Encoding: gzip",
        gzip: true,
        conditional: false,
    },
    Case {
        name: "200, identity",
        gzip: false,
        conditional: false,
    },
    Case {
        name: "304, If-None-Match",
        gzip: false,
        conditional: true,
    },
];

#[derive(Debug, Clone, Copy)]
struct WrkResult {
    rps: f64,
    requests: f64,
    /// Server CPU time (user + system) per request, microseconds.
    cpu_us: f64,
    p50_ms: f64,
    p99_ms: f64,
    bytes_per_req: f64,
    errors: u64,
}

fn main() -> anyhow::Result<()> {
    if let Ok(dir) = std::env::var(CEILING_DIR) {
        return ceiling::run(&dir);
    }
    common::raise_nofile();
    if Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        bail!("wrk is not installed: apt-get update && apt-get install -y wrk");
    }
    let duration: u64 = env_or("BENCH_DURATION", 10);
    let connections: usize = env_or("BENCH_CONNECTIONS", 32);
    let threads: usize = env_or("BENCH_THREADS", 1);
    let flags: usize = env_or("BENCH_FLAGS", 100);
    let runs: usize = env_or("BENCH_RUNS", 1).max(1);
    let workers: usize = env_or("TAILOR_BENCH_WORKERS", 2);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let server = rt.block_on(common::spawn_server(workers))?;
    let addr = server.addr;
    let (secret, etag, plain, gzip) = rt.block_on(async {
        common::import_fixture(addr, common::ADMIN_KEY, "development", flags).await?;
        let secret = common::sdk_key(addr, common::ADMIN_KEY, "development").await?;
        let auth = format!("Bearer {secret}");
        let plain = common::request(
            addr,
            "GET",
            "/sdk/v1/config",
            &[("Authorization", &auth)],
            None,
        )
        .await?;
        let gzip = common::request(
            addr,
            "GET",
            "/sdk/v1/config",
            &[("Authorization", &auth), ("Accept-Encoding", "gzip")],
            None,
        )
        .await?;
        if plain.status != 200 || gzip.header("content-encoding") != Some("gzip") {
            bail!(
                "unexpected config responses: {} / {:?}",
                plain.status,
                gzip.header("content-encoding")
            );
        }
        let etag = plain.header("etag").context("no ETag")?.to_string();
        let not_modified = common::request(
            addr,
            "GET",
            "/sdk/v1/config",
            &[("Authorization", &auth), ("If-None-Match", &etag)],
            None,
        )
        .await?;
        if not_modified.status != 304 {
            bail!(
                "If-None-Match with the current ETag answered {}",
                not_modified.status
            );
        }
        anyhow::Ok((secret, etag, plain.body, gzip.body))
    })?;

    if let Ok(path) = std::env::var("BENCH_SAVE_CONFIG") {
        std::fs::write(&path, &plain)?;
    }
    if env_or("BENCH_SETUP_ONLY", 0u8) == 1 {
        return Ok(());
    }

    // The ceiling: the same bytes from a trivial server with the same worker count.
    let dir = std::env::temp_dir().join(format!("tailor-bench-ceiling-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("config.json"), &plain)?;
    std::fs::write(dir.join("config.json.gz"), &gzip)?;
    std::fs::write(dir.join("etag"), &etag)?;
    let port = common::free_port()?;
    let ceiling = Spawned {
        child: Command::new(std::env::current_exe()?)
            .env(CEILING_DIR, &dir)
            .env("TAILOR_BENCH_CEILING_BIND", format!("127.0.0.1:{port}"))
            .env("TAILOR_BENCH_WORKERS", workers.to_string())
            .stdin(Stdio::null())
            .spawn()?,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        dir: Some(dir),
    };
    rt.block_on(common::wait_ready(ceiling.addr, "/"))?;

    println!(
        "1-min load average at the start: {}",
        common::load_average()
    );
    println!(
        "config: {flags} flags, {} bytes JSON, {} bytes gzip, ETag {etag}; servers: {workers} workers each; \
         wrk -t{threads} -c{connections} -d{duration}s --latency; {runs} run(s) per cell",
        plain.len(),
        gzip.len()
    );
    let auth = format!("Authorization: Bearer {secret}");
    let inm = format!("If-None-Match: {etag}");
    let mut rows = Vec::new();
    for case in &CASES {
        let mut headers = vec![auth.clone()];
        if case.gzip {
            headers.push("Accept-Encoding: gzip".into());
        }
        if case.conditional {
            headers.push(inm.clone());
        }
        let mut ours = Vec::new();
        let mut base = Vec::new();
        // Warm both up briefly, then alternate measured runs.
        for (target, pid) in [
            (addr, server.child.id()),
            (ceiling.addr, ceiling.child.id()),
        ] {
            wrk(target, pid, &headers, threads, connections, 2)?;
        }
        for _ in 0..runs {
            ours.push(wrk(
                addr,
                server.child.id(),
                &headers,
                threads,
                connections,
                duration,
            )?);
            base.push(wrk(
                ceiling.addr,
                ceiling.child.id(),
                &headers,
                threads,
                connections,
                duration,
            )?);
        }
        rows.push((case.name, median(ours), median(base)));
    }
    drop(ceiling);
    drop(server);

    println!();
    println!(
        "| case | Tailor req/s | Tailor p50 | Tailor p99 | ceiling req/s | ceiling p99 | Tailor / ceiling | \
         server CPU/req Tailor / ceiling | bytes/resp (wire) | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, t, c) in rows {
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms | {:.0} | {:.2} ms | {:.0}% | {:.1} / {:.1} µs | {:.0} | {} |",
            t.rps,
            t.p50_ms,
            t.p99_ms,
            c.rps,
            c.p99_ms,
            100.0 * t.rps / c.rps,
            t.cpu_us,
            c.cpu_us,
            t.bytes_per_req,
            t.errors + c.errors
        );
    }
    println!("1-min load average at the end: {}", common::load_average());
    Ok(())
}

fn median(mut v: Vec<WrkResult>) -> WrkResult {
    v.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    v[v.len() / 2]
}

fn wrk(
    addr: SocketAddr,
    pid: u32,
    headers: &[String],
    threads: usize,
    connections: usize,
    secs: u64,
) -> anyhow::Result<WrkResult> {
    let mut cmd = Command::new("wrk");
    cmd.arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{secs}s"))
        .arg("--timeout")
        .arg("5s")
        .arg("--latency");
    for h in headers {
        cmd.arg("-H").arg(h);
    }
    cmd.arg(format!("http://{addr}/sdk/v1/config"));
    let cpu0 = common::cpu_time(pid);
    let out = cmd.output().context("running wrk")?;
    let cpu = common::cpu_time(pid).saturating_sub(cpu0);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    let mut r = parse_wrk(&text).with_context(|| format!("could not parse wrk output:\n{text}"))?;
    r.cpu_us = cpu.as_secs_f64() * 1e6 / r.requests.max(1.0);
    Ok(r)
}

fn duration_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mul) = if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * mul)
}

fn bytes(s: &str) -> Option<f64> {
    let s = s.trim();
    let units = [
        ("GB", 1024.0 * 1024.0 * 1024.0),
        ("MB", 1024.0 * 1024.0),
        ("KB", 1024.0),
        ("B", 1.0),
    ];
    units.iter().find_map(|(u, m)| {
        s.strip_suffix(u)
            .and_then(|n| n.parse::<f64>().ok())
            .map(|v| v * m)
    })
}

fn parse_wrk(text: &str) -> Option<WrkResult> {
    let mut rps = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut transfer = None;
    let mut errors = 0u64;
    let mut requests = None;
    for line in text.lines() {
        let t = line.trim();
        if t.contains(" requests in ") {
            requests = t
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<f64>().ok());
        } else if let Some(v) = t.strip_prefix("Requests/sec:") {
            rps = v.trim().parse::<f64>().ok();
        } else if let Some(v) = t.strip_prefix("Transfer/sec:") {
            transfer = bytes(v);
        } else if let Some(v) = t.strip_prefix("50%") {
            p50 = duration_ms(v);
        } else if let Some(v) = t.strip_prefix("99%") {
            p99 = duration_ms(v);
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            errors += v.trim().parse::<u64>().unwrap_or(1);
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            errors += v
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    let rps = rps?;
    Some(WrkResult {
        rps,
        requests: requests.unwrap_or(0.0),
        cpu_us: 0.0,
        p50_ms: p50?,
        p99_ms: p99?,
        bytes_per_req: transfer.unwrap_or(0.0) / rps.max(1.0),
        errors,
    })
}

/// The practical ceiling: fixed bytes, no auth, no middleware.
mod ceiling {
    use actix_web::http::header;
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    use bytes::Bytes;

    struct Bodies {
        json: Bytes,
        gzip: Bytes,
        etag: String,
    }

    async fn serve(req: HttpRequest, b: web::Data<Bodies>) -> HttpResponse {
        let h = req.headers();
        if h.get(header::IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == b.etag.as_bytes())
        {
            return HttpResponse::NotModified()
                .insert_header((header::ETAG, b.etag.clone()))
                .finish();
        }
        let gzip = h
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("gzip"));
        let mut res = HttpResponse::Ok();
        res.content_type("application/json")
            .insert_header((header::ETAG, b.etag.clone()));
        if gzip {
            res.insert_header((header::CONTENT_ENCODING, "gzip"))
                .body(b.gzip.clone())
        } else {
            res.body(b.json.clone())
        }
    }

    pub fn run(dir: &str) -> anyhow::Result<()> {
        let dir = std::path::Path::new(dir);
        let bodies = web::Data::new(Bodies {
            json: Bytes::from(std::fs::read(dir.join("config.json"))?),
            gzip: Bytes::from(std::fs::read(dir.join("config.json.gz"))?),
            etag: std::fs::read_to_string(dir.join("etag"))?,
        });
        let bind = std::env::var("TAILOR_BENCH_CEILING_BIND")?;
        let bind = super::common::loopback(&bind)?;
        let workers: usize = super::env_or("TAILOR_BENCH_WORKERS", 2);
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                App::new()
                    .app_data(bodies.clone())
                    .default_service(web::to(serve))
            })
            .workers(workers)
            .bind(bind)?
            .run()
            .await
        })?;
        Ok(())
    }
}
