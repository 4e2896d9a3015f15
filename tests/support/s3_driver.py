"""A Spark driver of its own (a separate process, local[1]) that writes one Delta table on s3a:// with featurelake's
settings from its environment (storage.s3: endpoint, commit coordination; the key pair in the AWS variables), for
the concurrent-commit and kill tests (tests/integration/test_s3_commits.py).

    python -m tests.support.s3_driver append PATH WRITER ROWS READY_FILE START_FILE
        warm up, touch READY_FILE, wait for START_FILE, append ROWS rows (writer, i) in one commit
    python -m tests.support.s3_driver race PREFIX WRITER ROUNDS FOLDER
        per round r: touch FOLDER/ready-WRITER-r, wait for FOLDER/start-r, create PREFIX/r/_delta_log/<version 1>.json
        through the configured log store (what a commit does) and print `r won` or `r lost` (the file existed)
    python -m tests.support.s3_driver days PATH DAYS ROWS
        for each day 0..DAYS-1: replace that day's partition with its ROWS rows (replaceWhere, one commit a day, as
        featurelake's interval writes do), printing `committed day N` after each; a re-run converges

The path-based table needs no catalog: the session uses Spark's in-memory one, not the metastore.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from featurelake.config import get_settings
from featurelake.spark import spark_conf

SCHEMA = "writer string, i long, day int"
JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def session():
    from pyspark.sql import SparkSession

    conf = spark_conf(get_settings())
    conf.update(
        {
            "spark.master": "local[1]",
            "spark.sql.catalogImplementation": "in-memory",
            "spark.sql.shuffle.partitions": "1",
            "spark.driver.extraJavaOptions": f"{conf['spark.driver.extraJavaOptions']} {JVM_OPTIONS}",
        }
    )
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def day_rows(day: int, rows: int) -> list[tuple[str, int, int]]:
    return [(f"day-{day}", i, day) for i in range(rows)]


def append(path: str, writer: str, rows: int, ready: Path, start: Path) -> None:
    spark = session()
    df = spark.createDataFrame([(writer, i, 0) for i in range(rows)], SCHEMA).coalesce(1)
    spark.range(1).count()  # the JVM and the executor warm before the barrier
    ready.touch()
    while not start.exists():
        time.sleep(0.01)
    df.write.format("delta").mode("append").save(path)
    print(f"committed {writer}", flush=True)


def race(prefix: str, writer: str, rounds: int, folder: Path) -> None:
    from py4j.protocol import Py4JJavaError

    spark = session()
    gateway, jvm = spark.sparkContext._gateway, spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    # the log store storage.s3.commit_coordination names, as Delta makes it: new Store(hadoopConf)
    cls = jvm.org.apache.spark.util.Utils.classForName(spark.conf.get("spark.delta.logStore.s3a.impl"), True, False)
    types, values = gateway.new_array(jvm.java.lang.Class, 1), gateway.new_array(jvm.java.lang.Object, 1)
    types[0], values[0] = conf.getClass(), conf
    store = cls.getConstructor(types).newInstance(values)

    def create(path: str) -> bool:
        lines = jvm.java.util.ArrayList()
        lines.add(f'{{"commitInfo":{{"writer":"{writer}"}}}}')
        try:
            store.write(jvm.org.apache.hadoop.fs.Path(path), lines.iterator(), False, conf)
        except Py4JJavaError as e:
            if e.java_exception.getClass().getName() == "java.nio.file.FileAlreadyExistsException":
                return False
            raise
        return True

    create(f"{prefix}/warm-{writer}/_delta_log/{1:020d}.json")  # classes loaded, connections open
    for r in range(rounds):
        (folder / f"ready-{writer}-{r}").touch()
        while not (folder / f"start-{r}").exists():
            time.sleep(0.005)
        won = create(f"{prefix}/{r}/_delta_log/{1:020d}.json")
        print(f"{r} {'won' if won else 'lost'}", flush=True)


def days(path: str, count: int, rows: int) -> None:
    from delta.tables import DeltaTable

    spark = session()
    for day in range(count):
        writer = spark.createDataFrame(day_rows(day, rows), SCHEMA).coalesce(1).write.format("delta")
        if DeltaTable.isDeltaTable(spark, path):
            writer = writer.mode("overwrite").option("replaceWhere", f"day = {day}")
        else:
            writer = writer.mode("overwrite").partitionBy("day")
        writer.save(path)
        print(f"committed day {day}", flush=True)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "append":
        append(args[0], args[1], int(args[2]), Path(args[3]), Path(args[4]))
    elif command == "race":
        race(args[0], args[1], int(args[2]), Path(args[3]))
    elif command == "days":
        days(args[0], int(args[1]), int(args[2]))
    else:
        raise SystemExit(f"unknown command {command!r}: append, race or days")
