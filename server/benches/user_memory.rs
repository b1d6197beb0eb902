//! What one user costs in the collector's memory after 1, 100 and 10,000 events: live heap
//! bytes (counted by a wrapping global allocator) of an attribution holding users who were
//! exposed once and then sent conversions (`k − 1` of them) at a steady pace, or all within 15
//! minutes (a burst), or repeated the same exposure.
//!
//! ```text
//! cargo bench -p tailor-server --bench user_memory
//! ```
//!
//! Conversions older than the user's settle point (their latest event minus 15 minutes,
//! `tailor_server::attribution`) are folded into sums per experiment and per name and day, so a
//! steady user's memory stops growing; a burst is held one by one until the user's next event
//! 15 minutes later. Repeated exposures fold into one record per experiment.

// Implementing `GlobalAlloc` is `unsafe` by definition; the workspace denies unsafe code, so this
// measuring binary (not the server) opts out, as `shared/tests/allocations.rs` does.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use tailor_core::events::{Conversion, Event, Exposure};
use tailor_server::attribution::Attribution;

/// Live heap bytes: allocations minus deallocations.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn exposure(id: String, user: &str, ts: i64) -> Event {
    Event::Exposure(Exposure {
        id,
        timestamp: ts,
        user_key: user.to_string(),
        flag: "homepage".into(),
        variant: "personal".into(),
        experiment: "exp".into(),
        rule: 0,
        segment: Some("beginners".into()),
        personalized: true,
        revision: 1,
        spec_version: 1,
    })
}

fn conversion(id: String, user: &str, ts: i64) -> Event {
    Event::Conversion(Conversion {
        id,
        timestamp: ts,
        user_key: user.to_string(),
        event: "purchase".into(),
        value: Some(9.99),
    })
}

/// Live bytes per user once `users` users have each sent `per_user` events, `every_ms` apart
/// (from 2026-12-07 00:00 UTC).
fn bytes_per_user(users: usize, per_user: usize, conversions: bool, every_ms: i64) -> f64 {
    let start = 1_796_601_600_000;
    let before = LIVE.load(Ordering::Relaxed);
    let mut attribution = Attribution::default();
    for u in 0..users {
        let user = format!("user-{u:08}");
        attribution.apply(&exposure(format!("x{u}"), &user, start));
        for e in 1..per_user {
            let ts = start + e as i64 * every_ms;
            let event = if conversions {
                conversion(format!("c{u}-{e}"), &user, ts)
            } else {
                exposure(format!("x{u}-{e}"), &user, ts)
            };
            attribution.apply(&event);
        }
    }
    let after = LIVE.load(Ordering::Relaxed);
    let bytes = (after - before) as f64 / users as f64;
    drop(attribution);
    bytes
}

fn main() {
    println!("| events per user | users | conversions every 5 s | every minute | all within 15 min | the same exposure repeated (every 5 s) |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for (per_user, users) in [(1, 200_000), (100, 20_000), (10_000, 200)] {
        let steady = bytes_per_user(users, per_user, true, 5_000);
        let minute = bytes_per_user(users, per_user, true, 60_000);
        let burst = bytes_per_user(users, per_user, true, 15 * 60_000 / per_user as i64);
        let exposing = bytes_per_user(users, per_user, false, 5_000);
        println!(
            "| {per_user} | {users} | {steady:.0} | {minute:.0} | {burst:.0} | {exposing:.0} |"
        );
    }
}
