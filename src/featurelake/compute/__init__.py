"""Feature computation: an engine per view kind, each publishing through ``publish`` (gate -> publish -> stats).

``dbt`` runs dbt in this session, ``aggregations`` holds the pure window transforms (tiles, roll-ups),
``windows`` and ``transforms`` compute one view idempotently per interval, ``publish`` is the step they share,
``pipeline`` is the nightly ``compute`` and ``backfill``.
"""
