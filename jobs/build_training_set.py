"""spark-submit entry point of `featurelake training-set`: build a training set, or rebuild one from its manifest.

featurelake spark-submit build_training_set.py -- build --entities training.flight_labels \
    --service flight_delay_model --name flights_jan
featurelake spark-submit build_training_set.py -- rebuild --manifest flights_jan
"""

from featurelake.cli import run_job

if __name__ == "__main__":
    run_job("training-set")
