//! The change feed: a pub/sub subscription to the store's channel, kept alive across failures.
//!
//! Pub/sub is fire-and-forget: a message published while this subscriber is disconnected is
//! never delivered. That is fine because every message only says "something newer exists"; the
//! feed sends [`StoreChange::Resync`] each time it (re)subscribes, and the reader then re-reads
//! every environment and keeps whichever revision is newer (catch-up by revision). A dead
//! connection is noticed when the socket closes or, for a silent network failure, when a
//! periodic `PING` on the subscription goes unanswered.
//!
//! Messages (written by the scripts in [`super::scripts`] and by environment creation):
//! `env <revision> <environment>`, `keys`, `events <partition> <environment>`.

use std::time::Duration;

use ::redis::{Client, ConnectionInfo, Value};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::conn::{Target, CONNECT_TIMEOUT};
use crate::store::{ChangeFeed, StoreChange};

/// Notifications buffered for a slow reader before the subscriber waits for it.
const CAPACITY: usize = 1024;
/// How often an idle subscription is checked with a `PING`.
const PING_EVERY: Duration = Duration::from_secs(5);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Starts the subscriber task; it ends when the returned feed is dropped.
pub(super) fn spawn(target: Target, channel: String) -> ChangeFeed {
    let (tx, rx) = mpsc::channel(CAPACITY);
    tokio::spawn(run_subscription(target, channel, tx));
    rx
}

/// Parses one message of the channel.
pub(super) fn parse(payload: &str) -> Option<StoreChange> {
    let mut parts = payload.splitn(3, ' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("keys"), None, None) => Some(StoreChange::Keys),
        // The environment key comes last, so it is taken whole.
        (Some("events"), Some(partition), Some(env)) => Some(StoreChange::Events {
            environment: env.to_string(),
            partition: partition.parse().ok()?,
        }),
        (Some("env"), Some(revision), Some(env)) => Some(StoreChange::Environment {
            environment: env.to_string(),
            revision: revision.parse().ok()?,
        }),
        _ => None,
    }
}

enum Ended {
    /// The feed was dropped: stop.
    ReaderGone,
    /// The connection failed: reconnect.
    Lost(String),
}

async fn run_subscription(target: Target, channel: String, tx: mpsc::Sender<StoreChange>) {
    let nodes = target.nodes();
    let mut next_node = 0usize;
    let mut failures = 0u32;
    loop {
        let node = &nodes[next_node % nodes.len()];
        match subscribe(node, &channel).await {
            Ok(pubsub) => {
                if failures > 0 {
                    tracing::info!(node = %node.addr, "change subscription restored; catching up");
                }
                failures = 0;
                // Subscribed first, then resync: a change committed in between is seen twice
                // at worst, never missed.
                if tx.send(StoreChange::Resync).await.is_err() {
                    return;
                }
                match relay(pubsub, &tx).await {
                    Ended::ReaderGone => return,
                    Ended::Lost(why) => {
                        tracing::warn!(
                            node = %node.addr,
                            error = %why,
                            "change subscription lost; changes made through other instances \
                             arrive after it reconnects"
                        );
                    }
                }
            }
            Err(why) => {
                if failures == 0 {
                    tracing::warn!(node = %node.addr, error = %why, "cannot subscribe to changes; retrying");
                } else {
                    tracing::debug!(node = %node.addr, error = %why, "cannot subscribe to changes");
                }
                failures = failures.saturating_add(1);
                // Try another node of a cluster next.
                next_node = next_node.wrapping_add(1);
            }
        }
        let wait = Duration::from_millis(50u64.saturating_mul(1 << failures.min(5)));
        tokio::select! {
            _ = tokio::time::sleep(wait.min(MAX_BACKOFF)) => {}
            _ = tx.closed() => return,
        }
    }
}

async fn subscribe(node: &ConnectionInfo, channel: &str) -> Result<::redis::aio::PubSub, String> {
    let client = Client::open(node.clone()).map_err(|e| e.to_string())?;
    let mut pubsub = tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub())
        .await
        .map_err(|_| format!("no connection within {CONNECT_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(CONNECT_TIMEOUT, pubsub.subscribe(channel))
        .await
        .map_err(|_| format!("SUBSCRIBE not answered within {CONNECT_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    Ok(pubsub)
}

async fn relay(pubsub: ::redis::aio::PubSub, tx: &mpsc::Sender<StoreChange>) -> Ended {
    let (mut sink, mut stream) = pubsub.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.reset();
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else {
                    return Ended::Lost("connection closed".into());
                };
                let payload = String::from_utf8_lossy(message.get_payload_bytes());
                match parse(&payload) {
                    Some(change) => {
                        if tx.send(change).await.is_err() {
                            return Ended::ReaderGone;
                        }
                    }
                    None => tracing::warn!(message = %payload, "ignoring an unknown change notification"),
                }
            }
            _ = ping.tick() => {
                match tokio::time::timeout(CONNECT_TIMEOUT, sink.ping::<Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Ended::Lost(e.to_string()),
                    Err(_) => return Ended::Lost(format!("PING not answered within {CONNECT_TIMEOUT:?}")),
                }
            }
            _ = tx.closed() => return Ended::ReaderGone,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_message_kind() {
        assert_eq!(parse("keys"), Some(StoreChange::Keys));
        assert_eq!(
            parse("env 42 production"),
            Some(StoreChange::Environment {
                environment: "production".into(),
                revision: 42
            })
        );
        assert_eq!(
            parse("events 7 staging"),
            Some(StoreChange::Events {
                environment: "staging".into(),
                partition: 7,
            })
        );
        for junk in [
            "",
            "env",
            "env x prod",
            "keys extra",
            "what ever",
            "events staging",
            "events x staging",
        ] {
            assert_eq!(parse(junk), None, "{junk}");
        }
    }
}
