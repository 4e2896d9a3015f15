"""The session factory's settings, and the live session the tests share."""

from __future__ import annotations

from featurelake.spark import spark_conf


def test_conf_has_delta_catalog_utc_and_local_jars(settings):
    conf = spark_conf(settings)
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert conf["spark.sql.catalog.spark_catalog"] == "org.apache.spark.sql.delta.catalog.DeltaCatalog"
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.sql.catalogImplementation"] == "hive"
    jars = conf["spark.jars"].split(",")
    assert any("delta-spark_4.2_2.13" in j for j in jars)
    assert all(j.startswith(settings.path(settings.spark.jars_dir)) for j in jars)  # never resolved from the network
    assert "spark.jars.packages" not in conf


def test_metastore_kinds_give_the_hive_client_its_database(settings, monkeypatch):
    from featurelake.spark import PASSWORD_KEY, spark_submit_command

    pg = settings.services.postgres
    database = settings.storage.metastore.database
    conf = spark_conf(settings)  # the default: the local PostgreSQL
    assert conf["spark.hadoop.javax.jdo.option.ConnectionURL"] == f"jdbc:postgresql://127.0.0.1:{pg.port}/{database}"
    assert conf["spark.hadoop.javax.jdo.option.ConnectionUserName"] == pg.user
    assert conf["spark.driver.extraClassPath"].rsplit("/", 1)[-1].startswith("postgresql-")

    def with_metastore(**update):
        storage = settings.storage.model_copy(
            update={"metastore": settings.storage.metastore.model_copy(update=update)}
        )
        return settings.model_copy(update={"storage": storage})

    jdbc = with_metastore(kind="jdbc", url="jdbc:postgresql://db.internal:5432/hive", user="hive")
    monkeypatch.setenv("FEATURELAKE_METASTORE_PASSWORD", "s3cret")
    conf = spark_conf(jdbc)
    assert conf["spark.hadoop.javax.jdo.option.ConnectionURL"] == "jdbc:postgresql://db.internal:5432/hive"
    assert conf[PASSWORD_KEY] == "s3cret"
    assert not any("s3cret" in arg for arg in spark_submit_command(jdbc, "ingest_raw.py"))  # never on a command line

    derby = spark_conf(with_metastore(kind="derby"))
    assert str(settings.state_path / "metastore_db") in derby["spark.hadoop.javax.jdo.option.ConnectionURL"]
    thrift = spark_conf(with_metastore(kind="thrift", uri="thrift://metastore.internal:9083"))
    assert thrift["spark.hadoop.hive.metastore.uris"] == "thrift://metastore.internal:9083"
    assert "spark.hadoop.javax.jdo.option.ConnectionURL" not in thrift


def test_spark_ui_setting_turns_on_the_ui_and_an_event_log_under_the_state_folder(settings):
    assert spark_conf(settings)["spark.ui.enabled"] == "false"
    assert "spark.eventLog.enabled" not in spark_conf(settings)
    with_ui = settings.model_copy(update={"spark": settings.spark.model_copy(update={"ui": True})})
    conf = spark_conf(with_ui)
    assert conf["spark.ui.enabled"] == conf["spark.eventLog.enabled"] == "true"
    assert conf["spark.eventLog.dir"] == (settings.state_path / "spark-events").as_uri()


def test_codegen_setting_turns_spark_code_generation_off_in_the_session(spark, settings):
    from featurelake.spark import INTERPRETED

    assert settings.spark.codegen is False  # conf/ci.yaml
    with_codegen = settings.model_copy(update={"spark": settings.spark.model_copy(update={"codegen": True})})
    assert not set(INTERPRETED) & set(spark_conf(with_codegen))  # Spark's defaults: whole-stage code generation on
    assert {k: spark.conf.get(k) for k in INTERPRETED} == INTERPRETED
    plan = spark.range(10).selectExpr("id * 2 AS x").where("x > 4")._jdf.queryExecution().executedPlan().toString()
    assert "WholeStageCodegen" not in plan and "*(" not in plan, plan


def test_catalog_tables_lists_tables_and_views_in_the_interpreted_session(spark):
    from featurelake.tables import catalog_tables

    spark.sql("DROP DATABASE IF EXISTS t_catalog CASCADE")
    spark.sql("CREATE DATABASE t_catalog")
    spark.range(2).write.format("delta").saveAsTable("t_catalog.b_table")
    spark.sql("CREATE VIEW t_catalog.a_view AS SELECT id FROM t_catalog.b_table")
    spark.range(1).createOrReplaceTempView("c_temporary")
    try:
        assert catalog_tables(spark, "t_catalog") == [("a_view", True), ("b_table", False)]
    finally:
        spark.catalog.dropTempView("c_temporary")
        spark.sql("DROP DATABASE t_catalog CASCADE")


def test_session_is_utc_with_databases(spark, settings):
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    dbs = {r[0] for r in spark.sql("SHOW DATABASES").collect()}
    assert set(settings.storage.databases) <= dbs


def test_delta_time_travel_in_the_catalog(spark):
    spark.range(3).write.format("delta").mode("overwrite").saveAsTable("monitoring.t_time_travel")
    spark.range(7).write.format("delta").mode("overwrite").saveAsTable("monitoring.t_time_travel")
    assert spark.sql("SELECT count(*) FROM monitoring.t_time_travel VERSION AS OF 0").first()[0] == 3
    assert spark.table("monitoring.t_time_travel").count() == 7
    spark.sql("DROP TABLE monitoring.t_time_travel")


def test_current_version_and_table_properties_match_the_delta_history(spark):
    from featurelake.tables import current_version, table_properties

    name = "monitoring.t_current_version"
    spark.sql(f"DROP TABLE IF EXISTS {name}")
    spark.range(3).write.format("delta").option("delta.enableChangeDataFeed", "true").saveAsTable(name)
    for n in (4, 5):
        assert current_version(spark, name) == spark.sql(f"DESCRIBE HISTORY {name}").first()["version"]
        spark.range(n).write.format("delta").mode("append").saveAsTable(name)
    assert current_version(spark, name) == 2  # three commits
    assert table_properties(spark, name).get("delta.enableChangeDataFeed") == "true"
    assert table_properties(spark, name).get("delta.no_such_property") is None
    spark.sql(f"DROP TABLE {name}")


def test_s3a_settings_become_hadoop_conf(settings):
    s3 = settings.storage.s3.model_copy(
        update={"endpoint": "http://127.0.0.1:9123/", "path_style_access": True, "region": "eu-west-1"}
    )
    conf = spark_conf(settings.model_copy(update={"storage": settings.storage.model_copy(update={"s3": s3})}))
    expected = {
        "spark.hadoop.fs.s3a.endpoint": "http://127.0.0.1:9123",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.endpoint.region": "eu-west-1",
        "spark.hadoop.fs.s3a.aws.credentials.provider": s3.credentials_provider,
        "spark.hadoop.fs.s3a.create.conditional.enabled": "true",
    }
    assert {k: v for k, v in conf.items() if k.startswith("spark.hadoop.fs.s3a.")} == expected
    assert conf["spark.delta.logStore.s3a.impl"] == "io.featurelake.delta.S3ConditionalLogStore"
    default = spark_conf(settings)  # AWS itself: no endpoint, TLS as S3A's default
    assert "spark.hadoop.fs.s3a.endpoint" not in default
    single = settings.storage.s3.model_copy(update={"commit_coordination": "none"})
    conf = spark_conf(settings.model_copy(update={"storage": settings.storage.model_copy(update={"s3": single})}))
    assert conf["spark.delta.logStore.s3a.impl"] == "io.delta.storage.S3SingleDriverLogStore"
    assert conf["spark.hadoop.fs.s3a.create.conditional.enabled"] == "false"
    assert not any("secret" in k or "access.key" in k for k in default)


def test_drivers_map_the_class_archive_only_when_it_exists(settings, tmp_path):
    def driver_options(archive) -> str:
        spark = settings.spark.model_copy(update={"class_archive": archive})
        return spark_conf(settings.model_copy(update={"spark": spark}))["spark.driver.extraJavaOptions"]

    archive = tmp_path / "classes.jsa"
    assert "SharedArchiveFile" not in driver_options(str(archive))  # not built
    archive.write_bytes(b"x")
    assert f"-XX:SharedArchiveFile={archive} -Xlog:cds=off" in driver_options(str(archive))
    assert "SharedArchiveFile" not in driver_options(None)
