//! Failed admin authentications per client address (dashboard sign-ins and admin API calls
//! share one count): after too many, that address has to wait.
//!
//! The limit is per instance and per client address ([`crate::client_address`]: behind reverse
//! proxies listed in `--trusted-proxies`, the client they name; otherwise the peer, so behind an
//! unlisted proxy everyone shares the proxy's count). SDK and OFREP endpoints are not throttled:
//! an SDK with a revoked key must keep getting its 401, not a 429 it would retry.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed sign-ins allowed per address within [`WINDOW`].
pub const MAX_FAILURES: u32 = 10;
/// How long failures count, from the first one.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Addresses tracked at most; past it, those whose window is over are forgotten.
const MAX_TRACKED: usize = 100_000;

/// Failed sign-ins by address.
#[derive(Debug)]
pub struct SignInThrottle {
    max_failures: u32,
    window: Duration,
    /// Address → (failures, when the first of them happened).
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Default for SignInThrottle {
    fn default() -> Self {
        SignInThrottle::new(MAX_FAILURES, WINDOW)
    }
}

impl SignInThrottle {
    /// `max_failures` within `window` of the first, then the address waits out the window.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        SignInThrottle {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (u32, Instant)>> {
        // Counters only: a panicking holder cannot leave them inconsistent.
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long `address` must wait before it may try again (`None`: it may try now).
    pub fn wait(&self, address: IpAddr) -> Option<Duration> {
        self.wait_at(address, Instant::now())
    }

    /// [`SignInThrottle::wait`] as of `now` (the clock is a parameter so tests need not sleep).
    fn wait_at(&self, address: IpAddr, now: Instant) -> Option<Duration> {
        let (count, since) = *self.lock().get(&address)?;
        let left = self
            .window
            .checked_sub(now.saturating_duration_since(since))?;
        (count >= self.max_failures && !left.is_zero()).then_some(left)
    }

    /// Counts a failed sign-in from `address`.
    pub fn failed(&self, address: IpAddr) {
        self.failed_at(address, Instant::now());
    }

    /// [`SignInThrottle::failed`] as of `now`.
    fn failed_at(&self, address: IpAddr, now: Instant) {
        let mut map = self.lock();
        if map.len() >= MAX_TRACKED {
            let window = self.window;
            map.retain(|_, (_, since)| now.duration_since(*since) < window);
        }
        let entry = map.entry(address).or_insert((0, now));
        if now.duration_since(entry.1) >= self.window {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
    }

    /// Forgets `address`'s failures after it signed in.
    pub fn succeeded(&self, address: IpAddr) {
        self.lock().remove(&address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn an_address_waits_after_too_many_failures_until_the_window_ends() {
        let window = Duration::from_secs(300);
        let throttle = SignInThrottle::new(3, window);
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        for t in 0..2 {
            throttle.failed_at(A, at(t));
            assert_eq!(throttle.wait_at(A, at(t)), None);
        }
        throttle.failed_at(A, at(2));
        // The window runs from the first failure.
        assert_eq!(throttle.wait_at(A, at(2)), Some(Duration::from_secs(298)));
        assert_eq!(throttle.wait_at(A, at(299)), Some(Duration::from_secs(1)));
        assert_eq!(
            throttle.wait_at(B, at(2)),
            None,
            "other addresses are not affected"
        );
        assert_eq!(throttle.wait_at(A, at(300)), None, "the window is over");
        throttle.failed_at(A, at(300));
        assert_eq!(throttle.wait_at(A, at(300)), None, "counting starts again");
    }

    #[test]
    fn signing_in_forgets_the_failures() {
        let throttle = SignInThrottle::new(2, Duration::from_secs(60));
        throttle.failed(A);
        throttle.succeeded(A);
        throttle.failed(A);
        assert_eq!(throttle.wait(A), None);
    }
}
