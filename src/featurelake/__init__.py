"""featurelake: batch feature engineering on Spark, dbt and Delta Lake (the offline half of a feature store)."""
