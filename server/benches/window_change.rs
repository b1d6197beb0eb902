//! What an attribution-window change costs the request path at 5,000,000 users.
//!
//! ```text
//! cargo bench -p tailor-server --bench window_change
//! ```
//! Builds one environment's attribution: 5M users, each exposed once to experiment `exp` and
//! half of them converting once. Then, with the window changing each time (24 h ↔ 1 h):
//! - **before**: `Attribution::set_window`, the whole pass the config write used to run on its
//!   actix worker while holding the collector's lock (ingestion and results waited for it too);
//! - **after, write path**: `Attribution::change_window`, all the config write does now;
//! - **after, longest lock hold**: the slowest of the 1,024 `recompute_part` calls the
//!   background pass makes, each under the lock, which is the longest any ingest batch can wait.
//!
//! Plain timing (harness = false): each figure is the median of 5 changes, printed with the
//! load average.

use std::time::{Duration, Instant};

use tailor_core::events::{Conversion, Event, Exposure};
use tailor_server::attribution::Attribution;

const USERS: u64 = 5_000_000;
const ROUNDS: usize = 5;

fn build() -> Attribution {
    let mut attribution = Attribution::default();
    let t0 = 1_790_000_000_000i64;
    for u in 0..USERS {
        let user_key = format!("user-{u}");
        let timestamp = t0 + (u % 86_400_000) as i64;
        attribution.apply(&Event::Exposure(Exposure {
            id: format!("e{u}"),
            timestamp,
            user_key: user_key.clone(),
            flag: "homepage".into(),
            variant: if u % 2 == 0 { "generic" } else { "personal" }.into(),
            experiment: "exp".into(),
            rule: 0,
            segment: Some("beginners".into()),
            personalized: u % 2 == 1,
            revision: 2,
            spec_version: 1,
        }));
        if u % 2 == 0 {
            attribution.apply(&Event::Conversion(Conversion {
                id: format!("c{u}"),
                // Some inside a 1-hour window, some only inside 24 hours.
                timestamp: timestamp + ((u % 7) as i64) * 1_200_000,
                user_key,
                event: "purchase".into(),
                value: Some(10.0),
            }));
        }
    }
    attribution
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let started = Instant::now();
    let mut attribution = build();
    println!(
        "built {USERS} users in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let windows = [Some(24), Some(1)];
    let experiments = ["exp".to_string()];

    let mut before = Vec::new();
    for round in 0..ROUNDS {
        let t = Instant::now();
        attribution.set_window("exp", windows[round % 2]);
        before.push(t.elapsed());
    }

    let mut write_path = Vec::new();
    let mut longest_hold = Vec::new();
    let mut typical_hold = Vec::new();
    let mut whole_pass = Vec::new();
    for round in 0..ROUNDS {
        let t = Instant::now();
        assert!(attribution.change_window("exp", windows[(round + 1) % 2]));
        write_path.push(t.elapsed());
        let pass = Instant::now();
        let mut holds = Vec::with_capacity(Attribution::RECOMPUTE_PARTS);
        for part in 0..Attribution::RECOMPUTE_PARTS {
            let t = Instant::now();
            attribution.recompute_part(part, &experiments);
            holds.push(t.elapsed());
        }
        whole_pass.push(pass.elapsed());
        holds.sort();
        longest_hold.push(holds[holds.len() - 1]);
        typical_hold.push(holds[holds.len() / 2]);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average: {}", load.trim());
    println!(
        "before: config write blocked (and lock held) for {:?}",
        median(before)
    );
    println!(
        "after:  config write blocked for {:?}; background pass {:?}, lock held per part: median {:?}, longest {:?}",
        median(write_path),
        median(whole_pass),
        median(typical_hold),
        median(longest_hold)
    );
}
