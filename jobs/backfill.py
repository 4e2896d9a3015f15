"""spark-submit entry point: backfill one window or transform feature view over a date range as one Spark job.

featurelake spark-submit backfill.py -- --view carrier_departure_delays --start 2013-01-01 --end 2013-12-31
"""

from __future__ import annotations

import argparse
import datetime as dt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--view", required=True)
    parser.add_argument("--start", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--end", type=dt.date.fromisoformat, required=True)
    args = parser.parse_args(argv)

    from featurelake.compute.pipeline import backfill
    from featurelake.config import get_settings
    from featurelake.runs import Interval
    from featurelake.spark import get_spark

    settings = get_settings()
    r = backfill(get_spark(settings), settings, args.view, Interval(args.start, args.end))
    print(r.describe())


if __name__ == "__main__":
    from featurelake.errors import run_job

    run_job(main)
