"""Layered settings: conf/base.yaml, then conf/<FEATURELAKE_ENV>.yaml, then environment variables; and the
duration spelling settings and feature definitions share (``"90m"``, ``"7d"``).

Environment variables named ``FEATURELAKE__SECTION__KEY`` override a setting (values are parsed as
YAML, so ``8`` is an int). Every value is validated by the pydantic schema below; an unknown key or a
wrong type stops the run with a message naming the key and the file (or variable) it came from.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from featurelake.errors import ConfigError

ENV_VAR = "FEATURELAKE_ENV"
HOME_VAR = "FEATURELAKE_HOME"
OVERRIDE_PREFIX = "FEATURELAKE__"
DEFAULT_ENV = "local"
DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(value: Any) -> dt.timedelta | None:
    """``"7d"``, ``"90m"``, ``"1h"``, a number of seconds or a timedelta -> timedelta."""
    if value is None or isinstance(value, dt.timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.timedelta(seconds=value)
    if isinstance(value, str) and (m := DURATION.match(value)):
        return dt.timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    raise ValueError(f"{value!r} is not a duration (use e.g. '90m', '1h', '7d')")


def format_duration(value: dt.timedelta | None) -> str | None:
    """The shortest exact ``<n><unit>`` spelling of a duration (``7d``, ``90m``), used in feature names."""
    if value is None:
        return None
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds % size == 0 and unit != "w":
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SparkSettings(_Section):
    app_name: str = "featurelake"
    master: str = "local[*]"
    jars_dir: str = ".state/jars"
    class_archive: str | None = ".state/jars/spark-classes.jsa"  # featurelake.class_archive; none: no archive
    shuffle_partitions: int = Field(8, ge=1)
    codegen: bool = True  # false: Spark evaluates expressions interpreted (featurelake.spark.INTERPRETED)
    ui: bool = False  # the Spark UI and an event log under <state_dir>/spark-events (`featurelake --spark-ui`)
    conf: dict[str, str | int | float | bool] = Field(default_factory=dict)


PG_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _pg_name(kind: str) -> AfterValidator:
    """A validator of a PostgreSQL ``kind`` name (database, role) that reaches SQL unquoted."""

    def check(v: str) -> str:
        if not PG_IDENTIFIER.match(v):
            raise ValueError(f"a PostgreSQL {kind} name: lower-case letters, digits and _, at most 63")
        return v

    return AfterValidator(check)


class MetastoreSettings(_Section):
    """Where the Hive metastore (the catalog of databases and tables) lives.

    ``postgres``: a database on the PostgreSQL server this repository runs (``services.postgres``), shared by
    every Spark driver on the machine. ``jdbc``: any database Hive supports, by JDBC ``url`` and ``user`` (the
    password only from $FEATURELAKE_METASTORE_PASSWORD). ``thrift``: a Hive metastore service at ``uri``.
    ``derby``: embedded Derby in ``derby_dir``, one driver at a time (``featurelake metastore migrate`` reads it).
    """

    kind: Literal["postgres", "jdbc", "thrift", "derby"] = "postgres"
    database: Annotated[str, _pg_name("database")] = "featurelake_metastore"
    url: str | None = None
    driver: str = "org.postgresql.Driver"
    user: str | None = None
    uri: str | None = None
    derby_dir: str = ".state/metastore_db"
    # JDBC connections each Spark driver's metastore client keeps open (per pool).
    pool_size: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _kind_complete(self) -> MetastoreSettings:
        if self.kind == "jdbc" and not (self.url and self.url.startswith("jdbc:")):
            raise ValueError("kind jdbc needs url (jdbc:<database>://host:port/name)")
        if self.kind == "thrift" and not (self.uri and self.uri.startswith("thrift://")):
            raise ValueError("kind thrift needs uri (thrift://host:port)")
        return self


JAVA_CLASS = re.compile(r"^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)+$")


class S3Settings(_Section):
    """How Spark's S3A filesystem reaches object storage (``s3a://`` paths), as ``spark.hadoop.fs.s3a.*``.

    ``endpoint``: an S3-compatible server's URL (the local one: ``http://127.0.0.1:<services.s3.port>``); unset:
    AWS's endpoint of ``region``. Credentials are never settings: ``credentials_provider`` (an AWS SDK v2 class, the
    default chain: Java system properties, $AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY, web identity, profile,
    container and instance roles) finds them.

    ``commit_coordination``: how Delta commits to a table on S3 stay atomic. ``conditional``: each commit file is
    created by a conditional write (PUT If-None-Match: *), so any number of drivers may commit at once (AWS S3 and the
    local S3 server support it); ``none``: Delta's S3SingleDriverLogStore, safe only while one driver writes a table.
    """

    endpoint: str | None = None
    region: str = "us-east-1"
    path_style_access: bool = False
    credentials_provider: str = "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider"
    commit_coordination: Literal["conditional", "none"] = "conditional"

    @field_validator("endpoint")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[\w.-]+(:\d+)?/?$", v):
            raise ValueError("an http:// or https:// URL of host[:port], e.g. http://127.0.0.1:9000")
        return v

    @field_validator("credentials_provider")
    @classmethod
    def _class_name(cls, v: str) -> str:
        if not JAVA_CLASS.match(v) or v.startswith("com.amazonaws."):
            raise ValueError(
                "a Java class name of an AWS SDK v2 credentials provider (hadoop-aws 3.5 has no SDK v1 com.amazonaws.*)"
            )
        return v


class StorageSettings(_Section):
    warehouse: str = ".state/warehouse"
    # Files tasks write besides tables (Data Docs, manifests' JSON, reports, the catalog): a local folder or
    # s3a://bucket[/prefix]; unset: the state folder, or `artifacts` beside an s3a:// warehouse (featurelake.artifacts).
    artifacts: str | None = None
    s3: S3Settings = S3Settings()
    metastore: MetastoreSettings = MetastoreSettings()
    databases: list[str] = Field(default_factory=lambda: ["raw", "staging", "features", "training", "monitoring"])
    log_retention: str = "interval 90 days"
    deleted_file_retention: str = "interval 30 days"

    @field_validator("artifacts")
    @classmethod
    def _folder_or_s3a(cls, v: str | None) -> str | None:
        if v is not None and "://" in v and not re.match(r"^s3a://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$", v):
            raise ValueError("a local folder or an s3a://bucket[/prefix] URL")
        return v


class OnlineStoreSettings(_Section):
    type: Literal["sqlite", "redis", "dynamodb"] = "sqlite"
    sqlite_path: str = ".state/online/online.db"
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_db: int = 0
    redis_username: str | None = None  # an ACL user; its password only from $FEATURELAKE_REDIS_PASSWORD
    redis_cluster: bool = False  # a Redis Cluster: its startup nodes are redis_cluster_nodes
    redis_cluster_nodes: list[str] = Field(default_factory=list)  # "host:port"; empty: redis_host:redis_port
    dynamodb_region: str = "us-east-1"
    dynamodb_endpoint_url: str | None = None
    dynamodb_table_prefix: str = "featurelake"
    write_batch_size: int = Field(500, ge=1)  # records per store round trip when materializing

    @field_validator("redis_cluster_nodes")
    @classmethod
    def _host_ports(cls, v: list[str]) -> list[str]:
        for node in v:
            host, _, port = node.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{node!r} is not host:port")
        return v

    @model_validator(mode="after")
    def _cluster_database(self) -> OnlineStoreSettings:
        if self.redis_cluster and self.redis_db != 0:
            raise ValueError("redis_db must be 0 with redis_cluster (a Redis Cluster has only database 0)")
        return self


class OnlineSettings(_Section):
    """The feature server's request limits (``featurelake serve online``)."""

    max_entities: int = Field(1000, ge=1)  # entity rows per get-online-features request


class StreamingSettings(_Section):
    """Streaming window views (``featurelake stream run``): the Kafka brokers (None: the local one,
    ``services.kafka``), the micro-batch trigger, a cap on the events one micro-batch takes (None: all), and how
    often a batch merges the tiles and rows of the batches since the last merge into the views' Delta tables
    (seconds; 0: every batch; the online store is written every batch)."""

    bootstrap_servers: str | None = None
    trigger_s: float = Field(1.0, gt=0)
    max_events_per_batch: int | None = Field(None, ge=1)
    tables_every_s: float = Field(300.0, ge=0)


class IngestSettings(_Section):
    source_dir: str | None = None
    timezone: str = "America/New_York"
    demo_start: dt.date = dt.date(2013, 1, 1)
    demo_end: dt.date = dt.date(2013, 1, 7)


class ValidationSettings(_Section):
    """Validation gate thresholds that differ by environment (suites themselves live in expectations/)."""

    expectations_dir: str = "expectations"
    # A batch needs at least this share of the previous good run's rows per day its rows cover.
    min_row_ratio: float = Field(0.5, ge=0, le=1)
    # Floor when there is no previous run: an empty day fails.
    min_rows_per_day: int = Field(1, ge=0)
    # Extra lateness allowed on top of a view's expected_freshness (default: its batch_schedule), e.g. "2h".
    freshness_slack: str = "0h"
    # Policy of the raw-table suites (the ingestions' RawTables); feature views set theirs in the definition.
    raw_policy: Literal["strict", "warn"] = "strict"
    sample_rows: int = Field(5, ge=0, le=100)
    data_docs: bool = True
    # Newest validation results (and Data Docs pages) GE keeps per suite; every outcome stays in Delta.
    gx_results_kept: int = Field(30, ge=1)

    @field_validator("freshness_slack")
    @classmethod
    def _duration(cls, v: str) -> str:
        parse_duration(v)
        return v


class ComputeSettings(_Section):
    """How ``featurelake compute`` runs the views of one interval."""

    # Views computed at once, each from its own driver thread (Spark runs their jobs side by side). A one-day
    # run of a view is mostly fixed latency (Delta commits, the gate); other views' jobs fill it. 1: in turn.
    parallel_views: int = Field(2, ge=1)


class OrchestrationSettings(_Section):
    """How the Airflow DAGs in dags/ run: ownership, schedule, retries, timeouts, concurrency, checks."""

    owner: str = "featurelake"
    # Cron in UTC; each nightly run covers its data interval's flight dates.
    schedule: str = "0 0 * * *"
    start_date: dt.date = dt.date(2013, 1, 1)
    retries: int = Field(2, ge=0)
    retry_delay: str = "1m"  # doubled per retry (exponential backoff) up to max_retry_delay
    max_retry_delay: str = "30m"
    task_timeout: str = "2h"
    # One Airflow task (one Spark application) per window/transform view, or one for all of them. Per view runs
    # views side by side, shows and retries each on its own; each task pays a JVM start.
    task_per_view: bool = True
    # dbt model folders (dbt_project/models/<group>), built in this order, one Airflow task each.
    dbt_model_groups: list[str] = Field(default_factory=lambda: ["staging", "features"])
    # Entity keys sampled per online view by the nightly consistency check (mismatch rate must be 0).
    online_check_sample: int = Field(200, ge=1)

    @field_validator("retry_delay", "max_retry_delay", "task_timeout")
    @classmethod
    def _duration(cls, v: str) -> str:
        parse_duration(v)
        return v


class MonitoringSettings(_Section):
    """Feature monitoring: statistics on every write, drift, training-serving skew, reports."""

    # Statistics stored in monitoring.feature_stats for every written interval of a feature table.
    histogram_bins: int = Field(20, ge=2, le=1000)
    quantiles: list[float] = Field(default_factory=lambda: [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99])
    # Drift: PSI bins (from the reference's quantiles) and the rows per side the KS test samples.
    drift_bins: int = Field(10, ge=2, le=100)
    drift_sample_rows: int = Field(20000, ge=10)
    # Training rows compared per `featurelake skew` run, and the mismatch rate above which it fails.
    skew_sample: int = Field(1000, ge=1)
    skew_max_rate: float = Field(0.0, ge=0, le=1)
    # Where the nightly report is written (a local folder or s3a:// URL; unset: <artifacts>/reports), and how many
    # intervals / validation runs a page shows.
    report_dir: str | None = None
    report_intervals: int = Field(60, ge=1)
    report_validation_runs: int = Field(30, ge=1)
    # Seconds an alert webhook POST may take (the URL comes from $FEATURELAKE_ALERT_WEBHOOK).
    alert_timeout_s: float = Field(10.0, gt=0)

    @field_validator("quantiles")
    @classmethod
    def _probabilities(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < q < 1 for q in v) or sorted(set(v)) != v:
            raise ValueError("quantiles must be increasing, distinct probabilities strictly between 0 and 1")
        return v


class PostgresSettings(_Section):
    """The local PostgreSQL server (``featurelake services start``): the metastore's and Airflow's databases."""

    port: int = Field(55432, ge=1024, le=65535)
    data_dir: str = ".state/postgres"
    # The server's superuser (initdb); local connections on 127.0.0.1 are trusted, so it has no password.
    user: Annotated[str, _pg_name("role")] = "featurelake"
    # Off only for throwaway servers (the test suite's): a crash may then lose committed transactions.
    fsync: bool = True


class AirflowSettings(_Section):
    """The local Airflow (``featurelake services start``): its metadata in a database of the local PostgreSQL, its
    API server (the UI, and the Execution API that LocalExecutor's task processes report to) on loopback."""

    port: int = Field(8080, ge=1024, le=65535)
    database: Annotated[str, _pg_name("database")] = "airflow"
    # Task processes LocalExecutor runs at once on this machine (Airflow's core.parallelism).
    parallelism: int = Field(4, ge=1)


class ConnectSettings(_Section):
    """The notebook endpoint (``featurelake serve connect``): a Spark Connect server on loopback."""

    port: int = Field(15002, ge=1024, le=65535)


class ThriftSettings(_Section):
    """The SQL endpoint (``featurelake serve sql``): Spark's Thrift server, HiveServer2's binary protocol."""

    port: int = Field(10000, ge=1024, le=65535)
    driver_memory: str = "1g"  # the server's JVM heap: it runs every client's queries (spark.driver.memory)


class OnlineServerSettings(_Section):
    """The HTTP feature server (``featurelake serve online``) on loopback; 6566 as Feast's ``feast serve``."""

    port: int = Field(6566, ge=1024, le=65535)


class S3ServerSettings(_Section):
    """The local S3-compatible object store (S3Proxy, ``featurelake services start --s3``): buckets are folders of
    ``data_dir``, served on 127.0.0.1:``port``."""

    port: int = Field(9000, ge=1024, le=65535)
    data_dir: str = ".state/s3"
    install_dir: str = ".state/s3proxy"  # its JARs, copied by `make setup`


class RedisServerSettings(_Section):
    """The local Redis server (``featurelake services start --redis``), the online store of the cluster environment:
    Debian's redis-server on 127.0.0.1:``port``, its append-only file in ``data_dir``."""

    port: int = Field(6379, ge=1024, le=65535)
    data_dir: str = ".state/redis"


class KafkaServerSettings(_Section):
    """The local Kafka broker (``featurelake services start --kafka``): one KRaft node (broker and controller) of the
    Kafka JARs ``make setup`` copies to ``install_dir``, clients on 127.0.0.1:``port``, its controller on
    ``controller_port``, its log in ``data_dir``."""

    port: int = Field(9092, ge=1024, le=65535)
    controller_port: int = Field(9093, ge=1024, le=65535)
    data_dir: str = ".state/kafka-data"
    install_dir: str = ".state/kafka"
    heap: str = "512m"


class SparkClusterSettings(_Section):
    """The local Spark standalone cluster (``featurelake services start --cluster``, ``FEATURELAKE_ENV=cluster``): a
    master on 127.0.0.1:``port`` (its web UI on ``ui_port``) and ``workers`` worker processes of ``worker_cores``
    cores and ``worker_memory`` each, their work folders under ``<state_dir>/spark-work/<n>``."""

    port: int = Field(7077, ge=1024, le=65535)
    ui_port: int = Field(8081, ge=1024, le=65535)
    workers: int = Field(2, ge=1)
    worker_cores: int = Field(1, ge=1)
    worker_memory: str = "2g"  # what a worker offers its executors (spark.executor.memory must fit in it)
    # The interpreter the executors' packed environment is made from and links to: every worker needs it at this
    # path (the OS package python3.11, e.g. Debian's), the driver's own Python minor version.
    executor_python: str = "/usr/bin/python3.11"
    # Where the executors' environment is built and packed (a build of the checkout, like spark.jars_dir).
    executor_env_dir: str = ".state/cluster"


class ServicesSettings(_Section):
    """Local services the repository installs, starts and stops (``featurelake services``)."""

    postgres: PostgresSettings = PostgresSettings()
    airflow: AirflowSettings = AirflowSettings()
    connect: ConnectSettings = ConnectSettings()
    thrift: ThriftSettings = ThriftSettings()
    online: OnlineServerSettings = OnlineServerSettings()
    s3: S3ServerSettings = S3ServerSettings()
    redis: RedisServerSettings = RedisServerSettings()
    kafka: KafkaServerSettings = KafkaServerSettings()
    spark_cluster: SparkClusterSettings = SparkClusterSettings()


class Settings(_Section):
    env: str = DEFAULT_ENV
    root: Path = Path(".")
    state_dir: str = ".state"
    features_dir: str = "features"  # the feature repository: one folder per domain (features/<domain>/)
    spark: SparkSettings = SparkSettings()
    storage: StorageSettings = StorageSettings()
    online_store: OnlineStoreSettings = OnlineStoreSettings()
    online: OnlineSettings = OnlineSettings()
    streaming: StreamingSettings = StreamingSettings()
    ingest: IngestSettings = IngestSettings()
    validation: ValidationSettings = ValidationSettings()
    compute: ComputeSettings = ComputeSettings()
    orchestration: OrchestrationSettings = OrchestrationSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    services: ServicesSettings = ServicesSettings()

    def path(self, value: str) -> str:
        """Resolve a configured path: URIs (s3a://...) as they are, relative paths against the repo root."""
        if "://" in value:
            return value
        p = Path(value)
        return str(p if p.is_absolute() else (self.root / p).resolve())

    @property
    def state_path(self) -> Path:
        return Path(self.path(self.state_dir))

    @property
    def features_path(self) -> Path:
        return Path(self.path(self.features_dir))


def find_root(environ: dict[str, str] | None = None) -> Path:
    """The repository root: $FEATURELAKE_HOME, else the nearest folder above cwd (or this file) with conf/."""
    if home := (os.environ if environ is None else environ).get(HOME_VAR):
        return Path(home).resolve()
    for start in (Path.cwd(), Path(__file__).resolve()):
        for candidate in (start, *start.parents):
            if (candidate / "conf" / "base.yaml").is_file():
                return candidate
    raise ConfigError(f"cannot find conf/base.yaml above {Path.cwd()}; set {HOME_VAR} to the repository root")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return data


def _merge(target: dict[str, Any], layer: dict[str, Any], origin: str, origins: dict[str, str], prefix=()):
    """Deep-merge ``layer`` into ``target`` and remember which file set each dotted key."""
    for key, value in layer.items():
        dotted = (*prefix, str(key))
        if isinstance(value, dict) and isinstance(target.get(key), dict) and dotted != ("spark", "conf"):
            _merge(target[key], value, origin, origins, dotted)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            target[key] = {**target[key], **value}
            origins[".".join(dotted)] = origin
        else:
            target[key] = value
            origins[".".join(dotted)] = origin


def _env_overrides(environ: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    layers = []
    for name, raw in sorted(environ.items()):
        if not name.startswith(OVERRIDE_PREFIX):
            continue
        written = [p for p in name[len(OVERRIDE_PREFIX) :].split("__") if p]
        parts = [p.lower() for p in written]
        if parts[:2] == ["spark", "conf"] and len(parts) > 2:
            # Spark's keys keep their dots, and their case where it is written mixed (Spark's keys are case-sensitive:
            # FEATURELAKE__SPARK__CONF__spark__driver__defaultJavaOptions); an all-capitals part is lower-cased.
            parts = ["spark", "conf", ".".join(p.lower() if p.isupper() else p for p in written[2:])]
        value: Any = yaml.safe_load(raw) if raw.strip() else None
        for part in reversed(parts):
            value = {part: value}
        layers.append((f"environment variable {name}", value))
    return layers


def _origin_of(loc: tuple[Any, ...], origins: dict[str, str]) -> str:
    parts = [str(p) for p in loc]
    while parts:
        if (key := ".".join(parts)) in origins:
            return origins[key]
        parts.pop()
    return "defaults"


def load_settings(env: str | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Load and validate the settings for ``env`` (default: $FEATURELAKE_ENV or ``local``)."""
    environ = dict(os.environ if environ is None else environ)
    root = find_root(environ)
    env = env or environ.get(ENV_VAR) or DEFAULT_ENV
    conf_dir = root / "conf"
    env_file = conf_dir / f"{env}.yaml"
    if env == "base" or not env_file.is_file():
        known = sorted(p.stem for p in conf_dir.glob("*.yaml") if p.stem != "base")
        raise ConfigError(f"unknown {ENV_VAR}={env!r}: no conf/{env}.yaml (known: {', '.join(known)})")

    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for path in (conf_dir / "base.yaml", env_file):
        _merge(merged, _read_yaml(path), str(path.relative_to(root)), origins)
    for origin, layer in _env_overrides(environ):
        _merge(merged, layer, origin, origins)

    try:
        return Settings.model_validate({**merged, "env": env, "root": root})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            what = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
            got = "" if err["type"] == "extra_forbidden" else f" (got {err.get('input')!r})"
            problems.append(f"{_origin_of(err['loc'], origins)}: {key}: {what}{got}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None


@cache
def get_settings() -> Settings:
    """Settings of this process, loaded once."""
    return load_settings()
