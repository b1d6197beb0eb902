//! Partitioned event logs in Redis: where each partition's keys live, appends split by
//! partition, the de-duplication window, checkpoints with trimming, leases and published
//! aggregates.
//!
//! # Keys of partition `p` of environment `e`
//! All under one hash tag `{p:<e>:<p>:<k>}`, so a partition's script touches one slot, and
//! different partitions land on different slots. `k` is the smallest integer for which the
//! tag's slot (CRC16 mod 16384, as Redis Cluster computes it) falls in the partition's share
//! of the slot space, `[p·16384/P, (p+1)·16384/P)`: a cluster whose primaries own equal
//! contiguous slot ranges (what `redis-cli --cluster create` makes) then carries an equal share
//! of partitions on each primary, instead of whatever hash luck gives.
//!
//! | Key | Type | Holds |
//! | --- | --- | --- |
//! | `…:events` | stream | the partition's events, field `e` = event JSON |
//! | `…:ids:<n>` | set, expiring | ids of events first stored in window period `n` (days since the epoch ÷ window) |
//! | `…:lease` | string, with a TTL | `<instance>/<epoch>`: who owns the partition |
//! | `…:epoch` | counter | grants of the lease so far |
//! | `…:checkpoint` | hash | `cursor`, `state` (attribution checkpoint), `written_at` (ms) |
//! | `…:aggregates` | hash | `json` (published aggregates), `cursor` |
//!
//! # De-duplication window
//! An event id is remembered for at least the window `W` (`--dedup-window-days`, default 7) and
//! at most `2W`: time is cut into periods of `W` whole UTC days (period `n` = days since the
//! epoch ÷ `W`); an id goes into the set of the period it was stored in, which expires when the
//! next period ends, and an append checks the current and the previous period's sets (two
//! `SISMEMBER`s per event, whatever `W`). So a resend up to `W` days after the original is
//! always recognised, one more than `2W` days later never is, and Redis memory for ids is
//! bounded by `2W` days of events, not by history.
//!
//! # Trimming
//! A checkpoint write (only by the lease holder) trims the partition's stream before the
//! checkpoint's cursor: a restarted or new owner loads the checkpoint plus the stream after
//! it, so the events before it are not needed any more.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ::redis::cmd;
use async_trait::async_trait;
use tailor_core::partition::{partition, DEFAULT_PARTITIONS};

use super::{changes, read_page, scripts, RedisStore};
use crate::store::ChangeFeed;
use crate::store::{
    unix_now, Checkpoint, EncodedEvent, EventCursor, EventPage, Lease, PublishedAggregates,
    SharedStore, StoreError,
};

/// Redis Cluster's slot count.
const SLOTS: u32 = 16_384;

/// The default de-duplication window, in days.
pub const DEFAULT_DEDUP_WINDOW_DAYS: u32 = 7;

/// CRC16/XMODEM, the checksum Redis Cluster hashes keys with.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The cluster slot of a hash tag's content.
fn slot(tag: &str) -> u32 {
    u32::from(crc16(tag.as_bytes())) % SLOTS
}

/// The hash tags of an environment's partitions (see the module docs).
#[derive(Debug)]
pub(super) struct Layout {
    pub(super) partitions: u32,
    tags: Vec<String>,
}

impl Layout {
    fn new(environment: &str, partitions: u32) -> Layout {
        let partitions = partitions.max(1);
        let tags = (0..partitions)
            .map(|p| {
                let low = u64::from(p) * u64::from(SLOTS) / u64::from(partitions);
                let high = (u64::from(p) + 1) * u64::from(SLOTS) / u64::from(partitions);
                // Each k lands in the range with probability 1/P: P tries on average; the
                // bound only guards an impossible range.
                (0..u64::from(SLOTS) * 64)
                    .map(|k| format!("p:{environment}:{p}:{k}"))
                    .find(|tag| (low..high).contains(&u64::from(slot(tag))))
                    .unwrap_or_else(|| format!("p:{environment}:{p}"))
            })
            .collect();
        Layout { partitions, tags }
    }
}

impl RedisStore {
    pub(super) fn partition_key(&self, layout: &Layout, partition: u32, suffix: &str) -> String {
        let tag = layout
            .tags
            .get(partition as usize)
            .map_or("", String::as_str);
        format!("{}:{{{tag}}}:{suffix}", self.names.prefix)
    }

    /// The environment's partition layout (read once, then cached: the count never changes).
    pub(super) async fn layout(&self, environment: &str) -> Result<Arc<Layout>, StoreError> {
        if let Some(layout) = self
            .layouts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(environment)
        {
            return Ok(Arc::clone(layout));
        }
        let mut conn = self.conn();
        let stored: Option<u32> = cmd("HGET")
            .arg(self.names.config(environment))
            .arg("partitions")
            .query_async(&mut conn)
            .await
            .map_err(self.err("reading an environment's partition count"))?;
        let layout = Arc::new(Layout::new(
            environment,
            stored.unwrap_or(DEFAULT_PARTITIONS),
        ));
        if stored.is_some() {
            self.layouts
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(environment.to_string(), Arc::clone(&layout));
        }
        Ok(layout)
    }

    /// Appends a batch: one script per partition it touches, all in flight at once;
    /// acknowledged once every part is stored.
    pub(super) async fn append_partitioned(
        &self,
        environment: &str,
        events: &[EncodedEvent<'_>],
    ) -> Result<Vec<bool>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let layout = self.layout(environment).await?;
        let mut parts: HashMap<u32, Vec<usize>> = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            parts
                .entry(partition(e.event.user_key(), layout.partitions))
                .or_default()
                .push(i);
        }
        let window = i64::from(self.dedup_window_days.max(1));
        let period = unix_now().div_euclid(86_400).div_euclid(window);
        // The end of the next period: the last moment this period's ids are checked.
        let expires = (period + 2) * window * 86_400;
        let appends = parts.into_iter().map(|(p, indices)| {
            let layout = Arc::clone(&layout);
            async move {
                let mut invocation = scripts::APPEND_EVENTS.prepare_invoke();
                invocation
                    .key(self.partition_key(&layout, p, "events"))
                    .key(self.partition_key(&layout, p, &format!("ids:{period}")))
                    .key(self.partition_key(&layout, p, &format!("ids:{}", period - 1)));
                invocation
                    .arg(self.names.channel())
                    .arg(format!("events {p} {environment}"))
                    .arg(expires);
                for &i in &indices {
                    invocation
                        .arg(events[i].event.id())
                        .arg(events[i].json.as_ref());
                }
                let mut conn = self.conn();
                let fresh: Vec<i64> = invocation
                    .invoke_async(&mut conn)
                    .await
                    .map_err(self.err("appending events"))?;
                if fresh.len() != indices.len() {
                    return Err(StoreError::Corrupt(format!(
                        "appending {} events returned {} results",
                        indices.len(),
                        fresh.len()
                    )));
                }
                Ok::<_, StoreError>((indices, fresh))
            }
        });
        let mut result = vec![false; events.len()];
        for (indices, fresh) in futures_util::future::try_join_all(appends).await? {
            for (i, f) in indices.into_iter().zip(fresh) {
                result[i] = f == 1;
            }
        }
        Ok(result)
    }

    pub(super) async fn partition_events_after(
        &self,
        environment: &str,
        partition: u32,
        cursor: &EventCursor,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let layout = self.layout(environment).await?;
        let stream = self.partition_key(&layout, partition, "events");
        read_page(self.conn(), &stream, cursor, limit, &self.described).await
    }

    pub(super) async fn read_checkpoint(
        &self,
        environment: &str,
        partition: u32,
    ) -> Result<Option<Checkpoint>, StoreError> {
        let layout = self.layout(environment).await?;
        let mut conn = self.conn();
        let (cursor, state, written_at): (Option<String>, Option<Vec<u8>>, Option<i64>) =
            cmd("HMGET")
                .arg(self.partition_key(&layout, partition, "checkpoint"))
                .arg("cursor")
                .arg("state")
                .arg("written_at")
                .query_async(&mut conn)
                .await
                .map_err(self.err("reading a checkpoint"))?;
        Ok(match (cursor, state, written_at) {
            (Some(cursor), Some(state), Some(written_at)) => Some(Checkpoint {
                cursor: EventCursor(cursor),
                state,
                written_at,
            }),
            _ => None,
        })
    }

    pub(super) async fn write_checkpoint(
        &self,
        environment: &str,
        partition: u32,
        checkpoint: &Checkpoint,
        lease: Option<&Lease>,
    ) -> Result<(), StoreError> {
        let fenced = || StoreError::Fenced {
            environment: environment.to_string(),
            partition,
        };
        let lease = lease.ok_or_else(fenced)?;
        let layout = self.layout(environment).await?;
        let mut conn = self.conn();
        let written: i64 = scripts::PUT_CHECKPOINT
            .key(self.partition_key(&layout, partition, "lease"))
            .key(self.partition_key(&layout, partition, "checkpoint"))
            .key(self.partition_key(&layout, partition, "events"))
            .arg(&lease.token)
            .arg(&checkpoint.cursor.0)
            .arg(checkpoint.state.as_slice())
            .arg(checkpoint.written_at)
            .invoke_async(&mut conn)
            .await
            .map_err(self.err("writing a checkpoint"))?;
        if written == 1 {
            Ok(())
        } else {
            Err(fenced())
        }
    }
}

impl RedisStore {
    /// Moves events stored before partitions (one `{env:<e>}:events` stream and `event-ids` set
    /// per environment) into the environment's partitions, then deletes the old keys; records
    /// the partition count (the default, 16) on environments that have none. Idempotent and
    /// safe to run from several instances at once (appends are de-duplicated), so a start
    /// interrupted halfway finishes at the next one. Returns the events moved.
    pub async fn migrate_unpartitioned_logs(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        let environments: Vec<String> = cmd("SMEMBERS")
            .arg(self.names.environments())
            .query_async(&mut conn)
            .await
            .map_err(self.err("listing environments"))?;
        let mut moved = 0u64;
        for environment in environments {
            let _: i64 = cmd("HSETNX")
                .arg(self.names.config(&environment))
                .arg("partitions")
                .arg(DEFAULT_PARTITIONS)
                .query_async(&mut conn)
                .await
                .map_err(self.err("recording a partition count"))?;
            let old_stream = format!("{}:{{env:{environment}}}:events", self.names.prefix);
            let old_ids = format!("{}:{{env:{environment}}}:event-ids", self.names.prefix);
            let mut cursor = EventCursor::default();
            loop {
                let page =
                    read_page(self.conn(), &old_stream, &cursor, 5_000, &self.described).await?;
                if !page.events.is_empty() {
                    let encoded: Vec<EncodedEvent<'static>> = page
                        .events
                        .into_iter()
                        .map(|event| {
                            EncodedEvent::new(event).map_err(|e| StoreError::Backend {
                                message: "re-encoding an event".into(),
                                source: Box::new(e),
                            })
                        })
                        .collect::<Result<_, _>>()?;
                    moved += encoded.len() as u64;
                    self.append_partitioned(&environment, &encoded).await?;
                }
                cursor = page.next;
                if !page.more {
                    break;
                }
            }
            let _: i64 = cmd("DEL")
                .arg(&old_stream)
                .arg(&old_ids)
                .query_async(&mut conn)
                .await
                .map_err(self.err("deleting a moved event log"))?;
        }
        if moved > 0 {
            tracing::info!(
                events = moved,
                "moved events stored before partitions into partitions"
            );
        }
        Ok(moved)
    }
}

#[async_trait]
impl SharedStore for RedisStore {
    fn changes(&self) -> ChangeFeed {
        changes::spawn(self.target.clone(), self.names.channel())
    }

    async fn heartbeat(&self, instance: &str, ttl: Duration) -> Result<Vec<String>, StoreError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let mut conn = self.conn();
        scripts::HEARTBEAT
            .key(self.names.instances())
            .arg(instance)
            .arg(now + ttl.as_millis() as i128)
            .arg(now)
            .invoke_async(&mut conn)
            .await
            .map_err(self.err("recording this instance as alive"))
    }

    async fn leave(&self, instance: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        cmd("ZREM")
            .arg(self.names.instances())
            .arg(instance)
            .query_async::<()>(&mut conn)
            .await
            .map_err(self.err("leaving the instances"))
    }

    async fn acquire_lease(
        &self,
        environment: &str,
        partition: u32,
        instance: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let layout = self.layout(environment).await?;
        let mut conn = self.conn();
        let token: Option<String> = scripts::ACQUIRE_LEASE
            .key(self.partition_key(&layout, partition, "lease"))
            .key(self.partition_key(&layout, partition, "epoch"))
            .arg(instance)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(self.err("acquiring a partition lease"))?;
        Ok(token.map(|token| Lease { token }))
    }

    async fn renew_lease(
        &self,
        environment: &str,
        partition: u32,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let layout = self.layout(environment).await?;
        let mut conn = self.conn();
        let renewed: i64 = scripts::RENEW_LEASE
            .key(self.partition_key(&layout, partition, "lease"))
            .arg(&lease.token)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(self.err("renewing a partition lease"))?;
        Ok(renewed == 1)
    }

    async fn release_lease(
        &self,
        environment: &str,
        partition: u32,
        lease: &Lease,
    ) -> Result<(), StoreError> {
        let layout = self.layout(environment).await?;
        let mut conn = self.conn();
        let _: i64 = scripts::RELEASE_LEASE
            .key(self.partition_key(&layout, partition, "lease"))
            .arg(&lease.token)
            .invoke_async(&mut conn)
            .await
            .map_err(self.err("releasing a partition lease"))?;
        Ok(())
    }

    async fn publish_aggregates(
        &self,
        environment: &str,
        partition: u32,
        lease: &Lease,
        aggregates: &PublishedAggregates,
    ) -> Result<(), StoreError> {
        let layout = self.layout(environment).await?;
        let mut conn = self.conn();
        let written: i64 = scripts::PUBLISH_AGGREGATES
            .key(self.partition_key(&layout, partition, "lease"))
            .key(self.partition_key(&layout, partition, "aggregates"))
            .arg(&lease.token)
            .arg(&aggregates.json)
            .arg(&aggregates.cursor.0)
            .invoke_async(&mut conn)
            .await
            .map_err(self.err("publishing aggregates"))?;
        if written == 1 {
            Ok(())
        } else {
            Err(StoreError::Fenced {
                environment: environment.to_string(),
                partition,
            })
        }
    }

    async fn published_aggregates(
        &self,
        environment: &str,
        partitions: u32,
    ) -> Result<Vec<Option<PublishedAggregates>>, StoreError> {
        let layout = self.layout(environment).await?;
        let reads = (0..partitions.min(layout.partitions)).map(|p| {
            let key = self.partition_key(&layout, p, "aggregates");
            async move {
                let mut conn = self.conn();
                let (json, cursor): (Option<String>, Option<String>) = cmd("HMGET")
                    .arg(key)
                    .arg("json")
                    .arg("cursor")
                    .query_async(&mut conn)
                    .await
                    .map_err(self.err("reading published aggregates"))?;
                Ok::<_, StoreError>(json.map(|json| PublishedAggregates {
                    json,
                    cursor: EventCursor(cursor.unwrap_or_default()),
                }))
            }
        });
        futures_util::future::try_join_all(reads).await
    }

    async fn put_profile_records(
        &self,
        environment: &str,
        partition: u32,
        lease: &Lease,
        records: &[(String, Vec<u8>)],
        names: Option<&str>,
    ) -> Result<(), StoreError> {
        self.write_profile_records(environment, partition, lease, records, names)
            .await
    }

    async fn profile_record(
        &self,
        environment: &str,
        partition: u32,
        user_key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.read_profile_record(environment, partition, user_key)
            .await
    }

    async fn profile_records_page(
        &self,
        environment: &str,
        partition: u32,
        cursor: &str,
    ) -> Result<(String, Vec<(String, Vec<u8>)>), StoreError> {
        self.read_profile_records_page(environment, partition, cursor)
            .await
    }

    async fn profile_names(
        &self,
        environment: &str,
        partition: u32,
    ) -> Result<Option<String>, StoreError> {
        self.read_profile_names(environment, partition).await
    }
}

/// The layouts of environments this store has seen.
pub(super) type Layouts = Arc<RwLock<HashMap<String, Arc<Layout>>>>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The checksum Redis documents for its cluster spec: CRC16("123456789") = 0x31C3.
    #[test]
    fn crc16_is_redis_clusters() {
        assert_eq!(crc16(b"123456789"), 0x31c3);
    }

    #[test]
    fn each_partition_gets_its_share_of_the_slots() {
        for partitions in [1, 3, 16, 100] {
            let layout = Layout::new("production", partitions);
            for (p, tag) in layout.tags.iter().enumerate() {
                let p = p as u64;
                let low = p * u64::from(SLOTS) / u64::from(partitions);
                let high = (p + 1) * u64::from(SLOTS) / u64::from(partitions);
                let s = u64::from(slot(tag));
                assert!((low..high).contains(&s), "{tag}: slot {s}");
                assert!(tag.starts_with(&format!("p:production:{p}:")));
            }
        }
    }
}
