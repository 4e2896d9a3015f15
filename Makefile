# featurelake — the README's two commands are `make run` and `make test`; both bootstrap first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STATE := .state
JARS := $(STATE)/jars
# Debian packages the pipeline and tests need (installed only when missing).
DEB_PACKAGES := openjdk-17-jre-headless maven redis-server
MVN_EXCLUDED_GROUPS := org.scala-lang,com.fasterxml.jackson.core,org.apache.hadoop,org.apache.logging.log4j,org.apache.parquet,org.slf4j,org.xerial.snappy,com.github.luben,org.roaringbitmap,io.airlift,commons-pool,commons-logging,org.locationtech.jts,com.google.code.findbugs

.PHONY: help setup run test lint bench lock clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

setup: $(STATE)/deb.stamp $(VENV)/install.stamp $(JARS)/jars.stamp ## bootstrap: Debian packages, virtualenv, Delta JARs (idempotent)

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

lock: $(BIN)/uv ## re-resolve requirements.lock from pyproject.toml
	$(BIN)/uv pip compile -q -p $(BIN)/python --extra dev pyproject.toml -o requirements.lock

run: setup ## the nightly pipeline on the bundled demo data (embedded defaults)
	$(BIN)/featurelake run-demo

test: setup ## the whole test suite (unit + integration)
	$(BIN)/python -m pytest -m "not bench" $(PYTEST_ARGS)

lint: setup ## ruff and mypy
	$(BIN)/ruff check src jobs dags tests features
	$(BIN)/ruff format --check src jobs dags tests features
	$(BIN)/mypy

bench: setup ## benchmarks; results land in bench/results/
	$(BIN)/python -m pytest -m bench -s $(PYTEST_ARGS)

clean: ## remove the local state (warehouse, metastore, online store); keeps the venv and JARs
	rm -rf $(STATE)/warehouse $(STATE)/metastore_db $(STATE)/online $(STATE)/cache $(STATE)/derby.log
