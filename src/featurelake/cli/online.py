"""Online store commands: `materialize`, `promote`, `retire`, `online get`, `online check`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from featurelake.cli.output import console, show_steps
from featurelake.errors import InputError

RepoOption = Annotated[
    str | None, typer.Option("--repo", help="feature repository folder (default: features/ in the repo root)")
]


def _context(repo_dir: str | None):
    from featurelake.config import get_settings
    from featurelake.repo import feature_repo, load_repo

    settings = get_settings()
    return settings, load_repo(repo_dir) if repo_dir else feature_repo(settings)


def _spark(settings):
    from featurelake.spark import get_spark

    return get_spark(settings)


def materialize(
    view: Annotated[list[str] | None, typer.Option("--view", help="a feature view (repeatable)")] = None,
    all_views: Annotated[bool, typer.Option("--all", help="every online feature view")] = False,
    full: Annotated[bool, typer.Option("--full", help="read the whole table instead of the change data")] = False,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="materialization time, ISO (naive = UTC); default now")
    ] = None,
    repo: RepoOption = None,
) -> None:
    """Write the point-in-time latest feature values to the configured online store (incremental by default)."""
    from featurelake.online.materialize import materialize as run
    from featurelake.online.materialize import parse_as_of

    if bool(view) == all_views:
        raise InputError("name the views with --view NAME (repeatable) or pass --all")
    when = parse_as_of(as_of)
    settings, definitions = _context(repo)
    with show_steps():
        results = run(_spark(settings), settings, definitions, None if all_views else view, as_of=when, full=full)
    out = Table("view", "mode", "versions", "written", "deleted", "unchanged", "seconds", "why")
    for r in results:
        versions = f"{'-' if r.from_version is None else r.from_version} -> {r.to_version}"
        out.add_row(r.view, r.mode, versions, f"{r.written:,}", f"{r.deleted:,}", f"{r.skipped:,}",
                    f"{r.seconds:.1f}", r.reason)  # fmt: skip
    console.print(f"materialized as of {when.isoformat()} into {results[0].store if results else '-'}")
    console.print(out)


def _parse_pairs(items: list[str], option: str, example: str) -> dict[str, str]:
    row = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InputError(f"{option} {item!r} is not NAME=VALUE (e.g. {option} {example})")
        row[name] = value
    return row


def _json_or_text(value: str) -> Any:
    """A request value as JSON would give it (12.5, true, null), else the text itself."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def get(
    key: Annotated[list[str], typer.Option("--key", help="a join key value, NAME=VALUE (repeatable)")],
    service: Annotated[str | None, typer.Option("--service", help="a feature service")] = None,
    feature: Annotated[list[str] | None, typer.Option("--feature", help="view or view:feature (repeatable)")] = None,
    request: Annotated[
        list[str] | None, typer.Option("--request", help="request data of request feature views, NAME=VALUE")
    ] = None,
    repo: RepoOption = None,
) -> None:
    """Print the online feature values of one entity row as JSON (null for missing keys), request feature views
    computed on the --request data."""
    from featurelake.online.client import OnlineClient

    settings, definitions = _context(repo)
    entity = _parse_pairs(key, "--key", "carrier=UA")
    data = {k: _json_or_text(v) for k, v in _parse_pairs(request or [], "--request", "dep_delay=12").items()}
    client = OnlineClient.from_settings(settings, definitions)
    try:
        row = client.get_online_features([{**entity, **data}], service=service, features=feature)[0]
    finally:
        client.close()
    typer.echo(json.dumps(row, indent=2, default=str))


def check(
    view: Annotated[str, typer.Option("--view", help="the feature view to check")],
    sample: Annotated[int, typer.Option("--sample", min=1, help="entity keys to sample")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="sampling seed")] = 0,
    repo: RepoOption = None,
) -> None:
    """Compare online values with the offline PIT values for sampled keys; exit 1 on any mismatch."""
    from featurelake.online.backends import open_store
    from featurelake.online.check import check_view
    from featurelake.online.store import StoreConfig

    settings, definitions = _context(repo)
    with open_store(StoreConfig.from_settings(settings)) as store:
        result = check_view(_spark(settings), definitions, store, view, sample=sample, seed=seed)
    console.print(
        f"{result.view}: {result.sampled} keys sampled from {result.table}@{result.version} "
        f"(as of {result.as_of.isoformat()}): {result.mismatches} mismatches, rate {result.mismatch_rate:.4f}"
    )
    for example in result.examples:
        console.print(f"  {example}", highlight=False)
    if result.mismatches:
        raise typer.Exit(1)


def promote(
    view: Annotated[str, typer.Argument(help="the feature view")],
    version: Annotated[int, typer.Option("--version", min=1, help="the version to serve")],
) -> None:
    """Serve VIEW at --version to requests without a pinned version (atomically), once that version was
    materialized and passed `featurelake online check`; promoting back to an earlier version works the same way."""
    from featurelake.config import get_settings
    from featurelake.online.backends import open_store
    from featurelake.online.store import StoreConfig
    from featurelake.online.versions import promote as run
    from featurelake.repo import feature_repo

    settings = get_settings()
    feature_repo(settings).view(view)  # an unknown view: one line naming the known ones
    with open_store(StoreConfig.from_settings(settings)) as store:
        done = run(store, view, version)
    was = "nothing promoted" if done.previous is None else f"v{done.previous}"
    console.print(f"{done.view}: serving v{done.version} (was {was}) from {store.config.identity}", highlight=False)


def retire(
    view: Annotated[str, typer.Argument(help="the feature view")],
    version: Annotated[int, typer.Option("--version", min=1, help="the version to remove")],
) -> None:
    """Remove VIEW's --version from the online store (its values, watermark and check record); refused for the
    version served and for a version a feature service pins."""
    from featurelake.config import get_settings
    from featurelake.online.backends import open_store
    from featurelake.online.store import StoreConfig
    from featurelake.online.versions import retire as run
    from featurelake.repo import feature_repo

    settings = get_settings()
    repo = feature_repo(settings)
    repo.view(view)  # an unknown view: one line naming the known ones, before the store is opened
    with open_store(StoreConfig.from_settings(settings)) as store:
        done = run(store, repo, view, version)
    removed = "its table dropped" if done.removed is None else f"{done.removed:,} keys removed"
    console.print(f"{done.view}: v{done.version} retired from {store.config.identity} ({removed})", highlight=False)
