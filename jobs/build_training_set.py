"""spark-submit entry point: build a point-in-time correct training set (or rebuild one from its manifest).

featurelake spark-submit build_training_set.py -- --entities training.flight_labels --service flight_delay_model \
    --name flights_jan
featurelake spark-submit build_training_set.py -- --rebuild flights_jan
"""

from __future__ import annotations

import argparse
import datetime as dt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", help="entity rows: a table, a path or a SELECT query")
    parser.add_argument("--name", help="output table training.<name>")
    parser.add_argument("--service")
    parser.add_argument("--features", nargs="*", default=None, help="view:feature or view")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--full-feature-names", action="store_true")
    parser.add_argument("--timestamp-column", default="event_timestamp")
    parser.add_argument("--start", type=dt.date.fromisoformat, help="only entity rows from this UTC date")
    parser.add_argument("--end", type=dt.date.fromisoformat, help="...up to this UTC date, inclusive")
    parser.add_argument("--repo", help="feature repository (default: features/)")
    parser.add_argument("--rebuild", metavar="MANIFEST", help="a manifest file or training set name to rebuild")
    args = parser.parse_args(argv)
    if not args.rebuild and not (args.entities and args.name):
        parser.error("--entities and --name are required (or --rebuild MANIFEST)")

    from featurelake.config import get_settings
    from featurelake.offline.manifest import manifest_file
    from featurelake.offline.training_set import build_training_set, rebuild
    from featurelake.repo import feature_repo, load_repo
    from featurelake.spark import get_spark

    settings = get_settings()
    spark = get_spark(settings)
    if args.rebuild:
        manifest = rebuild(spark, args.rebuild, name=args.name, state_dir=settings.state_path)
    else:
        manifest = build_training_set(
            spark,
            load_repo(args.repo) if args.repo else feature_repo(settings),
            name=args.name,
            entities=args.entities,
            service=args.service,
            features=args.features,
            overwrite=args.overwrite,
            full_feature_names=args.full_feature_names,
            event_timestamp_column=args.timestamp_column,
            start=args.start,
            end=args.end,
            state_dir=settings.state_path,
        )
    print(
        f"wrote {manifest.table} version {manifest.table_version}: {manifest.rows.output} rows; "
        f"manifest {manifest_file(settings.state_path, manifest.name)}"
    )


if __name__ == "__main__":
    from featurelake.errors import run_job

    run_job(main)
