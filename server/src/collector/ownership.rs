//! Shared store: which live instance owns which partition, by leases, and the aggregates of the
//! partitions owned elsewhere.
//!
//! Every `TICK` each instance records itself as alive (`SharedStore::heartbeat`, expiring after
//! `MEMBER_TTL`) and reads the live instances. The owner each partition *should* have is
//! decided by [`assignment`]: rendezvous hashing with a cap of ⌈P/N⌉ partitions per instance,
//! so every instance computes the same answer from the same list and each of N instances owns
//! ⌊P/N⌋ or ⌈P/N⌉ partitions (plain rendezvous hashing split 16 partitions 12/4 between two
//! instances in a benchmark run). Then:
//! - a partition it should own and nobody holds: acquire the lease, load (checkpoint plus the
//!   log after it) and keep it in step;
//! - a partition it holds but should not (a new instance won it): checkpoint, release;
//! - a partition it holds and should: renew the lease (`LEASE_TTL`); if the renewal finds the
//!   lease lost, drop the state at once, writing nothing.
//!
//! A dead instance's leases expire after `LEASE_TTL` and its heartbeat after `MEMBER_TTL`; its
//! partitions then go to their new winners at the next tick: about 12 s, within the 30 s the
//! design allows. Two instances that both believe they own a partition (one paused past its
//! lease) cannot both write: checkpoints and published aggregates are fenced by the lease token
//! in the store, so the stale one's writes fail and it drops the partition.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tailor_core::bucketing::murmur3_x86_32;

use super::partition::{Part, Start};
use super::{lock, Collector, Env, Remote};
use crate::aggregates::PartitionAggregates;
use crate::store::{SharedStore, Store};

/// How often ownership is checked and leases renewed.
const TICK: Duration = Duration::from_secs(2);
/// How long a lease lasts without renewal.
const LEASE_TTL: Duration = Duration::from_secs(10);
/// How long an instance counts as alive without a heartbeat.
const MEMBER_TTL: Duration = Duration::from_secs(10);

/// The instance that should own each partition of `environment` among `instances` (empty:
/// none). Partitions in order, each goes to the instance that ranks it highest, by
/// `murmur3_x86_32("<environment>/<partition>/<instance>", 0)` (ties: the greater name), among
/// those with room left: each holds ⌊P/N⌋, and the first P mod N to need it one more. The same
/// list gives the same answer everywhere.
pub fn assignment<'a>(
    environment: &str,
    partitions: u32,
    instances: &'a [String],
) -> Vec<Option<&'a str>> {
    if instances.is_empty() {
        return vec![None; partitions as usize];
    }
    // ⌊P/N⌋ each, and P mod N of them one more: capacities that add up to P exactly.
    let floor = partitions as usize / instances.len();
    let mut extra = partitions as usize % instances.len();
    let mut held = vec![0usize; instances.len()];
    (0..partitions)
        .map(|p| {
            let mut ranked: Vec<(u32, &str, usize)> = instances
                .iter()
                .enumerate()
                .map(|(n, i)| {
                    let key = format!("{environment}/{p}/{i}");
                    (murmur3_x86_32(key.as_bytes(), 0), i.as_str(), n)
                })
                .collect();
            ranked.sort_unstable_by(|a, b| b.cmp(a));
            let (_, instance, n) = ranked
                .into_iter()
                .find(|(_, _, n)| held[*n] < floor || (held[*n] == floor && extra > 0))?;
            if held[n] == floor {
                extra -= 1;
            }
            held[n] += 1;
            Some(instance)
        })
        .collect()
}

impl Collector {
    /// Keeps this instance's share of the partitions (shared store), forever: a background task.
    pub async fn run_ownership(self: Arc<Self>, store: Arc<dyn Store>) {
        let Some(shared) = store.shared() else {
            return;
        };
        let mut failing = false;
        loop {
            if self.stopping.load(Ordering::Acquire) {
                return;
            }
            match shared.heartbeat(self.instance(), MEMBER_TTL).await {
                Ok(instances) => {
                    if failing {
                        failing = false;
                        tracing::info!("partition ownership in step with the store again");
                    }
                    self.rebalance(&store, shared, &instances).await;
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "cannot record this instance as alive; partition leases will lapse if this lasts");
                    }
                    failing = true;
                }
            }
            self.refresh_remote(shared).await;
            tokio::time::sleep(TICK).await;
        }
    }

    async fn rebalance(
        &self,
        store: &Arc<dyn Store>,
        shared: &dyn SharedStore,
        instances: &[String],
    ) {
        let me = self.instance().to_string();
        for env in self.envs() {
            let owners = assignment(&env.key, env.partitions, instances);
            for part in &env.parts {
                if part.busy.load(Ordering::Acquire) {
                    continue;
                }
                let mine = owners.get(part.index as usize).copied().flatten() == Some(me.as_str());
                match part.lease() {
                    Some(_) if !mine => self.spawn_release(&env, part, store),
                    Some(lease) => {
                        match shared
                            .renew_lease(&env.key, part.index, &lease, LEASE_TTL)
                            .await
                        {
                            Ok(true) => {}
                            Ok(false) => {
                                tracing::warn!(
                                    environment = env.key,
                                    partition = part.index,
                                    "partition lease lost; dropped its state"
                                );
                                part.drop_state();
                            }
                            Err(e) => tracing::debug!(error = %e, "cannot renew a lease now"),
                        }
                    }
                    None if mine && !part.is_owned() && !self.stopping.load(Ordering::Acquire) => {
                        match shared
                            .acquire_lease(&env.key, part.index, &me, LEASE_TTL)
                            .await
                        {
                            Ok(Some(lease)) => self.spawn_take(&env, part, store, lease),
                            Ok(None) => {} // still held by its previous owner
                            Err(e) => tracing::debug!(error = %e, "cannot acquire a lease now"),
                        }
                    }
                    None => {}
                }
            }
        }
    }

    fn spawn_take(
        &self,
        env: &Arc<Env>,
        part: &Arc<Part>,
        store: &Arc<dyn Store>,
        lease: crate::store::Lease,
    ) {
        part.busy.store(true, Ordering::Release);
        let (env, part, store) = (Arc::clone(env), Arc::clone(part), Arc::clone(store));
        let poll = store
            .shared()
            .map_or(Duration::from_secs(1), |s| s.poll_interval());
        let checkpoint_every = self.settings.checkpoint_every;
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let result = part
                .take(
                    store.as_ref(),
                    &env.key,
                    &env.windows,
                    Some(lease),
                    Start::Checkpoint,
                )
                .await;
            part.busy.store(false, Ordering::Release);
            match result {
                Ok(events) => {
                    tracing::info!(
                        environment = env.key,
                        partition = part.index,
                        events,
                        millis = started.elapsed().as_millis() as u64,
                        "took over a partition"
                    );
                    if part.is_owned() {
                        super::partition::run(part, store, env.key.clone(), poll, checkpoint_every)
                            .await;
                    }
                }
                Err(e) => tracing::warn!(
                    environment = env.key,
                    partition = part.index,
                    error = %e,
                    "cannot load a partition; retrying"
                ),
            }
        });
    }

    fn spawn_release(&self, env: &Arc<Env>, part: &Arc<Part>, store: &Arc<dyn Store>) {
        part.busy.store(true, Ordering::Release);
        let (env, part, store) = (Arc::clone(env), Arc::clone(part), Arc::clone(store));
        tokio::spawn(async move {
            if let Err(e) = part.release(store.as_ref(), &env.key).await {
                tracing::warn!(environment = env.key, partition = part.index, error = %e, "handing a partition over failed; its lease lapses instead");
                part.drop_state();
            } else {
                tracing::info!(
                    environment = env.key,
                    partition = part.index,
                    "handed a partition over"
                );
            }
            part.busy.store(false, Ordering::Release);
        });
    }

    /// Reads the aggregates published for every partition (results use them for the partitions
    /// not loaded here).
    async fn refresh_remote(&self, shared: &dyn SharedStore) {
        for env in self.envs() {
            let published = match shared.published_aggregates(&env.key, env.partitions).await {
                Ok(published) => published,
                Err(e) => {
                    tracing::debug!(environment = env.key, error = %e, "cannot read published aggregates now");
                    continue;
                }
            };
            let mut remote = lock(&env.remote);
            // Kept for the partitions owned here too: results fall back to the published copy
            // while a partition is loading, or from the moment its lease is lost until it is
            // loaded again (here or elsewhere), instead of leaving its users out.
            for ((part, slot), published) in env.parts.iter().zip(remote.iter_mut()).zip(published)
            {
                let Some(published) = published else {
                    continue;
                };
                if slot.as_ref().is_some_and(|r| r.cursor == published.cursor) {
                    continue;
                }
                match serde_json::from_str::<PartitionAggregates>(&published.json) {
                    Ok(aggregates) => {
                        *slot = Some(Remote {
                            cursor: published.cursor,
                            aggregates: Arc::new(aggregates),
                        })
                    }
                    Err(e) => {
                        tracing::error!(environment = env.key, partition = part.index, error = %e, "published aggregates do not decode")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_instance_gets_its_share_and_the_same_list_gives_the_same_answer() {
        for n in 1..=5usize {
            let instances: Vec<String> = (0..n).map(|i| format!("instance-{i}")).collect();
            for partitions in [1u32, 7, 16, 64] {
                let owners = assignment("prod", partitions, &instances);
                assert_eq!(owners, assignment("prod", partitions, &instances));
                let mut counts = vec![0u32; n];
                for owner in &owners {
                    let owner = owner.unwrap();
                    counts[instances.iter().position(|i| i == owner).unwrap()] += 1;
                }
                let (low, high) = (partitions / n as u32, partitions.div_ceil(n as u32));
                assert!(
                    counts.iter().all(|c| (low..=high).contains(c)),
                    "{n} instances, {partitions} partitions: {counts:?}"
                );
            }
        }
        assert_eq!(assignment("prod", 3, &[]), vec![None, None, None]);
    }
}
