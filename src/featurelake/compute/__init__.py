"""Feature computation: dbt models (``featurelake.dbt``) and PySpark window aggregations over tiles.

``aggregations`` holds the pure transforms (tiles, roll-ups, the direct baseline), ``windows`` writes one
view's tiles and rows idempotently per interval, ``pipeline`` is the nightly ``compute`` and ``backfill``.
"""
