//! What one user costs in the collector's memory after 1, 100 and 10,000 events: live heap
//! bytes (counted by a wrapping global allocator) of an attribution holding users who were
//! exposed once and then sent conversions (`k − 1` of them), or repeated the same exposure.
//!
//! ```text
//! cargo bench -p tailor-server --bench user_memory
//! ```
//!
//! Conversions are what a user's state grows with: each one is kept (24 bytes) because a late
//! exposure or a changed attribution window needs them to recompute the user exactly. Repeated
//! exposures fold into one record per experiment and cost nothing more.

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

/// Live bytes per user once `users` users have each sent `per_user` events.
fn bytes_per_user(users: usize, per_user: usize, conversions: bool) -> f64 {
    let before = LIVE.load(Ordering::Relaxed);
    let mut attribution = Attribution::default();
    for u in 0..users {
        let user = format!("user-{u:08}");
        attribution.apply(&exposure(format!("x{u}"), &user, 1_000));
        for e in 1..per_user {
            let event = if conversions {
                conversion(format!("c{u}-{e}"), &user, 2_000 + e as i64)
            } else {
                exposure(format!("x{u}-{e}"), &user, 2_000 + e as i64)
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
    println!("| events per user | users | bytes per user: exposure + conversions | bytes per user: repeated exposures |");
    println!("|---:|---:|---:|---:|");
    for (per_user, users) in [(1, 200_000), (100, 20_000), (10_000, 200)] {
        let converting = bytes_per_user(users, per_user, true);
        let exposing = bytes_per_user(users, per_user, false);
        println!("| {per_user} | {users} | {converting:.0} | {exposing:.0} |");
    }
}
