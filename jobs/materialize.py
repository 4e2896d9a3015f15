"""spark-submit entry point of `featurelake materialize`: feature views into the configured online store.

featurelake spark-submit materialize.py -- --all [--full] [--as-of 2013-01-08T00:00]
"""

from featurelake.cli import run_job

if __name__ == "__main__":
    run_job("materialize")
