"""spark-submit entry point of `featurelake compute`: the nightly feature computation for an interval.

featurelake spark-submit compute_features.py -- --start 2013-01-01 --end 2013-01-07 [--view NAME] [--skip-dbt]
"""

from featurelake.cli import run_job

if __name__ == "__main__":
    run_job("compute")
