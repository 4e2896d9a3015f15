"""The point-in-time join's vectorised path (``method="asof"``): per view, the entity rows and the view's rows are
cogrouped by a hash of the join keys, and each group goes, as two Arrow tables, to pandas' ``merge_asof``
(backward, by the keys, ``tolerance`` = the ttl, feature rows sorted by (time, created) so the last of equal
times wins). Same contract as :mod:`featurelake.offline.pit`; one Python call per group, no window function.

A group holds all the rows of its keys: a key with very many rows is one task's work (the window path spreads
it over time buckets).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurelake.offline.pit import P, ViewInput, created_micros, matchable_rows, micros

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from pyspark.sql import DataFrame

GROUPS_PER_PARTITION = 16  # hash groups per shuffle partition: even tasks, small Arrow tables per call


def join_view(
    spine: DataFrame, v: ViewInput, out_names: dict[str, str], ts_col: str, span: tuple[int, int] | None
) -> DataFrame:
    """``spine`` with ``v``'s features (``out_names``: feature -> output column) as of ``ts_col``."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    key_types = {f.name: f.dataType for f in spine.schema.fields}
    kcols = [f"{P}k{i}" for i in range(len(v.join_keys))]
    ts, cr, group = f"{P}ts", f"{P}cr", f"{P}g"
    parts = int(spine.sparkSession.conf.get("spark.sql.shuffle.partitions") or 8)
    n_groups = parts * GROUPS_PER_PARTITION

    features = matchable_rows(v, span).select(
        *[F.col(k).cast(key_types[k]).alias(c) for k, c in zip(v.join_keys, kcols, strict=True)],
        F.unix_micros(F.col(v.timestamp_field)).alias(ts),
        created_micros(v).alias(cr),
        *[F.col(f).alias(out) for f, out in out_names.items()],
    )
    features = features.withColumn(group, F.pmod(F.xxhash64(*kcols), F.lit(n_groups)))
    entities = spine.select(
        *spine.columns,
        F.unix_micros(F.col(ts_col)).alias(ts),
        F.pmod(F.xxhash64(*v.join_keys), F.lit(n_groups)).alias(group),
    )
    out_fields = [features.schema[out] for out in out_names.values()]
    schema = T.StructType([*spine.schema.fields, *out_fields])
    keys, outs = list(v.join_keys), list(out_names.values())
    passed = list(spine.columns)  # the closure below must not hold the DataFrame (it is pickled for the workers)
    names = [*passed, *outs]
    ttl_us = None if v.ttl is None else micros(v.ttl)

    def merge(left: pa.Table, right: pa.Table) -> pa.Table:
        import pyarrow as pa

        idx = _match(left, right, keys, kcols, ts, cr, ttl_us)
        take = pa.array(idx, mask=idx < 0)
        feats = [
            right.column(o).take(take) if right.num_rows else pa.nulls(left.num_rows, right.column(o).type)
            for o in outs
        ]
        return pa.Table.from_arrays([_utc(c) for c in (*[left.column(c) for c in passed], *feats)], names=names)

    return entities.groupBy(group).cogroup(features.groupBy(group)).applyInArrow(merge, schema)


def _match(
    left: pa.Table, right: pa.Table, keys: list[str], kcols: list[str], ts: str, cr: str, ttl_us: int | None
) -> np.ndarray:
    """Per left row, the index of its matching right row, or -1."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    nl, nr = left.num_rows, right.num_rows
    if nl == 0 or nr == 0:
        return np.full(nl, -1, dtype=np.int64)
    null_key = np.zeros(nl, dtype=bool)
    codes = np.zeros(nl + nr, dtype=np.int64)  # one integer per key tuple, over both sides
    for k, kc in zip(keys, kcols, strict=True):
        lk, rk = left.column(k), right.column(kc)
        null_key |= pc.is_null(lk).to_numpy(zero_copy_only=False)
        enc = pc.dictionary_encode(pa.chunked_array([*lk.chunks, *rk.chunks], type=rk.type).combine_chunks())
        ind = pc.fill_null(enc.indices.cast(pa.int64()), 0).to_numpy()  # a null key: its left rows are dropped
        codes = np.unique(codes * (len(enc.dictionary) + 1) + ind, return_inverse=True)[1].astype(np.int64)
    lt = pd.DataFrame({"t": left.column(ts).to_numpy(), "c": codes[:nl], "i": np.arange(nl)})
    rt = pd.DataFrame(
        {"t": right.column(ts).to_numpy(), "cr": right.column(cr).to_numpy(), "c": codes[nl:], "j": np.arange(nr)}
    )
    lt = lt.sort_values("t", kind="stable")
    rt = rt.sort_values(["t", "cr"], kind="stable")[["t", "c", "j"]]
    m = pd.merge_asof(lt, rt, on="t", by="c", direction="backward", allow_exact_matches=True, tolerance=ttl_us)
    idx = np.full(nl, -1, dtype=np.int64)
    idx[m["i"].to_numpy()] = m["j"].fillna(-1).to_numpy().astype(np.int64)
    idx[null_key] = -1
    return idx


def _utc(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Timestamps arrive in the session's zone and must go back in UTC (same instants)."""
    import pyarrow as pa

    if pa.types.is_timestamp(col.type) and col.type.tz:
        return col.cast(pa.timestamp(col.type.unit, "UTC"))
    return col
