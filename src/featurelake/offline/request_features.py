"""Request feature views in a training set: applied to the entity rows after the point-in-time join, through the same
:meth:`RequestFeatureView.compute` the feature server calls, so a training row and a served request with the same
inputs get the same values.

The function runs on the executors (``mapInArrow``): the feature repository's modules are pickled by value, so
workers need not import them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from featurelake.errors import InputError
from featurelake.offline.manifest import RequestViewRef, ViewRef
from featurelake.offline.pit import P, claim_columns, input_column
from featurelake.repo.definitions import RequestFeatureView, ValueType, function_fingerprint, function_ref

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

    from featurelake.repo import Repo
    from featurelake.repo.loader import FeatureReads

_NUMERIC = ("tinyint", "smallint", "int", "bigint", "float", "double")
# the Spark column types a request field of each type accepts (cast to the field's type before the function runs)
ACCEPTED = {
    ValueType.INT32: _NUMERIC[:3],
    ValueType.INT64: _NUMERIC[:4],
    ValueType.FLOAT: _NUMERIC,
    ValueType.DOUBLE: _NUMERIC,
    ValueType.STRING: ("string",),
    ValueType.BOOL: ("boolean",),
    ValueType.TIMESTAMP: ("timestamp",),
    ValueType.DATE: ("date",),
}


def request_view_refs(reads: FeatureReads) -> list[RequestViewRef]:
    """The request feature views a training set applies, as its manifest records them."""
    selected = {s.view: s.features for s in reads.selections}
    out = []
    for rv in reads.request_views:
        out.append(
            RequestViewRef(
                name=rv.name,
                features=list(selected[rv.name]),
                request={k: t.value for k, t in rv.request.items()},
                inputs={s.view: list(s.features) for s in reads.sources[rv.name]},
                function=function_ref(rv.function),
                code=function_fingerprint(rv.function),
            )
        )
    return out


def definitions_for(repo: Repo | None, refs: list[RequestViewRef]) -> dict[str, RequestFeatureView]:
    """The repository's request feature views a manifest names, refused when their function changed since."""
    if not refs:
        return {}
    if repo is None:
        raise InputError("the manifest applies request feature views: give the feature repository that defines them")
    out = {}
    for ref in refs:
        rv = repo.request_views.get(ref.name)
        if rv is None:
            raise InputError(f"request feature view {ref.name!r} of the manifest is not in {repo.root}")
        if (code := function_fingerprint(rv.function)) != ref.code:
            raise InputError(
                f"request feature view {ref.name!r}: its function changed since the manifest was written (code "
                f"{code}, manifest {ref.code}): rebuild from the commit the manifest records"
            )
        out[ref.name] = rv
    return out


def check_request_fields(entity_df: DataFrame, refs: list[RequestViewRef], source: str) -> None:
    """Each request field is an entity column of a type its field accepts, else InputError naming it."""
    cols = {f.name: f.dataType.simpleString() for f in entity_df.schema.fields}
    for ref in refs:
        for name, dtype in ref.request.items():
            if name not in cols:
                raise InputError(f"entity source {source}: no column {name!r}, a request field of {ref.name!r}")
            if cols[name] not in ACCEPTED[ValueType(dtype)]:
                raise InputError(
                    f"entity source {source}: column {name!r} is {cols[name]}, but request field {name!r} of "
                    f"{ref.name!r} is {dtype}"
                )


def output_columns(refs: list[RequestViewRef], taken: dict[str, str], full_feature_names: bool) -> list[RequestViewRef]:
    """The refs with the output column of each feature; InputError on a collision with ``taken`` (lower-case column
    -> its owner)."""
    what = "request feature view {!r}".format
    return [
        ref.model_copy(
            update={"columns": claim_columns(what(ref.name), ref.name, ref.features, taken, full_feature_names)}
        )
        for ref in refs
    ]


def apply_request_views(
    df: DataFrame, views: list[ViewRef], refs: list[RequestViewRef], definitions: dict[str, RequestFeatureView]
) -> DataFrame:
    """``df`` (the point-in-time join's output) with each request feature view's columns appended and the
    input-only columns dropped."""
    from pyspark import cloudpickle
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if not refs:
        return df
    for rv in definitions.values():  # the repository's modules are not importable on the workers
        cloudpickle.register_pickle_by_value(sys.modules[rv.function.__module__.split(".")[0]])
    inputs_only = [input_column(v.name, f) for v in views for f in v.inputs_only]
    columns = {(v.name, f): c for v in views for f, c in v.columns.items()}
    columns |= {(v.name, f): input_column(v.name, f) for v in views for f in v.inputs_only}
    request = {k: t for ref in refs for k, t in ref.request.items()}
    df = df.withColumns({_request_column(k): F.col(k).cast(t) for k, t in request.items()})
    # per request view: (definition, {input name: df column}, [(feature, output column)])
    plans = [
        (
            definitions[ref.name],
            {
                **{k: _request_column(k) for k in ref.request},
                **{f: columns[(v, f)] for v, fs in ref.inputs.items() for f in fs},
            },
            [(f, ref.columns[f]) for f in ref.features],
        )
        for ref in refs
    ]
    types = {(rv.name, f.name): f.dtype for rv in definitions.values() for f in rv.features}
    outputs = [(col, types[(rv.name, f)]) for rv, _, outs in plans for f, col in outs]
    read = list(dict.fromkeys(c for _, cols, _ in plans for c in cols.values()))
    schema = T.StructType([*df.schema.fields, *[T.StructField(c, _spark_type(d)) for c, d in outputs]])

    def compute(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        for batch in batches:
            values: list[list] = [[] for _ in outputs]
            for row in batch.select(read).to_pylist():
                i = 0
                for rv, inputs, outs in plans:
                    result = rv.compute({name: row[col] for name, col in inputs.items()})
                    for feature, _ in outs:
                        values[i].append(result[feature])
                        i += 1
            arrays = [pa.array(v, type=_arrow_type(d)) for v, (_, d) in zip(values, outputs, strict=True)]
            yield pa.RecordBatch.from_arrays(
                [*batch.columns, *arrays], names=[*batch.schema.names, *[c for c, _ in outputs]]
            )

    return df.mapInArrow(compute, schema).drop(*inputs_only, *map(_request_column, request))


def _request_column(field: str) -> str:
    """The column of a request field cast to its declared type (the entity column itself is left as given)."""
    return f"{P}rq_{field}"


def _spark_type(dtype: ValueType) -> Any:
    from pyspark.sql import types as T

    return {
        ValueType.INT32: T.IntegerType(),
        ValueType.INT64: T.LongType(),
        ValueType.FLOAT: T.FloatType(),
        ValueType.DOUBLE: T.DoubleType(),
        ValueType.STRING: T.StringType(),
        ValueType.BOOL: T.BooleanType(),
        ValueType.TIMESTAMP: T.TimestampType(),
        ValueType.DATE: T.DateType(),
    }[dtype]


def _arrow_type(dtype: ValueType) -> pa.DataType:
    import pyarrow as pa

    return {
        ValueType.INT32: pa.int32(),
        ValueType.INT64: pa.int64(),
        ValueType.FLOAT: pa.float32(),
        ValueType.DOUBLE: pa.float64(),
        ValueType.STRING: pa.string(),
        ValueType.BOOL: pa.bool_(),
        ValueType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
        ValueType.DATE: pa.date32(),
    }[dtype]
