"""Alerts: a JSON POST to the webhook in ``$FEATURELAKE_ALERT_WEBHOOK`` (Slack-compatible ``text`` field).

Standard library only: the Airflow DAG files import this (``default_args``' ``on_failure_callback``) at parse
time. The URL is a secret, so it comes from the environment, never from ``conf/``. Without it, nothing is sent.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from collections.abc import Mapping
from typing import Any

WEBHOOK_VAR = "FEATURELAKE_ALERT_WEBHOOK"
DEFAULT_TIMEOUT_S = 10.0
log = logging.getLogger(__name__)


def post_alert(url: str, payload: Mapping[str, Any], *, timeout_s: float = DEFAULT_TIMEOUT_S) -> int:
    """POST ``payload`` as JSON to ``url``; return the HTTP status (raises on a network or HTTP error)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{WEBHOOK_VAR} must be an http(s) URL, got {url[:40]!r}")
    request = urllib.request.Request(
        url,
        data=json.dumps(dict(payload), default=str).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - scheme checked above
        return int(response.status)


def task_failure_message(context: Mapping[str, Any]) -> dict[str, Any]:
    """The alert of a failed Airflow task, from its callback context."""
    ti = context.get("task_instance") or context.get("ti")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", None)
    task_id = getattr(ti, "task_id", None)
    exception = context.get("exception")
    text = f"featurelake: task {dag_id}.{task_id} failed (run {context.get('run_id')})"
    if exception is not None:
        text += f": {str(exception).splitlines()[0][:500] if str(exception) else type(exception).__name__}"
    return {
        "text": text,
        "dag_id": dag_id,
        "task_id": task_id,
        "run_id": context.get("run_id"),
        "try_number": getattr(ti, "try_number", None),
        "logical_date": context.get("logical_date"),
        "exception": None if exception is None else repr(exception)[:2000],
        "log_url": getattr(ti, "log_url", None),
    }


def alert_on_failure(context: Mapping[str, Any]) -> None:
    """Airflow ``on_failure_callback``: post the failure to the webhook, when one is configured.

    The timeout is ``monitoring.alert_timeout_s``. A failing webhook is logged, not raised: alerting must not
    change the task's outcome.
    """
    from featurelake.config import get_settings

    url = os.environ.get(WEBHOOK_VAR)
    if not url:
        return
    try:
        post_alert(url, task_failure_message(context), timeout_s=get_settings().monitoring.alert_timeout_s)
    except Exception as exc:  # noqa: BLE001 - any network/HTTP problem: log it and let the task fail as it did
        log.warning("featurelake alert to %s failed: %s", WEBHOOK_VAR, exc)
