"""The Airflow failure callback posts JSON to the webhook from the environment (a loopback HTTP server here)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import pytest

from featurelake.monitoring.alerts import WEBHOOK_VAR, alert_on_failure
from featurelake.orchestration import default_args


@pytest.fixture
def webhook():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"type": self.headers["Content-Type"], "body": json.loads(body)})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def context():
    ti = SimpleNamespace(dag_id="feature_pipeline", task_id="monitor_report", try_number=2, log_url="http://x/log")
    return {"task_instance": ti, "run_id": "manual__1", "exception": RuntimeError("view late\ndetails")}


def test_failure_callback_posts_the_task_and_error(webhook, monkeypatch, settings):
    url, received = webhook
    monkeypatch.setenv(WEBHOOK_VAR, url)
    callback = default_args(settings)["on_failure_callback"]
    assert callback is alert_on_failure
    callback(context())
    assert len(received) == 1 and received[0]["type"] == "application/json"
    body = received[0]["body"]
    assert body["dag_id"] == "feature_pipeline" and body["task_id"] == "monitor_report"
    assert body["run_id"] == "manual__1" and body["try_number"] == 2
    assert body["text"] == "featurelake: task feature_pipeline.monitor_report failed (run manual__1): view late"


def test_no_webhook_sends_nothing_and_a_dead_webhook_does_not_raise(webhook, monkeypatch):
    url, received = webhook
    monkeypatch.delenv(WEBHOOK_VAR, raising=False)
    alert_on_failure(context())
    monkeypatch.setenv(WEBHOOK_VAR, "http://127.0.0.1:9/nothing-listens-here")
    alert_on_failure(context())
    assert received == []
