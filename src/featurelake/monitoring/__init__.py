"""Feature monitoring: statistics of every written interval, freshness, drift, training-serving skew, reports.

Results are Delta tables in the ``monitoring`` database (``feature_stats``, ``drift``), next to ``runs`` and
``validation_results``; ``featurelake status`` / ``drift`` / ``skew`` / ``report`` read them. Importing this
package is light (no Spark): ``featurelake.monitoring.alerts`` is used by the Airflow DAG files.
"""

FEATURE_STATS_TABLE = "monitoring.feature_stats"
DRIFT_TABLE = "monitoring.drift"
