"""Training-set commands: `training-set build` and `training-set rebuild`."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer

from featurelake.cli.output import console, show_steps

if TYPE_CHECKING:
    from featurelake.artifacts import ArtifactPath
    from featurelake.offline.manifest import Manifest


def _report(manifest: Manifest, artifacts: ArtifactPath) -> None:
    """One line (a task's XCom): the table, its version and rows, what it was read from, the manifest file."""
    from featurelake.offline.manifest import manifest_file

    views = ", ".join(f"{v.name}@v{v.delta_version}" for v in manifest.views)
    console.print(
        f"wrote {manifest.table} (Delta version {manifest.table_version}, {manifest.rows.output:,} rows) "
        f"from {views}; registry version {manifest.registry_version}; "
        f"manifest {manifest_file(artifacts, manifest.name).url}",
        highlight=False,
        soft_wrap=True,
    )


def build(
    entities: Annotated[str, typer.Option("--entities", help="entity rows: a table, a path or a SELECT query")],
    name: Annotated[str, typer.Option("--name", help="output table training.<name>")],
    service: Annotated[str | None, typer.Option("--service", help="feature service")] = None,
    features: Annotated[list[str] | None, typer.Option("--features", help="view:feature or view (repeatable)")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing training set")] = False,
    full_feature_names: Annotated[
        bool, typer.Option("--full-feature-names", help="name columns <view>__<feature>")
    ] = False,
    timestamp_column: Annotated[
        str, typer.Option("--timestamp-column", help="the entity rows' event timestamp column")
    ] = "event_timestamp",
    start: Annotated[
        dt.datetime | None, typer.Option("--start", formats=["%Y-%m-%d"], help="only entity rows from this UTC date")
    ] = None,
    end: Annotated[
        dt.datetime | None, typer.Option("--end", formats=["%Y-%m-%d"], help="...up to this UTC date, inclusive")
    ] = None,
    repo: Annotated[str | None, typer.Option("--repo", help="feature repository (default: features/)")] = None,
    connect: Annotated[
        bool, typer.Option("--connect", help="run on the notebook endpoint (`featurelake serve connect`): no local JVM")
    ] = False,
) -> None:
    """Join the features as of each entity row's timestamp into training.<name>, with a manifest."""
    from featurelake.artifacts import artifacts_root
    from featurelake.config import get_settings
    from featurelake.offline.training_set import build_training_set
    from featurelake.repo import feature_repo, load_repo
    from featurelake.services.connect import remote_session
    from featurelake.spark import get_spark

    settings = get_settings()
    definitions = load_repo(repo) if repo else feature_repo(settings)
    definitions.selections_for(service, features)  # an unknown service or feature stops here, before Spark starts
    with show_steps():
        manifest = build_training_set(
            remote_session(settings) if connect else get_spark(settings),
            definitions,
            name=name,
            entities=entities,
            service=service,
            features=features,
            overwrite=overwrite,
            full_feature_names=full_feature_names,
            event_timestamp_column=timestamp_column,
            start=start.date() if start else None,
            end=end.date() if end else None,
            artifacts=artifacts_root(settings),
        )
    _report(manifest, artifacts_root(settings))


def rebuild(
    manifest: Annotated[str, typer.Option("--manifest", help="a manifest JSON file or a training set name")],
    name: Annotated[str | None, typer.Option("--name", help="write to training.<name> (default: the same)")] = None,
) -> None:
    """Rebuild a training set from its manifest: every table read VERSION AS OF the recorded version (request
    feature views applied with the repository's functions, which must be the ones the manifest ran)."""
    from featurelake.artifacts import artifacts_root
    from featurelake.config import get_settings
    from featurelake.offline.training_set import rebuild as run_rebuild
    from featurelake.repo import feature_repo
    from featurelake.spark import get_spark

    settings = get_settings()
    repo = feature_repo(settings)
    with show_steps():
        rebuilt = run_rebuild(get_spark(settings), manifest, name=name, artifacts=artifacts_root(settings), repo=repo)
    _report(rebuilt, artifacts_root(settings))
