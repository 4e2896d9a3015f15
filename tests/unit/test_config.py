"""Layered configuration: files, environment overrides, and errors that name the key and its origin."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from featurelake.config import load_settings
from featurelake.errors import ConfigError
from tests.conftest import REPO_ROOT


@pytest.fixture
def conf_root(tmp_path: Path) -> Path:
    shutil.copytree(REPO_ROOT / "conf", tmp_path / "conf")
    return tmp_path


def env_for(root: Path, **extra: str) -> dict[str, str]:
    return {"FEATURELAKE_HOME": str(root), **extra}


def test_local_is_the_default_and_layers_over_base(conf_root):
    s = load_settings(environ=env_for(conf_root))
    assert s.env == "local"
    assert s.spark.master == "local[*]"
    assert s.online_store.type == "sqlite"
    assert s.storage.databases == ["raw", "staging", "features", "training", "monitoring"]
    assert s.path(s.storage.warehouse) == str(conf_root / ".state" / "warehouse")


def test_env_file_overrides_base_and_environment_overrides_both(conf_root):
    s = load_settings(
        environ=env_for(
            conf_root,
            FEATURELAKE_ENV="ci",
            FEATURELAKE__SPARK__SHUFFLE_PARTITIONS="3",
            FEATURELAKE__SPARK__CONF__SPARK__EXECUTOR__MEMORY="2g",
            FEATURELAKE__SPARK__CONF__SPARK__driver__defaultJavaOptions="-Xss4m",
        )
    )
    assert s.spark.master == "local[2]"  # from ci.yaml
    assert s.spark.shuffle_partitions == 3  # from the environment, parsed as an int
    assert s.spark.conf == {  # the environment's entries beside ci.yaml's
        "spark.databricks.delta.snapshotPartitions": 1,
        "spark.executor.memory": "2g",
        "spark.driver.defaultJavaOptions": "-Xss4m",
    }


def test_prod_example_validates(conf_root):
    s = load_settings("prod.example", environ=env_for(conf_root))
    assert s.storage.warehouse.startswith("s3a://")
    assert s.path(s.storage.warehouse) == s.storage.warehouse  # URIs are kept as they are
    assert s.online_store.type == "redis"


def test_unknown_key_names_the_key_and_the_file(conf_root):
    (conf_root / "conf" / "local.yaml").write_text("spark:\n  mastr: local[2]\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(environ=env_for(conf_root))
    assert "conf/local.yaml: spark.mastr: unknown setting" in str(exc.value)


def test_wrong_type_names_the_key_and_the_file(conf_root):
    (conf_root / "conf" / "ci.yaml").write_text("spark:\n  shuffle_partitions: eight\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(environ=env_for(conf_root, FEATURELAKE_ENV="ci"))
    assert "conf/ci.yaml: spark.shuffle_partitions" in str(exc.value)
    assert "'eight'" in str(exc.value)


def test_wrong_value_from_the_environment_names_the_variable(conf_root):
    with pytest.raises(ConfigError) as exc:
        load_settings(environ=env_for(conf_root, FEATURELAKE__ONLINE_STORE__TYPE="memcached"))
    assert "environment variable FEATURELAKE__ONLINE_STORE__TYPE: online_store.type" in str(exc.value)


def test_unknown_environment_is_refused(conf_root):
    known = r"known: ci, cluster, local, prod.example"
    with pytest.raises(ConfigError, match=rf"unknown FEATURELAKE_ENV='staging'.*{known}"):
        load_settings(environ=env_for(conf_root, FEATURELAKE_ENV="staging"))


def test_malformed_yaml_names_the_file(conf_root):
    (conf_root / "conf" / "local.yaml").write_text("spark: [unclosed\n")
    with pytest.raises(ConfigError, match="local.yaml: not valid YAML"):
        load_settings(environ=env_for(conf_root))


def test_no_secrets_in_conf():
    for path in (REPO_ROOT / "conf").glob("*.yaml"):
        text = path.read_text().lower()
        for word in ("password:", "secret:", "aws_secret_access_key", "token:"):
            assert word not in text, f"{path.name} holds a secret-like key {word!r}"


def test_metastore_kind_needs_its_address_and_database_names_are_checked(conf_root):
    s = load_settings(environ=env_for(conf_root))
    assert s.storage.metastore.kind == "postgres"  # the local default: the shared PostgreSQL server
    with pytest.raises(ConfigError, match="storage.metastore: Value error, kind jdbc needs url"):
        load_settings(environ=env_for(conf_root, FEATURELAKE__STORAGE__METASTORE__KIND="jdbc"))
    with pytest.raises(ConfigError, match="storage.metastore.database: Value error, a PostgreSQL database name"):
        load_settings(environ=env_for(conf_root, FEATURELAKE__STORAGE__METASTORE__DATABASE="x; drop"))


def test_redis_cluster_startup_nodes_default_to_host_and_port_and_are_checked(conf_root):
    from featurelake.online.store import StoreConfig

    cluster = {"FEATURELAKE__ONLINE_STORE__TYPE": "redis", "FEATURELAKE__ONLINE_STORE__REDIS_CLUSTER": "true"}
    s = load_settings(environ=env_for(conf_root, **cluster, FEATURELAKE__ONLINE_STORE__REDIS_PORT="7000"))
    assert StoreConfig.from_settings(s).redis_cluster_nodes == ("127.0.0.1:7000",)
    nodes = "[a.internal:7000, 'b.internal:7001']"
    s = load_settings(environ=env_for(conf_root, **cluster, FEATURELAKE__ONLINE_STORE__REDIS_CLUSTER_NODES=nodes))
    config = StoreConfig.from_settings(s)
    assert config.identity == "redis-cluster://a.internal:7000,b.internal:7001"
    standalone = load_settings(environ=env_for(conf_root, FEATURELAKE__ONLINE_STORE__TYPE="redis"))
    assert StoreConfig.from_settings(standalone).redis_cluster_nodes == ()
    with pytest.raises(ConfigError, match="redis_cluster_nodes: Value error, 'a.internal' is not host:port"):
        load_settings(
            environ=env_for(conf_root, **cluster, FEATURELAKE__ONLINE_STORE__REDIS_CLUSTER_NODES="[a.internal]")
        )
    with pytest.raises(ConfigError, match="redis_db must be 0 with redis_cluster"):
        load_settings(environ=env_for(conf_root, **cluster, FEATURELAKE__ONLINE_STORE__REDIS_DB="1"))


def test_s3_settings_check_the_endpoint_and_the_credentials_provider(conf_root):
    s = load_settings("prod.example", environ=env_for(conf_root))
    assert s.storage.s3.credentials_provider.startswith("software.amazon.awssdk.")
    assert "spark.hadoop.fs.s3a.aws.credentials.provider" not in s.spark.conf
    assert s.storage.s3.commit_coordination == "conditional"
    assert not any(k.startswith("spark.delta.logStore") for k in s.spark.conf)  # storage.s3 says it
    with pytest.raises(ConfigError, match="storage.s3.commit_coordination: Input should be 'conditional' or 'none'"):
        load_settings(environ=env_for(conf_root, FEATURELAKE__STORAGE__S3__COMMIT_COORDINATION="dynamodb"))
    with pytest.raises(ConfigError, match="storage.s3.endpoint: Value error, an http:// or https:// URL"):
        load_settings(environ=env_for(conf_root, FEATURELAKE__STORAGE__S3__ENDPOINT="127.0.0.1:9000"))
    with pytest.raises(ConfigError, match="storage.s3.credentials_provider: Value error, .* no SDK v1"):
        load_settings(
            environ=env_for(
                conf_root,
                FEATURELAKE__STORAGE__S3__CREDENTIALS_PROVIDER="com.amazonaws.auth.DefaultAWSCredentialsProviderChain",
            )
        )
