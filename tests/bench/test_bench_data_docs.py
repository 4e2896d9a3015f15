"""Benchmark: a gate's Data Docs step (GE's build for one new validation result) as nightly results pile up in GE's
store: 1 week, 1 year and 4 years of nights of TARGETS suites (the demo's nightly gates 6 views and 2 raw tables),
GE's default (every result kept) against featurelake's (``validation.gx_results_kept`` per suite, the older ones
removed before the build: ``gate.prune_results``). GE's Data Docs index reads every stored result on each build.

The store is synthesized: each suite (EXPECTATIONS expectations on a small pandas frame, about a demo suite's
size) validated once, its result file copied to one per night. Per size and variant: a fresh copy of the store,
then REPS nights, the variants in turn; a night stores one new result per suite and times the step of each
(featurelake: prune, then build): the night's seconds are their sum. featurelake's first night removes the older
results once: it is reported apart and left out of the median.
Results: bench/results/data_docs.{json,md}.

    .venv/bin/python -m pytest -m bench -s tests/bench/test_bench_data_docs.py
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
import time
from pathlib import Path

import pytest

from tests.bench.test_bench_online import machine

pytestmark = pytest.mark.bench

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
COMMAND = ".venv/bin/python -m pytest -m bench -s tests/bench/test_bench_data_docs.py"
TARGETS = 8
EXPECTATIONS = 16
NIGHTS = {"1 week": 7, "1 year": 365, "4 years": 1461}
REPS = 3
KEPT = 30  # conf/base.yaml's validation.gx_results_kept
FIRST_NIGHT = dt.datetime(2010, 1, 1, tzinfo=dt.UTC)
RUN_TIME = "%Y%m%dT%H%M%S.%fZ"  # GE's folder name of a run time


def template(root: Path) -> Path:
    """A GE file context with TARGETS suites, each validated once (its result: the first night)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    import pandas as pd
    from great_expectations.core.run_identifier import RunIdentifier

    context = gx.get_context(mode="file", project_root_dir=str(root))
    batch = context.data_sources.add_pandas("p").add_dataframe_asset("a").add_batch_definition_whole_dataframe("all")
    frame = pd.DataFrame({f"c{i}": range(100) for i in range(4)})
    for t in range(TARGETS):
        checks = []
        for i in range(EXPECTATIONS // 4):
            checks += [
                gxe.ExpectColumnValuesToNotBeNull(column=f"c{i}"),
                gxe.ExpectColumnValuesToBeBetween(column=f"c{i}", min_value=0, max_value=1000),
                gxe.ExpectColumnMeanToBeBetween(column=f"c{i}", min_value=0, max_value=1000),
                gxe.ExpectColumnValuesToBeUnique(column=f"c{i}"),
            ]
        suite = context.suites.add(gx.ExpectationSuite(f"target{t}", checks))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=suite.name, data=batch, suite=suite)
        )
        definition.run(batch_parameters={"dataframe": frame}, run_id=RunIdentifier("night0", FIRST_NIGHT))
    return root / "gx"


def add_night(validations: Path, firsts: list[Path], night: int) -> list[str]:
    """Store a copy of each suite's first result (``firsts``, kept outside the store) as its result of ``night``;
    return the suites."""
    suites = []
    for first in firsts:
        suite = first.parts[-4]
        folder = validations / suite / f"night{night}" / (FIRST_NIGHT + dt.timedelta(days=night)).strftime(RUN_TIME)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(first, folder / first.name)
        suites.append(suite)
    return suites


def docs_step(context, suite: str, night: int, prune: bool) -> float:
    """A gate's Data Docs step for ``suite``'s result of ``night`` (already stored): seconds."""
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    from featurelake.validation.gate import prune_results

    started = time.perf_counter()
    key = next(
        k
        for k in context.validation_results_store.list_keys()
        if k.expectation_suite_identifier.name == suite and k.run_id.run_name == f"night{night}"
    )
    if prune:
        prune_results(context, suite, KEPT)
    context.build_data_docs(resource_identifiers=[key, ExpectationSuiteIdentifier(name=suite)])
    return time.perf_counter() - started


def test_bench_data_docs(tmp_path):
    import great_expectations as gx

    info = {"command": COMMAND, "machine": machine(), "targets": TARGETS, "kept": KEPT, "sizes": {}}
    base = template(tmp_path / "template")
    firsts = sorted((base / "uncommitted" / "validations").glob("*/night0/*/*.json"))
    assert len(firsts) == TARGETS
    for label, nights in NIGHTS.items():
        stores = {}
        for variant in ("unbounded", "featurelake"):
            root = tmp_path / f"{nights}_{variant}"
            shutil.copytree(base.parent, root)
            for night in range(1, nights):
                add_night(root / "gx" / "uncommitted" / "validations", firsts, night)
            stores[variant] = (root, gx.get_context(mode="file", project_root_dir=str(root)), [])
        for rep in range(REPS + 1):  # rep 0: featurelake's first night prunes the older results once
            order = list(stores) if rep % 2 == 0 else list(stores)[::-1]
            for variant in order:
                root, context, times = stores[variant]
                night = nights + rep
                suites = add_night(root / "gx" / "uncommitted" / "validations", firsts, night)
                steps = [docs_step(context, suite, night, prune=variant == "featurelake") for suite in suites]
                times.append(round(sum(steps), 2))
        stored = {
            v: len(list((r / "gx" / "uncommitted" / "validations").rglob("*.json"))) for v, (r, _, _) in stores.items()
        }
        info["sizes"][label] = {
            "nights": nights,
            "results_stored_at_start": nights * TARGETS,
            "results_stored_at_end": stored,
            "seconds": {v: t for v, (_, _, t) in stores.items()},
            "median_s": {v: statistics.median(t[1:]) for v, (_, _, t) in stores.items()},
            "featurelake_first_night_s": stores["featurelake"][2][0],
        }
        print(label, info["sizes"][label], flush=True)
    info["load_avg_at_end"] = list(os.getloadavg())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "data_docs.json").write_text(json.dumps(info, indent=2) + "\n")
    lines = [
        f"# A gate's Data Docs step as nightly results pile up ({TARGETS} suites of {EXPECTATIONS} expectations)",
        "",
        f"Command: `{COMMAND}`  ",
        f"Machine: {info['machine']}; load average at the end {info['load_avg_at_end']}",
        "",
        f"Seconds a night spends in the Data Docs step of its {TARGETS} gates (a new result per suite stored, then the "
        f"step of each), median of {REPS} nights, the variants in turn; featurelake keeps {KEPT} results per suite "
        "(`validation.gx_results_kept`), its first night (which prunes the older results once) apart.",
        "",
        "| history | results stored | GE default (all kept) | featurelake | featurelake's first night |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, size in info["sizes"].items():
        median = size["median_s"]
        lines.append(
            f"| {label} | {size['results_stored_at_start']:,} | {median['unbounded']:.2f} | "
            f"{median['featurelake']:.2f} | {size['featurelake_first_night_s']:.2f} |"
        )
    (RESULTS / "data_docs.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    four_years = info["sizes"]["4 years"]["median_s"]
    assert four_years["featurelake"] < four_years["unbounded"], info["sizes"]
