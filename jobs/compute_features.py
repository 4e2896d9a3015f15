"""spark-submit entry point: the nightly feature computation for an interval (dbt build, then window views).

featurelake spark-submit compute_features.py -- --start 2013-01-01 --end 2013-01-07 [--view NAME] [--skip-dbt]
"""

from __future__ import annotations

import argparse
import datetime as dt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--end", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--view", action="append", help="only this window view (repeatable)")
    parser.add_argument("--skip-dbt", action="store_true")
    args = parser.parse_args(argv)

    from featurelake.compute.pipeline import compute
    from featurelake.config import get_settings
    from featurelake.runs import Interval
    from featurelake.spark import get_spark

    settings = get_settings()
    interval = Interval(args.start, args.end)
    report = compute(get_spark(settings), settings, interval, views=args.view, dbt=not args.skip_dbt)
    for r in report.views:
        print(r.describe())
    print(f"run {report.run_id}: dbt models {len(report.dbt_models)}, views {len(report.views)}")


if __name__ == "__main__":
    from featurelake.errors import run_job

    run_job(main)
