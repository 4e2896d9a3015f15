"""Training sets on request: a point-in-time correct training table and its manifest, from trigger params.

Trigger it from the UI's form or ``airflow dags trigger training_set --conf '{...}'``: the params are checked
against their JSON schema before any task runs. The form starts from the feature repository's first
``TrainingSet`` (by name; the demo's is ``flight_delay_demo``); without one, service, entities and name are
required. The task runs ``featurelake training-set build`` as a spark-submit job (``jobs/build_training_set.py``)
and reports the output table, its Delta version and row count (its XCom).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from featurelake.config import get_settings
from featurelake.orchestration import PARAM_DATE_SCHEMA, default_args, job_command, task_options
from featurelake.repo import feature_repo

settings = get_settings()
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
preset = min(feature_repo(settings).training_sets.values(), key=lambda t: t.name, default=None)


def from_preset(attribute: str) -> dict:
    """A param's default: the preset training set's ``attribute`` (no default, so a required field, without one)."""
    return {"default": getattr(preset, attribute)} if preset else {}


@dag(
    dag_id="training_set",
    description=__doc__.splitlines()[0],
    schedule=None,
    start_date=None,
    catchup=False,
    default_args=default_args(settings),
    tags=["featurelake", "training"],
    params={
        "service": Param(**from_preset("service"), type="string", pattern=IDENTIFIER, description="feature service"),
        "entities": Param(
            **from_preset("entities"),
            type="string",
            minLength=1,
            description="entity rows with join keys, event_timestamp and labels: a table, a path or a SELECT query",
        ),
        "start": Param(None, description="only entity rows from this UTC date", **PARAM_DATE_SCHEMA),
        "end": Param(None, description="only entity rows up to this UTC date, inclusive", **PARAM_DATE_SCHEMA),
        "name": Param(**from_preset("name"), type="string", pattern=IDENTIFIER, description="output: training.<name>"),
        "overwrite": Param(False, type="boolean", description="replace an existing training set of that name"),
        "full_feature_names": Param(
            getattr(preset, "full_feature_names", True),
            type="boolean",
            description="name feature columns <view>__<feature> (needed when names collide)",
        ),
    },
    render_template_as_native_obj=False,
    doc_md=__doc__,
)
def training_set() -> None:
    @task.bash(task_id="build_training_set", **task_options(settings))
    def build(params: dict) -> str:
        args = ["build", "--entities", params["entities"], "--service", params["service"], "--name", params["name"]]
        for bound in ("start", "end"):
            if params.get(bound):
                args += [f"--{bound}", str(params[bound])]
        if params["overwrite"]:
            args.append("--overwrite")
        if params["full_feature_names"]:
            args.append("--full-feature-names")
        return job_command("build_training_set.py", *args)

    build()


training_set()
