"""Measurements: 4 driver processes committing to the local S3 server at once, with storage.s3.commit_coordination
`none` (Delta's S3SingleDriverLogStore) and `conditional` (featurelake's log store, PUT If-None-Match: *):

- appends: ROUNDS rounds each, alternating, of 4 drivers appending to one Delta table: how many rows and commits
  survive, and how many commits lost a race and were retried (bench/results/s3_commits.{json,md});
- races: RACE_ROUNDS rounds each of 4 drivers creating the same commit file through the log store at once (what two
  drivers committing the same version do): how often more than one is told it succeeded, i.e. a commit is lost
  (bench/results/s3_commits_race.{json,md}).

Not tests of the `none` store (its losses depend on timing): counts of them.

    .venv/bin/python -m pytest -m bench -s tests/bench/test_bench_s3_commits.py
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import pytest

from tests.bench.test_bench_online import machine
from tests.integration.test_s3_commits import concurrent_appends, racing_creates

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
COMMAND = ".venv/bin/python -m pytest -m bench -s tests/bench/test_bench_s3_commits.py"
ROUNDS, WRITERS, ROWS, RACE_ROUNDS = 3, 4, 50, 20


def test_bench_s3_commits(s3a, spark, tmp_path):  # noqa: F811
    settings, boto, bucket = s3a
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    load = os.getloadavg()
    runs = []
    for i in range(ROUNDS):
        for coordination in ("none", "conditional"):
            folder = tmp_path / f"{coordination}-{i}"
            folder.mkdir()
            t0 = time.perf_counter()
            done = concurrent_appends(
                spark,
                settings,
                boto,
                bucket,
                f"bench/{coordination}-{i}",
                folder,
                writers=WRITERS,
                rows=ROWS,
                coordination=coordination,
            )
            runs.append(
                {
                    "coordination": coordination,
                    "round": i,
                    "wall_s": round(time.perf_counter() - t0, 1),
                    "rows": len(done.rows),
                    "rows_expected": len(done.expected),
                    "commits_after_create": len(done.commits) - 1,
                    "retried": done.retried,
                    "failed_drivers": sorted(done.failed),
                }
            )
            print(runs[-1], flush=True)
    result = {"command": COMMAND, "started": started, "load_at_start": load, "machine": machine(), "runs": runs}
    (RESULTS / "s3_commits.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Concurrent Delta commits on S3: 4 drivers appending to one table at once",
        "",
        f"Command: `{COMMAND}` (started {started})",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, load average at start {list(load)}",
        "",
        f"{WRITERS} driver processes (own JVM, local[1]) append {ROWS} rows each to one Delta table on the local S3 "
        "server (S3Proxy 4.0.0, filesystem-nio2), released together by a barrier once warm; "
        f"{ROUNDS} rounds per setting, alternating. `retried`: commits that lost the race for a version and were "
        "committed at a later one. The barrier releases the drivers' write jobs, not their commits: on 2 shared "
        "cores the jobs spread the commits apart enough for `S3SingleDriverLogStore`'s existence check to see the "
        "other's file, so `none` lost nothing here; the bare race (s3_commits_race.md) shows what it does when two "
        "commits of a version meet.",
        "",
        "| commit_coordination | round | rows found / sent | commits after the creating one | retried | failed "
        "drivers | wall s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        lines.append(
            f"| {r['coordination']} | {r['round']} | {r['rows']} / {r['rows_expected']} | "
            f"{r['commits_after_create']} of {WRITERS} | {r['retried']} | {r['failed_drivers'] or '-'} | "
            f"{r['wall_s']} |"
        )
    (RESULTS / "s3_commits.md").write_text("\n".join(lines) + "\n")


def test_bench_s3_commit_races(s3a, tmp_path):  # noqa: F811
    settings, boto, bucket = s3a
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    load = os.getloadavg()
    results = {}
    for coordination in ("none", "conditional"):
        folder = tmp_path / coordination
        folder.mkdir()
        t0 = time.perf_counter()
        race = racing_creates(
            settings, boto, bucket, f"race/{coordination}", folder, writers=WRITERS, rounds=RACE_ROUNDS,
            coordination=coordination,
        )  # fmt: skip
        results[coordination] = {
            "wall_s": round(time.perf_counter() - t0, 1),
            "winners_per_round": [len(w) for w in race.winners],
            "rounds_with_several_winners": sum(len(w) > 1 for w in race.winners),
            "lost_commits": race.lost_commits,
            "standing_is_a_winner": sum(s in w for s, w in zip(race.standing, race.winners, strict=True)),
        }
        print(coordination, results[coordination], flush=True)
    result = {"command": COMMAND, "started": started, "load_at_start": load, "machine": machine(), "races": results}
    (RESULTS / "s3_commits_race.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Two drivers committing the same version: who wins",
        "",
        f"Command: `{COMMAND}` (started {started})",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, load average at start {list(load)}",
        "",
        f"{WRITERS} driver processes (own JVM, local[1], warm) create the same log file (`_delta_log/...01.json`) "
        f"through the log store of the setting at once (a barrier per round), {RACE_ROUNDS} rounds. A round with "
        "more than one writer told it succeeded is a lost commit: each would go on as if its version were in the log.",
        "",
        "| commit_coordination | rounds with several winners | lost commits | winners per round | wall s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for coordination, r in results.items():
        lines.append(
            f"| {coordination} | {r['rounds_with_several_winners']} of {RACE_ROUNDS} | {r['lost_commits']} | "
            f"{' '.join(map(str, r['winners_per_round']))} | {r['wall_s']} |"
        )
    (RESULTS / "s3_commits_race.md").write_text("\n".join(lines) + "\n")
