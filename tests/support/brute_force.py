"""Window features by brute force in pandas: each aggregation of a window view over its source events of the row's
entity in [the row's time - window, the row's time). The reference the views' rows are checked against."""

from __future__ import annotations

import math

import pandas as pd

from featurelake.repo.definitions import FeatureView


def check_window_rows(view: FeatureView, keys: list[str], rows: pd.DataFrame, events: pd.DataFrame) -> int:
    """Assert that each of ``rows`` (the view's offline rows, its entities' join ``keys`` first) has the features
    the brute force over ``events`` (its source's rows) gives; returns how many rows were checked."""
    known_at = view.source.timestamp_column
    events = events.dropna(subset=[known_at]).assign(**{known_at: lambda d: pd.to_datetime(d[known_at])})
    by_entity = dict(tuple(events.groupby(keys)))  # keyed by tuples, one value per join key
    for row in rows.to_dict("records"):
        boundary = pd.Timestamp(row["event_timestamp"])
        key = tuple(row[k] for k in keys)
        mine = by_entity.get(key, events.iloc[:0])
        for agg in view.computation.aggregations:
            for window in agg.windows:
                in_window = mine[(mine[known_at] >= boundary - window) & (mine[known_at] < boundary)]
                feature = agg.feature_name(window)
                values, got = in_window[agg.column].dropna(), row[feature]
                where = (view.name, key, str(boundary), feature)
                if agg.function == "count":
                    assert got == len(values), where
                elif agg.function == "count_distinct":
                    assert got == values.nunique(), where
                elif values.empty:
                    assert got is None or math.isnan(got), where
                else:
                    want = getattr(values, agg.function)()  # mean, max, min, sum: pandas' methods of those names
                    assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), (*where, got, want)
    return len(rows)
