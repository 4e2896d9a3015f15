"""spark-submit entry point of `featurelake report`: the nightly monitoring report (HTML; exit 1 on a breach).

featurelake spark-submit monitor_report.py -- --as-of 2013-01-08T00:00 [--start 2013-01-07 --end 2013-01-07] [--out DIR]
"""

from featurelake.cli import run_job

if __name__ == "__main__":
    run_job("report")
