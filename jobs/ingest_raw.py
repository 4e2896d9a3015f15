"""spark-submit entry point of `featurelake ingest`: land the raw data of the repository's ingestions for an interval.

featurelake spark-submit ingest_raw.py -- --start 2013-01-01 --end 2013-01-07 [--validate]
"""

from featurelake.cli import run_job

if __name__ == "__main__":
    run_job("ingest")
