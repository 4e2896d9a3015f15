"""One run of a job: its data interval, its timing and the records it appends to ``monitoring.runs``.

``recorded_run`` times a run and yields a ``Run``; the block adds a record per table it wrote
(``run.wrote(commit, message)``). On success the records are appended in one commit; when the block raises,
each target is recorded as ``failed`` with the error as its message, so ``featurelake status`` shows it failing
until a run succeeds, and the error is re-raised.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import copy_context
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from featurelake.errors import InputError
from featurelake.tables import HOLD_RECORDS, Commit, append_now, append_rows

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

T = TypeVar("T")
R = TypeVar("R")
RUNS_TABLE = "monitoring.runs"
MESSAGE_CHARS = 4000  # an error recorded with a failed run is cut to this length


def parse_date(value: str) -> dt.date:
    """An ISO date (YYYY-MM-DD); a clear InputError otherwise."""
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{value!r} is not a date (expected YYYY-MM-DD)") from None


@dataclass(frozen=True)
class Interval:
    """A data interval: the inclusive dates [start, end] a run covers (checked: start <= end)."""

    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise InputError(f"--start {self.start} is after --end {self.end}")

    @classmethod
    def parse(cls, start: str, end: str) -> Interval:
        """The interval of two ISO dates, e.g. the ``--start``/``--end`` options."""
        return cls(parse_date(start), parse_date(end))

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def __str__(self) -> str:
        return f"{self.start}..{self.end}"


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    job: str
    target: str
    interval_start: dt.date | None
    interval_end: dt.date | None
    delta_version: int | None
    rows_written: int | None
    started_at: dt.datetime
    duration_s: float
    status: str
    message: str | None = None


def runs_schema():
    from pyspark.sql import types as T

    return T.StructType(
        [
            T.StructField("run_id", T.StringType(), False),
            T.StructField("job", T.StringType(), False),
            T.StructField("target", T.StringType(), False),
            T.StructField("interval_start", T.DateType()),
            T.StructField("interval_end", T.DateType()),
            T.StructField("delta_version", T.LongType()),
            T.StructField("rows_written", T.LongType()),
            T.StructField("started_at", T.TimestampType(), False),
            T.StructField("duration_s", T.DoubleType(), False),
            T.StructField("status", T.StringType(), False),
            T.StructField("message", T.StringType()),
        ]
    )


def record_runs(spark: SparkSession, records: list[RunRecord]) -> None:
    """Append run records to ``monitoring.runs`` (one commit)."""
    if records:
        append_rows(spark, RUNS_TABLE, [asdict(r) for r in records], runs_schema())


@dataclass
class Run:
    """A run in progress: its id, job, interval, start time and the records of what it wrote so far."""

    run_id: str
    job: str
    interval: Interval | None
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None))
    records: list[RunRecord] = field(default_factory=list)
    clock: float = field(default_factory=time.monotonic, repr=False)

    def record(
        self,
        target: str,
        status: str,
        message: str | None = None,
        *,
        version: int | None = None,
        rows: int | None = None,
    ) -> None:
        """Add the record of ``target`` as of now (its duration runs from the start of the run): ``success``, or
        e.g. dbt's ``error``/``skipped`` for a table it did not write."""
        start, end = (self.interval.start, self.interval.end) if self.interval else (None, None)
        duration = time.monotonic() - self.clock
        self.records.append(
            RunRecord(self.run_id, self.job, target, start, end, version, rows, self.started, duration, status, message)
        )

    def wrote(self, commit: Commit, message: str | None = None) -> None:
        """Add the record of a successful write: the commit's table, version and rows."""
        self.record(commit.table, "success", message, version=commit.version, rows=commit.rows_written)


@dataclass
class HeldRecords:
    """Record rows held by ``holding_records``: per table, its schema, ``merge_schema`` and rows."""

    tables: dict[str, tuple[Any, bool, list[Any]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # set when a block inside the holding one ended, for a ``RecordWriter`` committing behind it
    block_ended: threading.Event = field(default_factory=threading.Event, repr=False)

    def add(self, name: str, rows: list[Any], schema: Any, merge_schema: bool) -> None:
        with self.lock:
            self.tables.setdefault(name, (schema, merge_schema, []))[2].extend(rows)

    def commit(self, spark: SparkSession) -> None:
        """Append each table's rows in one commit, the tables side by side; the first failure is raised after all."""
        with self.lock:
            tables, self.tables = self.tables, {}
        pending = [name for name, (_, _, rows) in tables.items() if rows]

        def append(name: str) -> None:
            schema, merge_schema, rows = tables[name]
            append_now(spark, name, rows, schema, merge_schema)

        run_all(append, pending, label=str, workers=len(pending))


# How long the records of a run that ended wait for those of the runs ending after it (``RecordWriter``): a commit
# costs about the same for one run's rows as for many (0.3 s of driver work per table here), so a nightly's views
# that end within this share one commit per table, and a long run of views still records each within it.
RECORD_LINGER_S = 30.0


class RecordWriter:
    """Commits the records held for a block while the block goes on (a group commit): once a block inside it
    ends (e.g. one view's run), a thread waits ``RECORD_LINGER_S`` (or for the block's end) and appends every
    record held by then, one commit per table. The runs that end within that share their record commits, and
    none waits for its own."""

    def __init__(self, spark: SparkSession, held: HeldRecords):
        self.spark, self.held = spark, held
        self.closed = threading.Event()
        self.failures: list[Exception] = []
        self.thread = threading.Thread(target=self._commit_when_ready, name="featurelake-records", daemon=True)
        self.thread.start()

    def _commit_when_ready(self) -> None:
        while True:
            self.held.block_ended.wait()
            self.closed.wait(RECORD_LINGER_S)
            self.held.block_ended.clear()
            last = self.closed.is_set()
            try:
                self.held.commit(self.spark)
            except Exception as exc:  # noqa: BLE001 - raised by close(), after the block
                self.failures.append(exc)
            if last:
                return

    def close(self) -> None:
        """Commit the records still held and wait for it; raise the first failed commit (noting the others)."""
        self.closed.set()
        self.held.block_ended.set()
        self.thread.join()
        if self.failures:
            first, *others = self.failures
            for other in others:
                first.add_note(f"(another commit of records failed too: {other})")
            raise first


@contextmanager
def holding_records(spark: SparkSession, *, behind: bool = False) -> Iterator[None]:
    """Hold the record appends (``tables.append_rows``) of this block and commit them at its end, also when it
    raises: one commit per record table instead of one per append, the tables written side by side (a run's
    validation results, statistics and run record land together). Appends by this thread count, and by threads
    that run in a copy of its context (``contextvars.copy_context().run``, as ``run_all`` does); others append at
    once. A block inside another adds to the outer one's commit. A failure to commit after the block raised is
    noted on its error.

    ``behind``: the records are committed while the block goes on, within ``RECORD_LINGER_S`` of the end of a
    block inside it (``RecordWriter``), and what is left at its end; a process that dies loses the records held
    since the last commit (their runs' tables are written)."""
    outer = HOLD_RECORDS.get()
    if outer is not None:
        try:
            yield
        finally:
            outer.block_ended.set()
        return
    held = HeldRecords()
    writer = RecordWriter(spark, held) if behind else None
    token = HOLD_RECORDS.set(held)

    def commit_rest() -> None:
        if writer is None:
            held.commit(spark)
        else:
            writer.close()

    try:
        yield
    except Exception as exc:
        try:
            commit_rest()
        except Exception as not_committed:  # noqa: BLE001 - the block's own error is the one to raise
            exc.add_note(f"(its records could not be written: {not_committed})")
        raise
    else:
        commit_rest()
    finally:
        HOLD_RECORDS.reset(token)


@contextmanager
def recorded_run(
    spark: SparkSession, job: str, targets: list[str], interval: Interval | None, run_id: str | None = None
) -> Iterator[Run]:
    """Time a run of ``job`` and record it in ``monitoring.runs``: the block's records when it succeeds; each
    of ``targets`` as ``failed`` (the error as message) when it raises, then re-raise. The run's other records
    (validation results, statistics) are held and written with its run records at its end (``holding_records``:
    one commit per table); a failure to record a failure is noted on the error, never raised instead of it."""
    run = Run(run_id or uuid.uuid4().hex, job, interval)
    with holding_records(spark):
        try:
            yield run
        except Exception as exc:
            run.records = []  # a failed run is recorded by its targets alone
            for target in targets:
                run.record(target, "failed", f"{type(exc).__name__}: {exc}"[:MESSAGE_CHARS])
            record_runs(spark, run.records)
            raise
        record_runs(spark, run.records)


def run_all(fn: Callable[[T], R], items: Sequence[T], *, label: Callable[[T], str], workers: int = 1) -> list[R]:
    """``fn`` of each item, ``workers`` at once (one driver thread each, in a copy of the caller's context: e.g.
    its held records, ``holding_records``). Items are independent: a failure
    does not stop the others; after all finished, the first failure (in the order of ``items``) is raised,
    noting the other items that failed."""
    with ThreadPoolExecutor(max(1, min(workers, len(items))), thread_name_prefix="featurelake") as pool:
        futures = [pool.submit(copy_context().run, fn, item) for item in items]
    failed = [(item, exc) for item, f in zip(items, futures, strict=True) if (exc := f.exception()) is not None]
    if failed:
        (_, first), *others = failed
        if others:
            first.add_note("also failed: " + ", ".join(f"{label(item)} ({exc})" for item, exc in others))
        raise first
    return [f.result() for f in futures]
