"""spark-submit entry point: materialize feature views into the configured online store.

featurelake spark-submit materialize.py -- --all [--full] [--as-of 2013-01-08T00:00]
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--view", action="append", help="a feature view (repeatable)")
    group.add_argument("--all", action="store_true", help="every online feature view")
    parser.add_argument("--full", action="store_true", help="read the whole table instead of the change data")
    parser.add_argument("--as-of", default=None, help="materialization time, ISO (naive = UTC); default now")
    parser.add_argument("--repo", default=None, help="feature repository folder (default: features/)")
    args = parser.parse_args(argv)

    from featurelake.config import get_settings
    from featurelake.online.materialize import materialize, parse_as_of
    from featurelake.repo import feature_repo, load_repo
    from featurelake.spark import get_spark

    settings = get_settings()
    repo = load_repo(args.repo) if args.repo else feature_repo(settings)
    views = None if args.all else args.view
    for r in materialize(get_spark(settings), settings, repo, views, as_of=parse_as_of(args.as_of), full=args.full):
        print(f"{r.view}: {r.mode} ({r.reason}) v{r.from_version}->v{r.to_version} "
              f"written {r.written} deleted {r.deleted} unchanged {r.skipped} in {r.seconds:.1f}s")  # fmt: skip


if __name__ == "__main__":
    from featurelake.errors import run_job

    run_job(main)
