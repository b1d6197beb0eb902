//! The Lua scripts that make each multi-key write atomic. Every script touches keys of ONE hash
//! slot only (one environment's `{env:…}` tag, or the `{global}` tag), so it runs unchanged on
//! a Redis Cluster. They are sent by SHA (`EVALSHA`); after a Redis restart flushed the script
//! cache the client loads them again and retries (`NOSCRIPT`), so a restart needs no action.
//!
//! Scripts also `PUBLISH` the change notification (a channel is not a key; on a cluster the
//! message reaches subscribers on every node). Because it is published inside the script, a
//! notification is sent if and only if the change was made.

use std::sync::LazyLock;

use ::redis::Script;

/// Creates an environment if it does not exist.
///
/// `KEYS[1]` config hash. `ARGV`: revision, document, partitions. Returns 1 if created, 0 if
/// it existed.
pub(super) static CREATE_ENVIRONMENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HSETNX', KEYS[1], 'revision', ARGV[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'document', ARGV[2], 'partitions', ARGV[3])
return 1
",
    )
});

/// Lists an environment (idempotently) and announces it.
///
/// `KEYS[1]` environment set. `ARGV`: environment key, channel, message.
pub(super) static LIST_ENVIRONMENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
",
    )
});

/// Compare-and-swap commit of a document with its audit entry and change notification.
///
/// `KEYS[1]` config hash, `KEYS[2]` audit list. `ARGV`: expected revision, new revision,
/// document, audit entry JSON (its id is assigned here), channel, environment key.
/// Returns `{'ok', audit id}`, `{'conflict', stored revision}` or `{'missing', '0'}`.
pub(super) static COMMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local current = redis.call('HGET', KEYS[1], 'revision')
if not current then
  return {'missing', '0'}
end
if current ~= ARGV[1] or tonumber(ARGV[2]) ~= tonumber(ARGV[1]) + 1 then
  return {'conflict', current}
end
redis.call('HSET', KEYS[1], 'revision', ARGV[2], 'document', ARGV[3])
local id = redis.call('HINCRBY', KEYS[1], 'audit_seq', 1)
redis.call('LPUSH', KEYS[2], '{"id":' .. id .. ',"entry":' .. ARGV[4] .. '}')
redis.call('PUBLISH', ARGV[5], 'env ' .. ARGV[2] .. ' ' .. ARGV[6])
return {'ok', tostring(id)}
"#,
    )
});

/// Idempotent append of one partition's part of a batch: for each event, unless its id is in
/// one of the de-duplication window's id sets, `SADD` it to the current period's set and `XADD`
/// it to the partition's stream. One round trip per partition; a duplicate id (within the batch or
/// from any earlier batch inside the window, sent to any instance) is skipped.
///
/// `KEYS[1]` the partition's stream, `KEYS[2]` the current period's id set, `KEYS[3..]` the
/// earlier periods' id sets still in the window. `ARGV`: channel, message, when the current
/// set expires (Unix seconds), then `id, payload` pairs. Returns one integer per event: 1 stored, 0 duplicate.
pub(super) static APPEND_EVENTS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local fresh = {}
local added = 0
for i = 4, #ARGV, 2 do
  local seen = false
  for k = 3, #KEYS do
    if redis.call('SISMEMBER', KEYS[k], ARGV[i]) == 1 then
      seen = true
      break
    end
  end
  if not seen and redis.call('SADD', KEYS[2], ARGV[i]) == 1 then
    redis.call('XADD', KEYS[1], '*', 'e', ARGV[i + 1])
    added = added + 1
    fresh[#fresh + 1] = 1
  else
    fresh[#fresh + 1] = 0
  end
end
if added > 0 then
  redis.call('EXPIREAT', KEYS[2], ARGV[3])
  redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return fresh
",
    )
});

/// Grants a partition's lease unless someone holds it.
///
/// `KEYS[1]` lease, `KEYS[2]` epoch counter. `ARGV`: instance, ttl (ms). Returns the token
/// `<instance>/<epoch>`, or `false` if the lease is held.
pub(super) static ACQUIRE_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local token = ARGV[1] .. '/' .. redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token, 'PX', ARGV[2])
return token
",
    )
});

/// Extends a lease still held by `token`.
///
/// `KEYS[1]` lease. `ARGV`: token, ttl (ms). Returns 1 if extended, 0 if lost.
pub(super) static RENEW_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
",
    )
});

/// Gives up a lease held by `token` (a no-op otherwise).
///
/// `KEYS[1]` lease. `ARGV`: token. Returns 1 if released.
pub(super) static RELEASE_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
",
    )
});

/// Writes a partition's checkpoint if `token` holds its lease, then trims the partition's
/// stream to the checkpoint's cursor (`XTRIM MINID`: every entry before it; the cursor's own
/// entry and everything after it stay).
///
/// `KEYS[1]` lease, `KEYS[2]` checkpoint hash, `KEYS[3]` stream. `ARGV`: token, cursor, state,
/// written-at (ms). Returns 1 written, 0 fenced (nothing changed).
pub(super) static PUT_CHECKPOINT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[2], 'cursor', ARGV[2], 'state', ARGV[3], 'written_at', ARGV[4])
if ARGV[2] ~= '' then
  redis.call('XTRIM', KEYS[3], 'MINID', ARGV[2])
end
return 1
",
    )
});

/// Publishes a partition's aggregates if `token` holds its lease.
///
/// `KEYS[1]` lease, `KEYS[2]` aggregates hash. `ARGV`: token, aggregates JSON, cursor. Returns
/// 1 written, 0 fenced.
pub(super) static PUBLISH_AGGREGATES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[2], 'json', ARGV[2], 'cursor', ARGV[3])
return 1
",
    )
});

/// Writes users' profile records if the caller still holds the partition's lease.
///
/// `KEYS`: lease, profiles hash, profile-names string. `ARGV`: lease token, names mark (`''`:
/// leave it), then user key / record pairs (an empty record deletes the user's).
pub(super) static PUT_PROFILES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
for i = 3, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[2], ARGV[i])
  else
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  end
end
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[3], ARGV[2])
end
return 1
",
    )
});

/// Records an instance as alive until `expires` and returns the live instances.
///
/// `KEYS[1]` instances sorted set. `ARGV`: instance, expires (ms), now (ms).
pub(super) static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
return redis.call('ZRANGE', KEYS[1], 0, -1)
",
    )
});

/// Stores a new API key unless its id or digest exists.
///
/// `KEYS[1]` keys hash, `KEYS[2]` digest index, `KEYS[3]` revocations. `ARGV`: id, digest, key
/// JSON, revoked-at (empty: not revoked), channel. Returns 1 stored, 0 exists.
pub(super) static PUT_KEY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
end
redis.call('PUBLISH', ARGV[5], 'keys')
return 1
",
    )
});

/// Revokes a key that exists and is not yet revoked.
///
/// `KEYS[1]` keys hash, `KEYS[2]` revocations. `ARGV`: id, revoked-at, channel. Returns 1 if
/// revoked now, 0 otherwise.
pub(super) static REVOKE_KEY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return 0
end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('PUBLISH', ARGV[3], 'keys')
return 1
",
    )
});
