# featurelake — the README's two commands are `make run` and `make test`; both bootstrap first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STATE := .state
JARS := $(STATE)/jars
# A test of `make test` running longer than this (its fixtures' setup included) fails with every thread's stack
# (pytest-timeout) instead of hanging the suite; the longest, the DAG runs' shared setup, takes about 11 minutes.
TEST_TIMEOUT_S := 1800
# Debian packages the pipeline and tests need (installed only when missing); the JDK compiles src/java.
DEB_PACKAGES := openjdk-17-jdk-headless maven redis-server postgresql
MVN_EXCLUDED_GROUPS := org.scala-lang,com.fasterxml.jackson.core,io.netty,org.apache.httpcomponents,commons-codec,org.apache.logging.log4j,org.apache.parquet,org.slf4j,org.xerial.snappy,com.github.luben,org.roaringbitmap,io.airlift,commons-pool,commons-logging,org.locationtech.jts,com.google.code.findbugs

.PHONY: help setup up down sql connect serve run test test-fast test-cluster lint bench bench-streaming feast-venv lock clean airflow history dbt-manifest

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

setup: $(STATE)/deb.stamp $(VENV)/install.stamp $(JARS)/jars.stamp $(JARS)/featurelake-logstore.jar $(JARS)/spark-classes.jsa $(STATE)/s3proxy/s3proxy.stamp $(STATE)/kafka/kafka.stamp ## bootstrap: Debian packages, virtualenv, Delta, S3A and Kafka-source JARs, the S3 log store, the drivers' class archive, S3Proxy, Kafka (idempotent)

$(STATE)/deb.stamp: Makefile
	@mkdir -p $(STATE)
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check uv

$(VENV)/install.stamp: $(BIN)/uv requirements.lock pyproject.toml
	$(BIN)/uv pip sync -q -p $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q -p $(BIN)/python --no-deps -e .
	@touch $@

$(JARS)/jars.stamp: conf/jars.pom.xml
	@rm -rf $(JARS) && mkdir -p $(JARS)
	mvn -q -B -f conf/jars.pom.xml dependency:copy-dependencies -DincludeScope=runtime \
	  -DoutputDirectory=$(abspath $(JARS)) -DexcludeGroupIds=$(MVN_EXCLUDED_GROUPS)
	@touch $@

# featurelake's Delta log store for concurrent commits on S3 (src/java; storage.s3.commit_coordination), compiled
# against the Delta and S3A JARs above and pyspark's own Hadoop, into .state/jars with them (spark.jars).
LOGSTORE_SOURCES := $(shell find src/java -name '*.java')
$(JARS)/featurelake-logstore.jar: $(LOGSTORE_SOURCES) $(JARS)/jars.stamp $(VENV)/install.stamp $(STATE)/deb.stamp
	@rm -rf $(STATE)/logstore-classes && mkdir -p $(STATE)/logstore-classes
	javac --release 17 -Xlint:all,-path -Werror -d $(STATE)/logstore-classes \
	  -cp "$(JARS)/*:$$($(BIN)/python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')/jars/*" \
	  $(LOGSTORE_SOURCES)
	jar --create --file $@ -C $(STATE)/logstore-classes .
	@rm -rf $(STATE)/logstore-classes

# The class-data archive the Spark drivers start from (featurelake.class_archive; spark.class_archive): the classes a
# driver loads, parsed and verified once; rebuilt with the JARs, the virtualenv (pyspark) or the JDK.
$(JARS)/spark-classes.jsa: $(JARS)/jars.stamp $(JARS)/featurelake-logstore.jar $(VENV)/install.stamp $(STATE)/deb.stamp
	FEATURELAKE__SPARK__CLASS_ARCHIVE=$(abspath $@) $(BIN)/python -c 'from featurelake.class_archive import build; build()'

# S3Proxy (Maven Central), the local S3-compatible object store (`featurelake services start --s3`).
$(STATE)/s3proxy/s3proxy.stamp: conf/s3proxy.pom.xml $(STATE)/deb.stamp
	@rm -rf $(STATE)/s3proxy && mkdir -p $(STATE)/s3proxy
	mvn -q -B -f conf/s3proxy.pom.xml dependency:copy-dependencies -DincludeScope=runtime \
	  -DoutputDirectory=$(abspath $(STATE)/s3proxy)
	@touch $@

# Apache Kafka (Maven Central), the local broker of the streaming features (`featurelake services start --kafka`).
$(STATE)/kafka/kafka.stamp: conf/kafka.pom.xml $(STATE)/deb.stamp
	@rm -rf $(STATE)/kafka && mkdir -p $(STATE)/kafka
	mvn -q -B -f conf/kafka.pom.xml dependency:copy-dependencies -DincludeScope=runtime \
	  -DoutputDirectory=$(abspath $(STATE)/kafka)
	@touch $@

up: setup ## start the local services (PostgreSQL: the metastore's and Airflow's databases; Airflow's API server; FEATURELAKE_ENV=cluster: also S3, the Spark master and workers, the SQL endpoint); running ones are reused
	$(BIN)/featurelake services start $(if $(filter cluster,$(FEATURELAKE_ENV)),--cluster)

connect: up ## the notebook endpoint: Spark Connect on sc://localhost:15002 (services.connect.port), in the background
	$(BIN)/featurelake serve connect

down: ## stop every service this repository started, endpoints too (by recorded pid); data stays for the next `make up`
	@if [ -x $(BIN)/featurelake ]; then $(BIN)/featurelake services stop; fi

sql: up ## the SQL endpoint (Spark Thrift server) on 127.0.0.1:10000 for beeline, JDBC/ODBC tools, PyHive, dbt; reused when running
	$(BIN)/featurelake serve sql

serve: setup ## the HTTP feature server (Feast-shaped get-online-features) on 127.0.0.1:6566 (services.online.port), in the background
	$(BIN)/featurelake serve online

lock: $(BIN)/uv ## re-resolve requirements.lock from pyproject.toml
	$(BIN)/uv pip compile -q -p $(BIN)/python --extra dev pyproject.toml -o requirements.lock

run: up ## the nightly DAG through Airflow on the demo days: its tasks as they run (full log in .state/logs), a summary
	$(BIN)/featurelake run-demo

airflow: up ## Airflow's scheduler and DAG processor too (scheduled runs; UI on http://127.0.0.1:8080, admin's password in .state/airflow); `make down` stops them
	$(BIN)/featurelake services start --scheduler
	@echo "Airflow UI: http://127.0.0.1:8080 (user admin, password in $$(ls $(abspath $(STATE))/airflow/simple_auth_manager_passwords.json* 2>/dev/null | head -1))"

history: setup ## Spark's history server on the event logs of `featurelake --spark-ui` runs, on http://127.0.0.1:18080
	@mkdir -p $(STATE)/spark-events
	@echo "Spark history server on http://127.0.0.1:18080 (event logs: $(STATE)/spark-events); Ctrl-C stops it"
	PATH=$(abspath $(BIN)):$$PATH SPARK_LOCAL_IP=127.0.0.1 \
	  SPARK_HISTORY_OPTS="-Dspark.history.fs.logDirectory=file:$(abspath $(STATE))/spark-events -Dspark.history.ui.port=18080" \
	  $(BIN)/spark-class org.apache.spark.deploy.history.HistoryServer

test: setup ## the whole test suite (unit + DAG integrity + integration): what CI runs (on a PostgreSQL of its own)
	$(BIN)/python -m pytest -m "not bench and not cluster" --timeout=$(TEST_TIMEOUT_S) $(PYTEST_ARGS)

test-cluster: setup ## the cluster topology end to end (make up, the nightly on the Spark cluster with every table on S3, make down): about 35 minutes
	$(BIN)/python -m pytest -m cluster $(PYTEST_ARGS)

test-fast: setup ## unit tests and DAG integrity checks but those marked slow (under 2 minutes)
	$(BIN)/python -m pytest tests/unit tests/dags -m "not slow" --timeout=$(TEST_TIMEOUT_S) $(PYTEST_ARGS)

lint: setup ## ruff and mypy
	$(BIN)/ruff check src jobs dags tests features examples
	$(BIN)/ruff format --check src jobs dags tests features examples
	$(BIN)/mypy

bench: setup feast-venv ## benchmarks; results land in bench/results/
	$(BIN)/python -m pytest -m bench -s $(PYTEST_ARGS)

bench-streaming: setup ## the streaming latency benchmark alone (event to online p50/p99 per rate): bench/results/streaming.md
	$(BIN)/python -m pytest -m bench -s tests/bench/test_bench_streaming.py $(PYTEST_ARGS)

# The serving benchmark's opponent: Feast 0.67 in a virtualenv of its own (never in the lock) and wrk, the load
# generator (Debian package). Only `make bench` needs them.
FEAST_VENV := $(STATE)/bench/feast-venv

feast-venv: $(FEAST_VENV)/install.stamp ## Feast 0.67 (+ redis, DuckDB and Spark offline stores) in .state/bench/feast-venv and wrk, for the serving benchmark (idempotent)

$(FEAST_VENV)/install.stamp:
	@command -v wrk >/dev/null || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends wrk; }
	@rm -rf $(FEAST_VENV) && $(PYTHON) -m venv $(FEAST_VENV)
	$(FEAST_VENV)/bin/pip install -q --disable-pip-version-check uv
	$(FEAST_VENV)/bin/uv pip install -q -p $(FEAST_VENV)/bin/python 'feast[redis,duckdb,spark]==0.67.0' 'pandas<3'
	@touch $@

clean: down ## remove the local state (warehouse, metastore, online store, the S3 server's buckets); keeps the venv and JARs
	rm -rf $(STATE)/warehouse $(STATE)/postgres $(STATE)/postgres.pid $(STATE)/*.pid $(STATE)/metastore_db $(STATE)/online $(STATE)/cache $(STATE)/derby.log \
	  $(STATE)/gx $(STATE)/manifests $(STATE)/reports $(STATE)/catalog $(STATE)/airflow $(STATE)/logs $(STATE)/spark-events $(STATE)/spark-work \
	  $(STATE)/s3 $(STATE)/s3-credentials $(STATE)/s3proxy.properties $(STATE)/redis $(STATE)/kafka-data $(STATE)/kafka.properties

dbt_project/target/manifest.json: $(VENV)/install.stamp $(shell find dbt_project/models dbt_project/macros -type f) dbt_project/dbt_project.yml dbt_project/profiles.yml
	$(BIN)/dbt parse --project-dir dbt_project --profiles-dir dbt_project --target ci --log-path dbt_project/logs --quiet

dbt-manifest: dbt_project/target/manifest.json ## parse the dbt project into dbt_project/target/manifest.json (no Spark needed)
