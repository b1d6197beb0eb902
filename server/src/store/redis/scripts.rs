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
/// `KEYS[1]` config hash. `ARGV`: revision, document. Returns 1 if created, 0 if it existed.
pub(super) static CREATE_ENVIRONMENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HSETNX', KEYS[1], 'revision', ARGV[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'document', ARGV[2])
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

/// Idempotent append of a batch of events: for each, `SADD` its id to the environment's id set
/// and, only if it was new, `XADD` it to the environment's stream. One round trip per batch;
/// a duplicate id (within the batch or from any earlier batch, sent to any instance) is skipped.
///
/// `KEYS[1]` event id set, `KEYS[2]` event stream. `ARGV`: channel, environment key, then
/// `id, payload` pairs. Returns one integer per event: 1 stored, 0 duplicate.
pub(super) static APPEND_EVENTS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local fresh = {}
local added = 0
for i = 3, #ARGV, 2 do
  if redis.call('SADD', KEYS[1], ARGV[i]) == 1 then
    redis.call('XADD', KEYS[2], '*', 'e', ARGV[i + 1])
    added = added + 1
    fresh[#fresh + 1] = 1
  else
    fresh[#fresh + 1] = 0
  end
end
if added > 0 then
  redis.call('PUBLISH', ARGV[1], 'events ' .. ARGV[2])
end
return fresh
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
