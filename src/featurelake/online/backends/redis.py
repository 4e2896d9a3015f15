"""Redis online store (standalone server), optionally as an ACL user (``online_store.redis_username``) whose
password comes from ``$FEATURELAKE_REDIS_PASSWORD`` (materialization opens the store on the executors: on a
cluster their environment needs it too).

Layout: one hash per (namespace, entity key) at ``<view>.v<version>:<key JSON>`` (view names are identifiers
and key JSON starts with ``[``, so keys never collide) with fields ``ts``, ``cts``, ``v``; its expiry is set
with PEXPIREAT. Watermarks, checks and serving pointers live in the hash ``featurelake:watermarks``.

Writes run a Lua script per batch of keys (atomic per key on the server, so overlapping runs cannot
regress a value); batches are pipelined. One script touches many keys, so it targets a standalone Redis
(not Redis Cluster).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import redis

from featurelake.online.store import Entry, OnlineStore, Record, StoreConfig, WriteStats, batched

WATERMARKS = "featurelake:watermarks"
PASSWORD_ENV = "FEATURELAKE_REDIS_PASSWORD"
_PIPELINE_BATCHES = 8

# ARGV per key: ts, cts, payload ('' = conditional delete), pexpireat ('' = none), cutoff (delete only).
# Returns {written, deleted}.
_WRITE = """
local written, deleted = 0, 0
for i = 1, #KEYS do
  local b = (i - 1) * 5
  local cur = redis.call('HMGET', KEYS[i], 'ts', 'cts')
  local old_ts, old_cts = tonumber(cur[1]), tonumber(cur[2])
  if ARGV[b + 3] == '' then
    if old_ts and old_ts < tonumber(ARGV[b + 5]) then
      redis.call('DEL', KEYS[i])
      deleted = deleted + 1
    end
  else
    local ts, cts = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
    if (not old_ts) or ts > old_ts or (ts == old_ts and cts >= old_cts) then
      redis.call('HSET', KEYS[i], 'ts', ARGV[b + 1], 'cts', ARGV[b + 2], 'v', ARGV[b + 3])
      if ARGV[b + 4] ~= '' then
        redis.call('PEXPIREAT', KEYS[i], ARGV[b + 4])
      else
        redis.call('PERSIST', KEYS[i])
      end
      written = written + 1
    end
  end
end
return {written, deleted}
"""


def redis_key(view: str, key: str) -> str:
    return f"{view}:{key}"


class RedisStore(OnlineStore):
    def __init__(self, config: StoreConfig):
        super().__init__(config)
        self.client = redis.Redis(
            host=config.redis_host,
            port=config.redis_port,
            db=config.redis_db,
            username=config.redis_username,
            password=os.environ.get(PASSWORD_ENV),  # never in conf/ nor in the pickled config sent to executors
        )
        self.script = self.client.register_script(_WRITE)

    def prepare(self, view: str) -> None:
        self.script.sha = self.client.script_load(_WRITE)

    def write(self, view: str, records: Iterable[Record]) -> WriteStats:
        stats = WriteStats()
        for group in batched(batched(records, self.config.batch_size), _PIPELINE_BATCHES):
            pipe = self.client.pipeline(transaction=False)
            for batch in group:
                keys, args = [], []
                for r in batch:
                    keys.append(redis_key(view, r.key))
                    if r.payload is None:
                        args += ["", "", "", "", r.cutoff_us]
                    else:
                        args += [r.ts, r.cts, r.payload, "" if r.exp_ms is None else r.exp_ms, ""]
                self.script(keys=keys, args=args, client=pipe)
            for batch, (written, deleted) in zip(group, pipe.execute(), strict=True):
                stats.add(WriteStats(written, deleted, len(batch) - written - deleted))
        return stats

    def read_entries(self, requests: list[tuple[str, list[str]]]) -> list[list[Entry | None]]:
        """Expired keys are gone (PEXPIREAT), so every entry read is live: ``exp_ms`` None."""
        pipe = self.client.pipeline(transaction=False)
        for view, keys in requests:
            for key in keys:
                pipe.hmget(redis_key(view, key), "v", "ts")
        values = iter(pipe.execute())
        out = []
        for _, keys in requests:
            row: list[Entry | None] = []
            for _ in keys:
                v, ts = next(values)
                row.append(None if v is None else Entry(v.decode(), int(ts), None))
            out.append(row)
        return out

    def get_doc(self, name: str) -> str | None:
        raw = self.client.hget(WATERMARKS, name)
        return raw.decode() if isinstance(raw, bytes) else raw

    def set_doc(self, name: str, doc: str) -> None:
        self.client.hset(WATERMARKS, name, doc)

    def close(self) -> None:
        self.client.close()
