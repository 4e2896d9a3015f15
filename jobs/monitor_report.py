"""spark-submit entry point: the nightly monitoring report (freshness, statistics, drift, validation history).

featurelake spark-submit monitor_report.py -- --as-of 2013-01-08T00:00 [--start 2013-01-07 --end 2013-01-07] [--out DIR]

With an interval, views whose definition sets ``drift.reference_days`` get their drift measured first. Writes
``index.html`` and a page per view, then exits 1 when a strict view is late or failing or a feature drifted.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-of", required=True, help="check time, ISO (naive = UTC): the run's interval end")
    parser.add_argument("--start", default=None, help="first day of the run's interval (drift), YYYY-MM-DD")
    parser.add_argument("--end", default=None, help="last day of the run's interval (drift), YYYY-MM-DD")
    parser.add_argument("--out", default=None, help="report folder (default: monitoring.report_dir)")
    args = parser.parse_args(argv)

    from featurelake.config import get_settings
    from featurelake.errors import InputError
    from featurelake.monitoring.report import nightly_report
    from featurelake.online.materialize import parse_as_of
    from featurelake.repo import feature_repo
    from featurelake.runs import parse_date
    from featurelake.spark import get_spark

    if (args.start is None) != (args.end is None):
        raise InputError("give both --start and --end, or neither")
    interval = (parse_date(args.start), parse_date(args.end)) if args.start and args.end else None
    settings = get_settings()
    as_of = parse_as_of(args.as_of).replace(tzinfo=None)
    folder = Path(settings.path(args.out or settings.monitoring.report_dir))
    result, skipped = nightly_report(get_spark(settings), settings, feature_repo(settings), folder, as_of, interval)
    for s in skipped:
        print(f"drift skipped: {s.view}: {s.reason}")
    print(f"report: {result.index} ({len(result.pages)} views)")
    for breach in result.breaches:
        print(f"breach: {breach}")
    return 1 if result.breaches else 0


if __name__ == "__main__":
    from featurelake.errors import run_job

    run_job(main)
