"""spark-submit entry point of `featurelake check`: a nightly run's closing checks (freshness, online consistency).

featurelake spark-submit check_features.py -- --as-of 2013-01-08T00:00 [--sample 200]
"""

from featurelake.cli import run_job

if __name__ == "__main__":
    run_job("check")
