"""S3A against a real S3 server: S3Proxy (featurelake.services.s3) on a free port, a bucket made with boto3, a Delta
table written to s3a:// by the shared session (the S3A settings of ``storage.s3`` applied to its Hadoop configuration
at run time; the key pair through the SDK's default chain: Java system properties), appended twice, read back."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.conftest import isolated_env
from tests.support.servers import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """The S3 server of a throwaway state folder on a free port, with its settings; stopped by its pid."""
    from featurelake.config import load_settings
    from featurelake.services.s3 import s3_server

    state = tmp_path_factory.mktemp("s3-state")
    port = free_port()
    settings = load_settings(
        environ=isolated_env(
            state,
            FEATURELAKE__SERVICES__S3__PORT=str(port),
            FEATURELAKE__STORAGE__S3__ENDPOINT=f"http://127.0.0.1:{port}",
            FEATURELAKE__STORAGE__S3__PATH_STYLE_ACCESS="true",
        )
    )
    server = s3_server(settings)
    pid, started = server.start(settings)
    assert started and server.is_up(settings)
    yield settings, server
    assert server.stop(settings) == pid
    assert server.running_pid(settings) is None
    assert not server.is_up(settings)


def test_server_start_is_idempotent_and_names_its_address(s3):
    settings, server = s3
    pid = server.running_pid(settings)
    assert server.start(settings) == (pid, False)
    assert (settings.state_path / "s3.pid").read_text().split() == [str(pid), f"127.0.0.1:{server.port}"]


def test_delta_table_on_s3a(s3, spark, monkeypatch):
    from featurelake.services.s3 import client, credentials, credentials_env
    from featurelake.spark import s3a_conf

    settings, _ = s3
    for name, value in credentials_env(settings).items():
        monkeypatch.setenv(name, value)
    boto = client(settings)
    bucket = f"featurelake-test-{uuid.uuid4().hex[:8]}"
    boto.create_bucket(Bucket=bucket)

    jvm = spark.sparkContext._jvm
    access_key, secret_key = credentials(settings)
    jvm.java.lang.System.setProperty("aws.accessKeyId", access_key)
    jvm.java.lang.System.setProperty("aws.secretAccessKey", secret_key)
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in s3a_conf(settings).items():
        hadoop.set(key, value)

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
