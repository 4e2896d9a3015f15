"""S3A against a real S3 server: S3Proxy (featurelake.services.s3) on a free port, a bucket made with boto3, a Delta
table written to s3a:// by the shared session (the S3A settings of ``storage.s3`` applied to its Hadoop configuration
at run time; the key pair through the SDK's default chain: Java system properties), appended twice, read back."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_server_start_is_idempotent_and_names_its_address(s3):
    settings, server = s3
    pid = server.running_pid(settings)
    assert server.start(settings) == (pid, False)
    assert (settings.state_path / "s3.pid").read_text().split() == [str(pid), f"127.0.0.1:{server.port}"]


def test_delta_table_on_s3a(s3a, spark):
    settings, boto, bucket = s3a

    path = f"s3a://{bucket}/features/example"
    batches = [[(i, f"row-{i}", i * 0.5) for i in range(start, start + 5)] for start in (0, 100, 200)]
    for n, rows in enumerate(batches):
        df = spark.createDataFrame(rows, "id long, name string, score double")
        df.write.format("delta").mode("overwrite" if n == 0 else "append").save(path)

    back = sorted(tuple(r) for r in spark.read.format("delta").load(path).collect())
    assert back == sorted(row for rows in batches for row in rows)
    history = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").collect()
    assert sorted((r["version"], r["operation"]) for r in history) == [(0, "WRITE"), (1, "WRITE"), (2, "WRITE")]

    listed = boto.list_objects_v2(Bucket=bucket, Prefix="features/example/_delta_log/")
    commits = sorted(o["Key"].rsplit("/", 1)[1] for o in listed["Contents"] if o["Key"].endswith(".json"))
    assert commits == [f"{v:020d}.json" for v in range(len(batches))]
    # the filesystem backend: the bucket is a folder of services.s3.data_dir
    data_dir = Path(settings.path(settings.services.s3.data_dir))
    assert (data_dir / bucket / "features" / "example" / "_delta_log").is_dir()


def test_ingest_sources_read_from_s3a(s3a, spark):
    from featurelake.errors import InputError
    from features.flights.ingest import SOURCES, read_raw, source_dir
    from tests.support.demo_files import demo_csvs

    settings, boto, bucket = s3a
    texts = demo_csvs()
    for file, text in texts.items():
        boto.put_object(Bucket=bucket, Key=f"raw/{file}", Body=text)
    ingest = settings.ingest.model_copy(update={"source_dir": f"s3a://{bucket}/raw/"})
    uri = source_dir(settings.model_copy(update={"ingest": ingest}))
    assert uri == f"s3a://{bucket}/raw"
    for source in SOURCES:
        df = read_raw(spark, uri, settings.state_path / "no-cache", source)
        rows = list(csv.reader(io.StringIO(texts[source.file].decode())))
        first = source.fields[0].name
        assert rows[0][0].strip('"') == first
        got = sorted(r[0] for r in df.select(first).collect())
        assert got == sorted(None if r[0] == "NA" else r[0] for r in rows[1:]), source.file
        assert {r[0] for r in df.select("_source_file").distinct().collect()} == {f"{uri}/{source.file}"}

    boto.put_object(Bucket=bucket, Key="partial/weather.csv", Body=texts["weather.csv"])
    boto.put_object(Bucket=bucket, Key="partial/flights.csv.zip", Body=b"zip")
    partial = settings.ingest.model_copy(update={"source_dir": f"s3a://{bucket}/partial"})
    missing = ", ".join(s.file for s in SOURCES if s.file != "weather.csv")
    with pytest.raises(InputError) as exc:
        source_dir(settings.model_copy(update={"ingest": partial}))
    assert str(exc.value) == (
        f"ingest.source_dir s3a://{bucket}/partial has no {missing} (flights.csv.zip found: an s3a:// folder needs "
        "them unzipped)"
    )
