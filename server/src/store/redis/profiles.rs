//! Per-user data in Redis: large list segments' members and users' profile records.
//!
//! | Key | Type | Holds |
//! | --- | --- | --- |
//! | `{list:<e>:<segment>}:members` | set | the uploaded keys of a large list segment |
//! | `{list:<e>:<segment>}:upload:<n>` | set, short-lived | an upload being written; renamed over `members` when complete |
//! | `{p:…}:profiles` | hash | user key → profile record (the user's events traits read), written by the partition's owner |
//! | `{p:…}:profile-names` | string | the trait event names the partition's records were last completed for |
//!
//! A list upload is written to its own key and renamed over the members in one command, so a
//! reader sees the old list or the new one. Profile records are written by a script that
//! checks the partition's lease first, so an instance that lost the partition writes nothing.

use ::redis::cmd;

use super::{scripts, RedisStore};
use crate::store::{Lease, StoreError};

/// Keys sent per `SADD` while uploading a list.
const UPLOAD_CHUNK: usize = 5_000;
/// Records written per script call.
const RECORD_CHUNK: usize = 500;

impl RedisStore {
    fn list_key(&self, environment: &str, segment: &str, suffix: &str) -> String {
        format!(
            "{}:{{list:{environment}:{segment}}}:{suffix}",
            self.names.prefix
        )
    }

    pub(super) async fn put_list_members(
        &self,
        environment: &str,
        segment: &str,
        members: Vec<String>,
    ) -> Result<u64, StoreError> {
        let members_key = self.list_key(environment, segment, "members");
        let upload = self.list_key(
            environment,
            segment,
            &format!("upload:{:016x}", rand::random::<u64>()),
        );
        let mut conn = self.conn();
        for (i, chunk) in members.chunks(UPLOAD_CHUNK).enumerate() {
            let () = cmd("SADD")
                .arg(&upload)
                .arg(chunk)
                .query_async(&mut conn)
                .await
                .map_err(self.err("uploading a list segment's members"))?;
            if i == 0 {
                // An abandoned upload (the server died) expires by itself.
                let () = cmd("EXPIRE")
                    .arg(&upload)
                    .arg(3_600)
                    .query_async(&mut conn)
                    .await
                    .map_err(self.err("uploading a list segment's members"))?;
            }
        }
        if members.is_empty() {
            let () = cmd("DEL")
                .arg(&members_key)
                .query_async(&mut conn)
                .await
                .map_err(self.err("emptying a list segment"))?;
            return Ok(0);
        }
        let () = cmd("PERSIST")
            .arg(&upload)
            .query_async(&mut conn)
            .await
            .map(|_: i64| ())
            .map_err(self.err("uploading a list segment's members"))?;
        let () = cmd("RENAME")
            .arg(&upload)
            .arg(&members_key)
            .query_async(&mut conn)
            .await
            .map_err(self.err("replacing a list segment's members"))?;
        self.list_size_of(environment, segment).await
    }

    pub(super) async fn lists_holding(
        &self,
        environment: &str,
        segments: &[String],
        user_key: &str,
    ) -> Result<Vec<bool>, StoreError> {
        let reads = segments.iter().map(|segment| {
            let key = self.list_key(environment, segment, "members");
            async move {
                let mut conn = self.conn();
                cmd("SISMEMBER")
                    .arg(key)
                    .arg(user_key)
                    .query_async::<bool>(&mut conn)
                    .await
                    .map_err(self.err("reading list memberships"))
            }
        });
        futures_util::future::try_join_all(reads).await
    }

    pub(super) async fn all_list_members(
        &self,
        environment: &str,
        segment: &str,
    ) -> Result<Vec<String>, StoreError> {
        let key = self.list_key(environment, segment, "members");
        let mut conn = self.conn();
        let mut cursor = 0u64;
        let mut members = Vec::new();
        loop {
            let (next, page): (u64, Vec<String>) = cmd("SSCAN")
                .arg(&key)
                .arg(cursor)
                .arg("COUNT")
                .arg(10_000)
                .query_async(&mut conn)
                .await
                .map_err(self.err("reading a list segment's members"))?;
            members.extend(page);
            cursor = next;
            if cursor == 0 {
                return Ok(members);
            }
        }
    }

    async fn list_size_of(&self, environment: &str, segment: &str) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        cmd("SCARD")
            .arg(self.list_key(environment, segment, "members"))
            .query_async(&mut conn)
            .await
            .map_err(self.err("counting a list segment's members"))
    }

    pub(super) async fn write_profile_records(
        &self,
        environment: &str,
        partition: u32,
        lease: &Lease,
        records: &[(String, Vec<u8>)],
        names: Option<&str>,
    ) -> Result<(), StoreError> {
        let layout = self.layout(environment).await?;
        let lease_key = self.partition_key(&layout, partition, "lease");
        let profiles = self.partition_key(&layout, partition, "profiles");
        let names_key = self.partition_key(&layout, partition, "profile-names");
        let mut chunks: Vec<&[(String, Vec<u8>)]> = records.chunks(RECORD_CHUNK).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let last = chunks.len() - 1;
        let mut conn = self.conn();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let mut invocation = scripts::PUT_PROFILES.prepare_invoke();
            invocation
                .key(&lease_key)
                .key(&profiles)
                .key(&names_key)
                .arg(&lease.token)
                // The names mark goes with the last chunk: the records are complete only then.
                .arg(if i == last { names.unwrap_or("") } else { "" });
            for (user, record) in chunk {
                invocation.arg(user).arg(record.as_slice());
            }
            let written: i64 = invocation
                .invoke_async(&mut conn)
                .await
                .map_err(self.err("writing profile records"))?;
            if written != 1 {
                return Err(StoreError::Fenced {
                    environment: environment.to_string(),
                    partition,
                });
            }
        }
        Ok(())
    }

    pub(super) async fn read_profile_record(
        &self,
        environment: &str,
        partition: u32,
        user_key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let layout = self.layout(environment).await?;
        let mut conn = self.conn();
        cmd("HGET")
            .arg(self.partition_key(&layout, partition, "profiles"))
            .arg(user_key)
            .query_async(&mut conn)
            .await
            .map_err(self.err("reading a profile record"))
    }

    pub(super) async fn read_profile_records_page(
        &self,
        environment: &str,
        partition: u32,
        cursor: &str,
    ) -> Result<(String, Vec<(String, Vec<u8>)>), StoreError> {
        let layout = self.layout(environment).await?;
        let mut conn = self.conn();
        let (next, flat): (String, Vec<(String, Vec<u8>)>) = cmd("HSCAN")
            .arg(self.partition_key(&layout, partition, "profiles"))
            .arg(cursor)
            .arg("COUNT")
            .arg(1_000)
            .query_async(&mut conn)
            .await
            .map_err(self.err("reading profile records"))?;
        Ok((next, flat))
    }

    pub(super) async fn read_profile_names(
        &self,
        environment: &str,
        partition: u32,
    ) -> Result<Option<String>, StoreError> {
        let layout = self.layout(environment).await?;
        let mut conn = self.conn();
        cmd("GET")
            .arg(self.partition_key(&layout, partition, "profile-names"))
            .query_async(&mut conn)
            .await
            .map_err(self.err("reading profile record names"))
    }
}
