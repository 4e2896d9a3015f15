"""The local Airflow: its metadata in a database of the local PostgreSQL (so that LocalExecutor's task processes
and a scheduler write it at once), its API server (the UI, and the Execution API every task process reports to),
and on request its scheduler and DAG processor; each a background service (process.py) stopped by its pid.

``airflow_env`` is the environment every local Airflow command runs with: ``AIRFLOW_HOME`` under the state folder,
this repository's ``dags/``, LocalExecutor with ``services.airflow.parallelism`` task processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from featurelake.config import HOME_VAR, Settings
from featurelake.errors import FeaturelakeError
from featurelake.services.postgres import HOST, Postgres
from featurelake.services.process import Daemon

START_COMMAND = "`featurelake services start` (or `make up`)"


class AirflowCommandFailed(FeaturelakeError):
    """A local Airflow command (``airflow db migrate``) failed."""


def airflow_bin() -> str:
    """The ``airflow`` executable of this interpreter's environment (the project's venv)."""
    return str(Path(sys.executable).with_name("airflow"))


def metadata_url(settings: Settings) -> str:
    local = settings.services
    return f"postgresql+psycopg://{local.postgres.user}@{HOST}:{local.postgres.port}/{local.airflow.database}"


def api_url(settings: Settings) -> str:
    return f"http://{HOST}:{settings.services.airflow.port}"


def airflow_env(settings: Settings, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for running Airflow locally: home under the state folder, this repo's dags/, no examples, the
    metadata on the local PostgreSQL, LocalExecutor, the API server of ``services.airflow.port``."""
    env = dict(os.environ if environ is None else environ)
    env.setdefault("AIRFLOW_HOME", str(settings.state_path / "airflow"))
    env[HOME_VAR] = str(settings.root)
    env.update(
        {
            "AIRFLOW__CORE__DAGS_FOLDER": str(settings.root / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url(settings),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": metadata_url(settings),  # psycopg 3 does both
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(settings.services.airflow.parallelism),
            "AIRFLOW__API__HOST": HOST,
            "AIRFLOW__API__PORT": str(settings.services.airflow.port),
            "AIRFLOW__API__BASE_URL": api_url(settings),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url(settings)}/execution/",
            # the featurelake and airflow executables of this venv for the tasks' commands
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    env.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
    env.setdefault("NO_COLOR", "1")
    return env


def ensure_metadata(settings: Settings, environ: Mapping[str, str] | None = None) -> None:
    """Create Airflow's database on the local PostgreSQL and migrate it, once per Airflow version (a stamp in
    ``AIRFLOW_HOME`` records it)."""
    from importlib.metadata import version  # not `import airflow`: it would configure this process's logging

    env = airflow_env(settings, environ)
    stamp = Path(env["AIRFLOW_HOME"]) / f"migrated-{version('apache-airflow')}-{settings.services.airflow.database}"
    created = Postgres.from_settings(settings).ensure_database(settings.services.airflow.database)
    if stamp.is_file() and not created:
        return
    proc = subprocess.run(
        [airflow_bin(), "db", "migrate"], env=env, cwd=settings.root, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise AirflowCommandFailed(f"`airflow db migrate` failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    stamp.write_text(metadata_url(settings) + "\n")


@dataclass(frozen=True)
class AirflowProcess(Daemon):
    """One long-running Airflow component: ``airflow <component>`` with :func:`airflow_env`."""

    component: str  # api-server, scheduler, dag-processor
    title: str
    port: int | None
    environ: Mapping[str, str] | None = None  # the environment to derive airflow_env from (default: this process's)
    start_command: str = START_COMMAND

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"airflow-{self.component}"

    @property
    def marker(self) -> str:
        return "airflow"  # Airflow's processes rename themselves (e.g. "airflow api_server -- host:...")

    def command(self, settings: Settings) -> list[str]:
        host = ["--host", HOST, "--port", str(self.port)] if self.port is not None else []
        return [airflow_bin(), self.component, *host]

    def environment(self, settings: Settings) -> dict[str, str]:
        return airflow_env(settings, self.environ)

    def ready(self, settings: Settings) -> bool:
        if self.port is None:
            return True
        try:
            with urllib.request.urlopen(f"{api_url(settings)}/api/v2/monitor/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def start(self, settings: Settings) -> tuple[int, bool]:
        """Start the component (see :meth:`Daemon.start`) once Airflow's database is migrated."""
        if self.running_pid(settings) is None:
            ensure_metadata(settings, self.environ)
        return super().start(settings)


def api_server(settings: Settings, environ: Mapping[str, str] | None = None) -> AirflowProcess:
    return AirflowProcess("api-server", "the Airflow API server", settings.services.airflow.port, environ)


def scheduler_processes(environ: Mapping[str, str] | None = None) -> list[AirflowProcess]:
    """The scheduler and the DAG processor (``make airflow``): scheduled runs of the DAGs."""
    return [
        AirflowProcess("dag-processor", "the Airflow DAG processor", None, environ, "`make airflow`"),
        AirflowProcess("scheduler", "the Airflow scheduler", None, environ, "`make airflow`"),
    ]
