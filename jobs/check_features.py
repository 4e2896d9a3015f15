"""spark-submit entry point: the closing checks of a nightly run (online consistency, freshness).

featurelake spark-submit check_features.py -- --as-of 2013-01-08T00:00 [--sample 200]

Exits non-zero naming every late view and every online view whose sampled values differ from the offline ones.
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-of", required=True, help="check time, ISO (naive = UTC): the run's interval end")
    parser.add_argument("--sample", type=int, default=None, help="keys per online view (default: conf)")
    args = parser.parse_args(argv)

    from featurelake.config import get_settings
    from featurelake.monitoring.checks import pipeline_checks
    from featurelake.online.materialize import parse_as_of
    from featurelake.repo import feature_repo
    from featurelake.spark import get_spark

    settings = get_settings()
    sample = args.sample or settings.orchestration.online_check_sample
    as_of = parse_as_of(args.as_of).replace(tzinfo=None)
    fresh, online = pipeline_checks(get_spark(settings), settings, feature_repo(settings), as_of, sample=sample)
    for f in fresh:
        print(f.describe())
    for c in online:
        print(f"{c.view}: {c.sampled} keys sampled from {c.table}@v{c.version}: {c.mismatches} mismatches")


if __name__ == "__main__":
    from featurelake.errors import run_job

    run_job(main)
