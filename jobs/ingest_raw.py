"""spark-submit entry point: land the raw data of the feature repository's ingestions for an interval.

featurelake spark-submit ingest_raw.py -- --start 2013-01-01 --end 2013-01-07 [--validate]

--validate runs the suites of the raw tables they land on the interval afterwards; a strict failure exits non-zero.
"""

from __future__ import annotations

import argparse
import datetime as dt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--end", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--validate", action="store_true", help="check the raw tables landed afterwards")
    args = parser.parse_args(argv)

    from featurelake.config import get_settings
    from featurelake.repo import feature_repo
    from featurelake.runs import Interval
    from featurelake.spark import get_spark

    settings = get_settings()
    spark = get_spark(settings)
    interval = Interval(args.start, args.end)
    repo = feature_repo(settings)
    for ingestion in repo.ingestions.values():
        report = ingestion.function(spark, settings, interval)
        print(f"ingested {interval}: {report.rows}, rejects {report.rejects}")
    if args.validate:
        from featurelake.validation import validate_all

        for result in validate_all(spark, settings, list(repo.raw_tables), interval, repo=repo):
            print(result.headline())


if __name__ == "__main__":
    from featurelake.errors import run_job

    run_job(main)
