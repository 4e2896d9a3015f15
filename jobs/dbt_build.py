"""spark-submit entry point: `dbt build` of one model group for an interval, its dbt views published via their gates.

featurelake spark-submit dbt_build.py -- --select staging --start 2013-01-01 --end 2013-01-07

--select is a folder under dbt_project/models (a model group) or any dbt selector. Exits non-zero when a model
or data test fails (naming it) or a strict dbt-computed feature view fails its validation suite (then it is not
published).
"""

from __future__ import annotations

import argparse
import datetime as dt
import uuid


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--select", required=True, help="a model group (folder under dbt_project/models)")
    parser.add_argument("--start", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--end", type=dt.date.fromisoformat, required=True)
    args = parser.parse_args(argv)

    from featurelake.compute.dbt import model_selector, run_dbt_build
    from featurelake.config import get_settings
    from featurelake.runs import Interval
    from featurelake.spark import get_spark

    settings = get_settings()
    select = model_selector(settings, args.select)
    interval = Interval(args.start, args.end)
    models, checks = run_dbt_build(get_spark(settings), settings, interval, uuid.uuid4().hex, select=select)
    print(f"dbt build --select {select}: {len(models)} models: {', '.join(models) or '-'}")
    for r in checks:
        print(r.headline())


if __name__ == "__main__":
    from featurelake.errors import run_job

    run_job(main)
