"""SQLite online store: one file (default ``.state/online/online.db``), the embedded default.

Layout: ``feature_values(view, k, ts, cts, v, exp_ms)`` keyed by (view, k) and ``watermarks(view, doc)``.
Expired values are filtered on read and purged after each materialization.

Concurrent writers: a SQLite file takes one writer at a time. Executors writing partitions in parallel
each hold the write lock for one batch (one transaction); the others wait on ``busy_timeout`` (WAL mode
keeps readers unblocked). Writes are thereby serialized but correct; SQLite suits one machine (local
Spark), use Redis or DynamoDB on a cluster.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from featurelake.online.store import Entry, OnlineStore, Record, StoreConfig, WriteStats, batched

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feature_values (
  view TEXT NOT NULL, k TEXT NOT NULL, ts INTEGER NOT NULL, cts INTEGER NOT NULL, v TEXT NOT NULL, exp_ms INTEGER,
  PRIMARY KEY (view, k)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS watermarks (view TEXT PRIMARY KEY, doc TEXT NOT NULL);
"""
_UPSERT = """
INSERT INTO feature_values (view, k, ts, cts, v, exp_ms) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (view, k) DO UPDATE SET ts = excluded.ts, cts = excluded.cts, v = excluded.v, exp_ms = excluded.exp_ms
WHERE excluded.ts > feature_values.ts OR (excluded.ts = feature_values.ts AND excluded.cts >= feature_values.cts)
"""
_DELETE = "DELETE FROM feature_values WHERE view = ? AND k = ? AND ts < ?"
_CHUNK = 500  # keys per IN (...) on read, below SQLite's variable limit


class SqliteStore(OnlineStore):
    def __init__(self, config: StoreConfig):
        super().__init__(config)
        path = Path(config.sqlite_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path, timeout=300, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout = 300000")
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.executescript(_SCHEMA)

    def prepare(self, view: str) -> None:
        pass  # one shared table

    def write(self, view: str, records: Iterable[Record]) -> WriteStats:
        stats = WriteStats()
        for batch in batched(records, self.config.batch_size):
            ups = [(view, r.key, r.ts, r.cts, r.payload, r.exp_ms) for r in batch if r.payload is not None]
            dels = [(view, r.key, r.cutoff_us) for r in batch if r.payload is None]
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                before = self.conn.total_changes
                if ups:
                    self.conn.executemany(_UPSERT, ups)
                written = self.conn.total_changes - before
                if dels:
                    self.conn.executemany(_DELETE, dels)
                deleted = self.conn.total_changes - before - written
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            stats.add(WriteStats(written, deleted, len(batch) - written - deleted))
        return stats

    def read_entries(self, requests: list[tuple[str, list[str]]]) -> list[list[Entry | None]]:
        out = []
        for view, keys in requests:
            found: dict[str, Entry] = {}
            for i in range(0, len(keys), _CHUNK):
                chunk = keys[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self.conn.execute(
                    f"SELECT k, v, ts, exp_ms FROM feature_values WHERE view = ? AND k IN ({marks})", (view, *chunk)
                )
                found.update((k, Entry(v, ts, exp_ms)) for k, v, ts, exp_ms in rows)
            out.append([found.get(k) for k in keys])
        return out

    def get_doc(self, name: str) -> str | None:
        row = self.conn.execute("SELECT doc FROM watermarks WHERE view = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_doc(self, name: str, doc: str) -> None:
        self.conn.execute(
            "INSERT INTO watermarks (view, doc) VALUES (?, ?) ON CONFLICT (view) DO UPDATE SET doc = excluded.doc",
            (name, doc),
        )

    def delete_doc(self, name: str) -> None:
        self.conn.execute("DELETE FROM watermarks WHERE view = ?", (name,))

    def drop_namespace(self, namespace: str) -> int:
        return self.conn.execute("DELETE FROM feature_values WHERE view = ?", (namespace,)).rowcount

    def purge_expired(self, view: str, now_ms: int) -> int:
        cur = self.conn.execute("DELETE FROM feature_values WHERE view = ? AND exp_ms <= ?", (view, now_ms))
        return cur.rowcount

    def close(self) -> None:
        self.conn.close()
