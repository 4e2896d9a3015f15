"""spark-submit entry point of `featurelake dbt-build`: one model group for an interval, then its dbt views' checks.

featurelake spark-submit dbt_build.py -- --select staging --start 2013-01-01 --end 2013-01-07
"""

from featurelake.cli import run_job

if __name__ == "__main__":
    run_job("dbt-build")
