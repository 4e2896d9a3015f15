"""Benchmark: the point-in-time join against its peers (Feast 0.67's DuckDB and Spark offline stores) and a sort floor.

The workload of ``test_bench_pit.py`` (entity rows: uniform users/merchants/times over 30 days; view A 100,000
users x 30 daily rows, view B 10,000 merchants x 120 rows; 5 doubles each; ttl 7 d / 2 d; created timestamps) is
written ONCE to parquet; every engine reads those files and writes its full output to parquet:

- ``featurelake``: ``point_in_time_join`` on Spark (local[2], 8 shuffle partitions, 8 GiB driver);
- ``feast_duckdb``: Feast 0.67, DuckDB offline store, FileSources; ``get_historical_features(...).to_arrow()``;
- ``feast_spark``: Feast 0.67, Spark offline store (same Spark settings), SparkSources; ``to_spark_df()`` written;
- ``sort_floor``: per view, the entity rows and the view's rows read, repartitioned by the key, sorted within
  partitions by key and time, the entity rows written; no window function (the rows an exact as-of join must move).

Each run is a fresh process (Feast from its own virtualenv, ``make feast-venv``); the time is measured inside it
from reading the inputs to the written output (session start-up excluded); the peak RSS is of its whole process
tree (JVM included), polled. Repetitions alternate the engines. featurelake's output must equal Feast DuckDB's
cell for cell; Feast Spark's extra rows (it duplicates entity rows on exact ties) are counted. A run whose tree
passes ``RSS_CAP_GIB`` is stopped (the machine is shared) and reported as such. Results: bench/results/
pit_peers.{json,md}. Environment: ``BENCH_PIT_PEERS_SIZES`` (default ``1000000,4000000``),
``BENCH_PIT_PEERS_BIG`` (one attempt per engine at this size, default 20000000; 0 skips),
``BENCH_PIT_PEERS_SPARK_SIZES`` (sizes Feast Spark runs at, once: default ``1000000``; it takes ~190 s there),
``BENCH_PIT_PEERS_REPS`` (alternating repetitions of the other engines, default 3), ``BENCH_PIT_PEERS_RSS_CAP_GIB``
(default 16; on a machine of its own, up to what it has less the 1.5 GiB the guard keeps free).

    make feast-venv && .venv/bin/python -m pytest -m bench -s tests/bench/test_bench_pit_peers.py
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bench.test_bench_pit import FEATURES, feature_table, generate

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
FEAST_VENV = ROOT / ".state" / "bench" / "feast-venv"
COMMAND = "make feast-venv && .venv/bin/python -m pytest -m bench -s tests/bench/test_bench_pit_peers.py"
SIZES = [int(s) for s in os.environ.get("BENCH_PIT_PEERS_SIZES", "1000000,4000000").split(",") if s]
BIG = int(os.environ.get("BENCH_PIT_PEERS_BIG", "20000000"))
SPARK_SIZES = [int(s) for s in os.environ.get("BENCH_PIT_PEERS_SPARK_SIZES", "1000000").split(",") if s]
REPS = int(os.environ.get("BENCH_PIT_PEERS_REPS", "3"))
ENGINES = ("featurelake", "featurelake_asof", "feast_duckdb", "sort_floor")
RSS_CAP_GIB = float(os.environ.get("BENCH_PIT_PEERS_RSS_CAP_GIB", "16"))
SPARK_CONF = {
    "spark.master": "local[2]",
    "spark.driver.memory": "8g",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}
VIEWS = {  # name -> (key, ttl days)
    "users": ("user_id", 7),
    "merchants": ("merchant_id", 2),
}
ENTITY_COLUMNS = ["user_id", "merchant_id", "event_timestamp", "label"]

# Run by the Feast virtualenv's python: argv = engine, data dir, entity parquet, output path, work dir.
FEAST_SCRIPT = """
import json, sys, time
from datetime import timedelta
from pathlib import Path

engine, data, entities, out, work = sys.argv[1:6]
spark_conf = json.loads(sys.argv[6])
work = Path(work)
work.mkdir(parents=True, exist_ok=True)
if engine == "feast_duckdb":
    offline = "offline_store:\\n  type: duckdb\\n"
else:
    offline = "offline_store:\\n  type: spark\\n  spark_conf:\\n" + "".join(
        f"    {k}: '{v}'\\n" for k, v in spark_conf.items()
    )
(work / "feature_store.yaml").write_text(
    f"project: bench\\nregistry: {work}/registry.db\\nprovider: local\\n{offline}"
    f"online_store:\\n  type: sqlite\\n  path: {work}/online.db\\nentity_key_serialization_version: 3\\n"
)

from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

views = {"users": ("user_id", 7), "merchants": ("merchant_id", 2)}
objects = []
for name, (key, ttl_days) in views.items():
    path = f"{data}/{name}.parquet"
    if engine == "feast_duckdb":
        source = FileSource(name=name, path=path, timestamp_field="event_timestamp",
                            created_timestamp_column="created_timestamp")
    else:
        from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
        source = SparkSource(name=name, path=path, file_format="parquet", timestamp_field="event_timestamp",
                             created_timestamp_column="created_timestamp", date_partition_column="event_date")
    entity = Entity(name=key, join_keys=[key], value_type=ValueType.INT64)
    schema = [Field(name=key, dtype=Int64)] + [Field(name=f"f{i}", dtype=Float64) for i in range(5)]
    objects += [entity, FeatureView(name=name, entities=[entity], ttl=timedelta(days=ttl_days), schema=schema,
                                    source=source)]
store = FeatureStore(repo_path=str(work))
store.apply(objects)
features = [f"{name}:f{i}" for name in views for i in range(5)]

t0 = time.perf_counter()
if engine == "feast_duckdb":
    import pandas as pd
    import pyarrow.parquet as pq
    entity_df = pd.read_parquet(entities)
    table = store.get_historical_features(entity_df=entity_df, features=features, full_feature_names=True).to_arrow()
    pq.write_table(table, out)
else:
    entity_sql = f"SELECT * FROM parquet.`{entities}`"
    job = store.get_historical_features(entity_df=entity_sql, features=features, full_feature_names=True)
    job.to_spark_df().write.mode("overwrite").parquet(out)
print("RESULT " + json.dumps({"seconds": round(time.perf_counter() - t0, 2)}), flush=True)
"""


@pytest.mark.bench
def test_bench_pit_peers(tmp_path):
    if not (FEAST_VENV / "bin" / "python").exists():
        pytest.fail(f"no Feast environment at {FEAST_VENV}: run `make feast-venv` first", pytrace=False)
    result = run_all(tmp_path)
    print(json.dumps(result["summary"], indent=2))
    # every size is checked; the big one only when every engine but the floor completed there
    checked = [*SIZES, *([BIG] if str(BIG) in result["checks"] else [])]
    for c in (result["checks"][str(n)] for n in checked):
        assert c["featurelake_equals_feast_duckdb"] and c["featurelake_asof_equals_feast_duckdb"], c


def run_all(tmp: Path) -> dict:
    from tests.conftest import CODEGEN_ENV, isolated_env

    spark_conf = {"FEATURELAKE__SPARK__" + _env_key(k): v for k, v in SPARK_CONF.items()}
    env = isolated_env(tmp / "state", **CODEGEN_ENV, **spark_conf)
    env["PYTHONPATH"] = str(ROOT)  # the children import this module's workload from tests.bench
    data, outs = tmp / "data", tmp / "out"
    outs.mkdir(parents=True)
    load_start = _load()
    t0 = time.perf_counter()
    _run([sys.executable, __file__, "generate", str(data), ",".join(map(str, SIZES))], env)
    gen_s = round(time.perf_counter() - t0, 1)

    runs: list[dict] = []
    checks: dict[str, dict] = {}
    meta = {
        "workload": "entity rows uniform over 30 days, 100k users / 10k merchants; view users 100k x 30 daily "
        "rows (ttl 7 d), view merchants 10k x 120 rows every 6 h (ttl 2 d); 5 doubles each; created timestamps; "
        "parquet in, full output written to parquet",
        "data_generation_s": gen_s,
        "spark_conf": SPARK_CONF,
        "rss_cap_gib": RSS_CAP_GIB,
        "versions": versions(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        },
        "load_average_start": load_start,
        "command": COMMAND,
    }

    def write() -> dict:  # after every run: a run stopped early still leaves its results
        result = {**meta, "summary": summarize(runs), "checks": checks, "runs": runs, "load_average_end": _load()}
        result["measured_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "pit_peers.json").write_text(json.dumps(result, indent=2) + "\n")
        (RESULTS / "pit_peers.md").write_text(report(result))
        return result

    def one(engine: str, n: int, rep: int) -> dict:
        out = outs / f"{engine}_{n}.parquet"
        shutil.rmtree(out, ignore_errors=True)
        r = run_engine(engine, n, data, out, tmp / "work" / f"{engine}_{n}_{rep}", env)
        r |= {"engine": engine, "rows_in": n, "rep": rep, "load": _load()}
        runs.append(r)
        print(json.dumps(r), flush=True)
        write()
        return r

    def check(n: int) -> None:
        checks.setdefault(str(n), {}).update(compare(outs, n))  # keeps Feast Spark's counts
        write()

    # Alternating rounds (each engine once per round); Feast Spark once per size, after the first rounds.
    for rep in range(REPS):
        for n in SIZES:
            for engine in ENGINES:
                one(engine, n, rep)
            if rep == 0:
                check(n)
        if rep == 0:
            for n in SPARK_SIZES:
                if one("feast_spark", n, 0)["status"] == "ok":
                    checks[str(n)] |= spark_extra_rows(outs, n)
    for n in SIZES:
        check(n)
    if BIG:
        _run([sys.executable, __file__, "generate", str(data), str(BIG), "entities-only"], env)
        for engine in ENGINES:
            one(engine, BIG, 0)
        if all(r["status"] == "ok" for r in runs if r["rows_in"] == BIG and r["engine"] != "sort_floor"):
            check(BIG)
    return write()


def _env_key(spark_key: str) -> str:
    """featurelake's setting for a Spark key (its env parser keeps the case of a mixed-case key)."""
    return {"spark.master": "MASTER", "spark.sql.shuffle.partitions": "SHUFFLE_PARTITIONS"}.get(
        spark_key, "CONF__" + spark_key
    )


def _load() -> list[float]:
    return [round(x, 1) for x in os.getloadavg()]


def _run(cmd: list[str], env: dict) -> None:
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def run_engine(engine: str, n: int, data: Path, out: Path, work: Path, env: dict) -> dict:
    """One run in a fresh process: status, inner seconds, process wall seconds, peak RSS of the process tree."""
    import psutil

    entities = str(data / f"entities_{n}.parquet")
    if engine.startswith("feast_"):
        work.mkdir(parents=True, exist_ok=True)
        script = work / "feast_pit.py"
        script.write_text(FEAST_SCRIPT)
        cmd = [str(FEAST_VENV / "bin" / "python"), str(script), engine, str(data), entities, str(out), str(work)]
        cmd.append(json.dumps(SPARK_CONF))
        child_env = {k: v for k, v in env.items() if not k.startswith(("FEATURELAKE", "PYSPARK", "SPARK"))}
    else:
        cmd = [sys.executable, __file__, engine, str(data), entities, str(out)]
        child_env = env
    log = work.with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, env=child_env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
        peak, status = 0, "ok"
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            rss = 0
            with contextlib.suppress(psutil.NoSuchProcess):
                for p in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        rss += p.memory_info().rss
            peak = max(peak, rss)
            available = psutil.virtual_memory().available
            if rss > RSS_CAP_GIB * 2**30 or available < 1.5 * 2**30:
                why = "its cap" if rss > RSS_CAP_GIB * 2**30 else f"the machine had {available / 2**30:.1f} GiB left"
                status = f"stopped at {rss / 2**30:.1f} GiB resident ({why})"
                _kill_tree(root)
                proc.wait()
                break
            time.sleep(0.2)
    wall = round(time.perf_counter() - t0, 1)
    text = log.read_text()
    seconds = None
    for line in text.splitlines():
        if line.startswith("RESULT "):
            seconds = json.loads(line[7:])["seconds"]
    if status == "ok" and (proc.returncode != 0 or seconds is None):
        status = f"failed (exit {proc.returncode}): {text.strip().splitlines()[-1] if text.strip() else ''}"[:300]
    return {"status": status, "seconds": seconds, "wall_s": wall, "peak_rss_gib": round(peak / 2**30, 2)}


def _kill_tree(root) -> None:
    import psutil

    procs = [root, *root.children(recursive=True)]
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()


def _read(path: Path):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    table = ds.dataset(str(path), format="parquet").to_table()
    cols = [*ENTITY_COLUMNS, *[f"{v}__{f}" for v in VIEWS for f in FEATURES]]
    arrays = []
    for c in cols:
        a = table[c]
        if c == "event_timestamp":
            a = pc.cast(pc.cast(a, pa.timestamp("us", "UTC")), pa.int64())
        elif c in ENTITY_COLUMNS:
            a = pc.cast(a, pa.int64())
        else:
            a = pc.cast(a, pa.float64())
        arrays.append(a)
    t = pa.table(arrays, names=cols)
    return t.take(pc.sort_indices(t, sort_keys=[(c, "ascending") for c in cols], null_placement="at_start"))


def compare(outs: Path, n: int) -> dict:
    """Each featurelake method vs Feast DuckDB, cell for cell (rows sorted on every column)."""
    import pyarrow.compute as pc

    theirs_path = outs / f"feast_duckdb_{n}.parquet"
    if not theirs_path.exists():
        return {"featurelake_equals_feast_duckdb": None, "note": "Feast DuckDB wrote no output"}
    theirs = _read(theirs_path)
    out: dict = {"rows": {"feast_duckdb": theirs.num_rows}}
    for engine in ("featurelake", "featurelake_asof"):
        if not (outs / f"{engine}_{n}.parquet").exists():
            continue
        ours = _read(outs / f"{engine}_{n}.parquet")
        out["rows"][engine] = ours.num_rows
        equal = ours.num_rows == theirs.num_rows == n and ours.equals(theirs)
        out[f"{engine}_equals_feast_duckdb"] = equal
        if not equal and ours.num_rows == theirs.num_rows:
            out[f"{engine}_differing_rows"] = int(pc.sum(pc.invert(_rows_equal(ours, theirs))).as_py())
        out["rows_with_features"] = {v: int(pc.sum(pc.is_valid(ours[f"{v}__f0"])).as_py()) for v in VIEWS}
    return out


def _rows_equal(a, b):
    import pyarrow.compute as pc

    eq = None
    for c in a.column_names:
        same = pc.or_(pc.fill_null(pc.equal(a[c], b[c]), False), pc.and_(pc.is_null(a[c]), pc.is_null(b[c])))
        eq = same if eq is None else pc.and_(eq, same)
    return eq


def spark_extra_rows(outs: Path, n: int) -> dict:
    """Feast Spark's output: its rows beyond the entity rows, and whether its distinct rows are featurelake's."""
    ours, spark = _read(outs / f"featurelake_{n}.parquet"), _read(outs / f"feast_spark_{n}.parquet")
    ours_set = set(zip(*[ours[c].to_pylist() for c in ours.column_names], strict=True))
    spark_rows = list(zip(*[spark[c].to_pylist() for c in spark.column_names], strict=True))
    return {
        "feast_spark_rows": spark.num_rows,
        "feast_spark_extra_rows": spark.num_rows - n,
        "feast_spark_rows_not_in_featurelake": sum(1 for r in set(spark_rows) if r not in ours_set),
    }


def summarize(runs: list[dict]) -> dict:
    """Per size and engine: best seconds, every repetition, peak RSS, status; ratios of featurelake's best."""
    out: dict[str, dict] = {}
    for r in runs:
        s = out.setdefault(str(r["rows_in"]), {}).setdefault(
            r["engine"], {"seconds": [], "wall_s": [], "peak_rss_gib": [], "status": []}
        )
        for k in ("seconds", "wall_s", "peak_rss_gib", "status"):
            s[k].append(r[k])
    for per in out.values():
        for s in per.values():
            ok = [x for x, st in zip(s["seconds"], s["status"], strict=True) if st == "ok" and x is not None]
            s["best_s"] = min(ok) if ok else None
        best = {e: x["best_s"] for e, x in per.items() if x["best_s"]}
        per["ratios"] = {
            f"{peer}_over_{ours}": round(best[peer] / best[ours], 2)
            for ours in ("featurelake", "featurelake_asof")
            for peer in ("feast_duckdb", "feast_spark")
            if ours in best and peer in best
        }
        for ours in ("featurelake", "featurelake_asof"):
            if ours in best and "sort_floor" in best:
                per["ratios"][f"{ours}_over_sort_floor"] = round(best[ours] / best["sort_floor"], 2)
    return out


def versions() -> dict:
    import pyspark

    names = ["feast", "duckdb", "pyspark", "ibis"]
    probe = f"import {', '.join(names)}; print({', '.join(f'{n}.__version__' for n in names)})"
    cmd = [str(FEAST_VENV / "bin/python"), "-c", probe]
    theirs = subprocess.run(cmd, capture_output=True, text=True).stdout.split()
    return {"featurelake_pyspark": pyspark.__version__, "feast_venv": dict(zip(names, theirs, strict=False))}


def report(result: dict) -> str:
    s = result["summary"]
    names = {
        "featurelake": "featurelake (window)",
        "featurelake_asof": "featurelake (asof)",
        "feast_duckdb": "Feast 0.67 DuckDB",
        "feast_spark": "Feast 0.67 Spark",
        "sort_floor": "sort floor",
    }

    def cell(per: dict, e: str) -> str:
        if e not in per:
            return "not run"
        x = per[e]
        if x["best_s"] is None:
            return f"{'; '.join(x['status'])} (peak {max(x['peak_rss_gib'])} GiB)"
        reps = ", ".join(str(v) for v in x["seconds"])
        return f"**{x['best_s']}** ({reps}); {max(x['peak_rss_gib'])} GiB"

    lines = [
        "# Point-in-time join vs Feast 0.67 (DuckDB and Spark offline stores) and a sort floor",
        "",
        f"Workload: {result['workload']}. Each run is a fresh process; seconds are from reading the parquet "
        "inputs to the written output (session start-up excluded), the best of the alternating repetitions "
        "(each listed in brackets), then the peak resident memory of the run's process tree (JVM included).",
        "",
        "| entity rows | " + " | ".join(names.values()) + " |",
        "| --- | --- | --- | --- | --- | --- |",
        *[f"| {int(n):,} | " + " | ".join(cell(per, e) for e in names) + " |" for n, per in s.items()],
        "",
        "Ratios of the best times (Feast / featurelake: above 1 means featurelake is faster; featurelake / floor: "
        "1 would be the floor):",
        "",
        "| entity rows | method | Feast DuckDB / featurelake (target >= 1.5) | Feast Spark / featurelake "
        "(target >= 10) | featurelake / sort floor (target <= 1.25) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for n, per in s.items():
        r = per["ratios"]
        for ours in ("featurelake", "featurelake_asof"):
            lines.append(
                f"| {int(n):,} | {names[ours]} | {r.get(f'feast_duckdb_over_{ours}', '-')} | "
                f"{r.get(f'feast_spark_over_{ours}', '-')} | {r.get(f'{ours}_over_sort_floor', '-')} |"
            )
    lines += ["", "Checks:", ""]
    for n, c in result["checks"].items():
        line = f"- {int(n):,} rows: rows written {c.get('rows')}"
        for ours in ("featurelake", "featurelake_asof"):
            if f"{ours}_equals_feast_duckdb" in c:
                line += f"; {names[ours]} equals Feast DuckDB cell for cell: **{c[f'{ours}_equals_feast_duckdb']}**"
                if c.get(f"{ours}_differing_rows"):
                    line += f" ({c[f'{ours}_differing_rows']} rows differ)"
        if "rows_with_features" in c:
            line += f"; rows with a users / merchants match {c['rows_with_features']}"
        if "feast_spark_rows" in c:
            line += (
                f"; Feast Spark wrote {c['feast_spark_rows']:,} rows ({c['feast_spark_extra_rows']:,} more than the "
                f"entity rows: its duplicates on exact ties), {c['feast_spark_rows_not_in_featurelake']} distinct "
                "rows not in featurelake's output"
            )
        lines.append(line)
    m, v = result["machine"], result["versions"]
    lines += [
        "",
        "Feast Spark runs once per size it runs at (about 190 s at 1M rows on a quiet machine); at larger sizes "
        "it is not run unless `BENCH_PIT_PEERS_SPARK_SIZES` asks. A run whose process tree passes "
        f"{result['rss_cap_gib']} GiB resident (or leaves the machine under 1.5 GiB available) is stopped: the "
        "machine is shared.",
        "",
        f"Machine: {m['cpus']} CPUs, {m['memory_gib']} GiB, {m['platform']}, Python {m['python']}. Spark for "
        f"featurelake, the floor and Feast Spark: {result['spark_conf']}. Versions: featurelake's PySpark "
        f"{v['featurelake_pyspark']}; Feast venv {v['feast_venv']}. Load average at the start "
        f"{result['load_average_start']}, at the end {result['load_average_end']} (each run's is in the JSON); "
        f"data generation {result['data_generation_s']} s. Measured {result['measured_at']}.",
        "",
        f"Command: `{result['command']}`",
    ]
    return "\n".join(lines) + "\n"


# --- child processes -------------------------------------------------------------------------------------------


def child_generate(data: Path, sizes: list[int], views: bool) -> None:
    """The workload as single parquet files: users.parquet, merchants.parquet (``views``), entities_<n>.parquet."""
    from featurelake.config import get_settings
    from featurelake.spark import get_spark

    spark = get_spark(get_settings())
    data.mkdir(parents=True, exist_ok=True)

    def single(df, name: str) -> None:
        tmp = data / f"{name}.tmp"
        df.coalesce(1).write.mode("overwrite").parquet(str(tmp))
        (part,) = tmp.glob("part-*.parquet")
        part.rename(data / f"{name}.parquet")
        shutil.rmtree(tmp)

    if views:
        single(feature_table(spark, 100_000, 30, 86400, "user_id"), "users")
        single(feature_table(spark, 10_000, 120, 6 * 3600, "merchant_id"), "merchants")
    for n in sizes:
        single(generate(spark, n), f"entities_{n}")


def child_spark_engine(engine: str, data: Path, entities: str, out: str) -> None:
    from featurelake.config import get_settings
    from featurelake.offline.pit import ViewInput, point_in_time_join
    from featurelake.spark import get_spark

    spark = get_spark(get_settings())
    t0 = time.perf_counter()
    edf = spark.read.parquet(entities)
    views = {name: spark.read.parquet(str(data / f"{name}.parquet")) for name in VIEWS}
    if engine in ("featurelake", "featurelake_asof"):
        inputs = [
            ViewInput(
                name,
                views[name],
                [key],
                FEATURES,
                "event_timestamp",
                "created_timestamp",
                "event_date",
                dt.timedelta(days=ttl),
            )
            for name, (key, ttl) in VIEWS.items()
        ]
        method = "asof" if engine == "featurelake_asof" else "window"
        point_in_time_join(edf, inputs, full_feature_names=True, method=method).write.mode("overwrite").parquet(out)
    else:
        sort_floor(spark, edf, views, out)
    print("RESULT " + json.dumps({"seconds": round(time.perf_counter() - t0, 2)}), flush=True)


def sort_floor(spark, edf, views: dict, out: str) -> None:
    """Per view: entity rows and feature rows, repartitioned by the key, sorted by (key, time); the entity rows
    written (what a join writes; the feature rows only move). The filter after the sort is not deterministic on
    purpose (``rand() >= 0`` is always true): Spark would push a deterministic one below the shuffle."""
    from pyspark.sql import functions as F

    parts = int(spark.conf.get("spark.sql.shuffle.partitions"))
    for name, (key, _) in VIEWS.items():
        ents = edf.select(key, "event_timestamp", F.struct(*edf.columns).alias("row"))
        feats = views[name].select(key, "event_timestamp", "created_timestamp", *FEATURES)
        rows = ents.unionByName(feats, allowMissingColumns=True)
        sorted_rows = rows.repartition(parts, key).sortWithinPartitions(key, "event_timestamp")
        entity_rows = sorted_rows.where(F.col("row").isNotNull() & (F.rand() >= 0)).select("row.*")
        entity_rows.write.mode("overwrite").parquet(f"{out}/{name}")


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "generate":
        child_generate(Path(sys.argv[2]), [int(s) for s in sys.argv[3].split(",") if s], views=len(sys.argv) == 4)
    else:
        child_spark_engine(mode, Path(sys.argv[2]), sys.argv[3], sys.argv[4])
