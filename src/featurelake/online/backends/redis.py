"""Redis online store: a standalone server or a Redis Cluster (``online_store.redis_cluster``, startup nodes
``redis_cluster_nodes``), optionally as an ACL user (``online_store.redis_username``) whose password comes from
``$FEATURELAKE_REDIS_PASSWORD`` (materialization opens the store on the executors: on a cluster their environment
needs it too).

Layout: one hash per (namespace, entity key) at ``<view>.v<version>:<key JSON>`` (view names are identifiers
and key JSON starts with ``[``, so keys never collide) with fields ``ts``, ``cts``, ``v``; its expiry is set
with PEXPIREAT. Watermarks, checks and serving pointers live in the hash ``featurelake:watermarks`` (one slot).

Writes run a Lua script over a group of keys (atomic per key on the server, so overlapping runs cannot regress a
value). Standalone: one script call per batch, batches pipelined. Cluster: a script may only touch keys of one
hash slot, so each batch is grouped by slot (keys carry no hash tag: a view spreads over every master) and the
script runs once per group, in one cluster pipeline per batch (redis-py sends each node its commands in one round
trip and re-sends a command that meets MOVED/ASK). redis-py's cluster pipeline has no ``eval``/``evalsha`` methods
(it cannot reload a script a node lost), so the cluster path sends the EVAL command with the script text (about
1 KB per slot group; the server caches the compiled script by its hash; EVALSHA measured no faster) to the node
the client's slot map names. A batch of 500 keys spans ~500 slots, so a cluster runs about one script call per
key (bench/results/redis_cluster.md). Reads: one (cluster) pipeline of HMGETs. Retiring a namespace SCANs every
master for its keys and UNLINKs them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import redis
from redis.cluster import ClusterNode, RedisCluster

from featurelake.online.store import Entry, OnlineStore, Record, StoreConfig, WriteStats, batched

WATERMARKS = "featurelake:watermarks"
PASSWORD_ENV = "FEATURELAKE_REDIS_PASSWORD"
_PIPELINE_BATCHES = 8
_SCAN_COUNT = 1000

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


def _script_args(view: str, records: list[Record]) -> tuple[list[str], list]:
    """The write script's KEYS and ARGV for ``records``."""
    keys, args = [], []
    for r in records:
        keys.append(redis_key(view, r.key))
        if r.payload is None:
            args += ["", "", "", "", r.cutoff_us]
        else:
            args += [r.ts, r.cts, r.payload, "" if r.exp_ms is None else r.exp_ms, ""]
    return keys, args


class RedisStore(OnlineStore):
    client: redis.Redis | RedisCluster

    def __init__(self, config: StoreConfig):
        super().__init__(config)
        username = config.redis_username
        password = os.environ.get(PASSWORD_ENV)  # never in conf/ nor in the pickled config sent to executors
        self.cluster = bool(config.redis_cluster_nodes)
        if self.cluster:
            nodes = [ClusterNode(h, int(p)) for h, _, p in (n.rpartition(":") for n in config.redis_cluster_nodes)]
            self.client = RedisCluster(startup_nodes=nodes, username=username, password=password)
        else:
            self.client = redis.Redis(
                host=config.redis_host, port=config.redis_port, db=config.redis_db, username=username, password=password
            )
        self.script = self.client.register_script(_WRITE)

    def prepare(self, view: str) -> None:
        if not self.cluster:
            self.script.sha = self.client.script_load(_WRITE)

    def write(self, view: str, records: Iterable[Record]) -> WriteStats:
        if self.cluster:
            return self._write_cluster(view, records)
        stats = WriteStats()
        for group in batched(batched(records, self.config.batch_size), _PIPELINE_BATCHES):
            pipe = self.client.pipeline(transaction=False)
            for batch in group:
                keys, args = _script_args(view, batch)
                self.script(keys=keys, args=args, client=pipe)
            for batch, (written, deleted) in zip(group, pipe.execute(), strict=True):
                stats.add(WriteStats(written, deleted, len(batch) - written - deleted))
        return stats

    def _write_cluster(self, view: str, records: Iterable[Record]) -> WriteStats:
        assert isinstance(self.client, RedisCluster)
        stats = WriteStats()
        for batch in batched(records, self.config.batch_size):
            slots: dict[int, list[Record]] = {}
            for r in batch:  # records of one key stay in their order: the script applies them in turn
                slots.setdefault(self.client.keyslot(redis_key(view, r.key)), []).append(r)
            pipe = self.client.pipeline()
            for group in slots.values():
                keys, args = _script_args(view, group)
                # the node from the client's slot map (else redis-py asks a server for the keys of every EVAL);
                # a command that meets MOVED/ASK is re-sent by redis-py, routed by its keys
                node = self.client.get_node_from_key(keys[0])
                pipe.execute_command("EVAL", _WRITE, len(keys), *keys, *args, target_nodes=node)
            for group, (written, deleted) in zip(slots.values(), pipe.execute(), strict=True):
                stats.add(WriteStats(written, deleted, len(group) - written - deleted))
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

    def delete_doc(self, name: str) -> None:
        self.client.hdel(WATERMARKS, name)

    def _masters(self) -> list[redis.Redis]:
        """A client per server holding keys: each master of a cluster, or the one server."""
        if isinstance(self.client, RedisCluster):
            return [self.client.get_redis_connection(node) for node in self.client.get_primaries()]
        return [self.client]

    def drop_namespace(self, namespace: str) -> int:
        """SCAN each master for ``<namespace>:*`` (a namespace has no glob characters) and UNLINK what it finds,
        key by key in pipelines (keys of a cluster master lie in many slots)."""
        removed = 0
        for server in self._masters():
            for chunk in batched(server.scan_iter(match=redis_key(namespace, "*"), count=_SCAN_COUNT), _SCAN_COUNT):
                pipe = server.pipeline(transaction=False)
                for key in chunk:
                    pipe.unlink(key)
                removed += sum(pipe.execute())
        return removed

    def close(self) -> None:
        self.client.close()
