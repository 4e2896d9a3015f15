"""spark-submit entry point of `featurelake backfill`: one window or transform view over a range as one Spark job.

featurelake spark-submit backfill.py -- --view carrier_departure_delays --start 2013-01-01 --end 2013-12-31
"""

from featurelake.cli import run_job

if __name__ == "__main__":
    run_job("backfill")
