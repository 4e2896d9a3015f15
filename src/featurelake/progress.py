"""Progress of long work: the engines report their steps (a view's tiles, a publish, a join), a front end shows them.

Silent unless a reporter is installed (the ``featurelake`` CLI installs a live display on a terminal). One
reporter for the process, not per thread: a compute run reports from its view threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Step(Protocol):
    def done(self, rows: int | None = None) -> None:
        """The step finished, having written ``rows`` rows (None: not counted)."""

    def failed(self, outcome: str) -> None:
        """The step ended without success (``outcome`` says how: failed, up for retry...)."""


class Reporter(Protocol):
    def start(self, label: str) -> Step:
        """A step began."""


class _Silent:
    def start(self, label: str) -> _Silent:
        return self

    def done(self, rows: int | None = None) -> None:
        pass

    def failed(self, outcome: str) -> None:
        pass


_reporter: Reporter = _Silent()


def step(label: str) -> Step:
    """Report that the step ``label`` began; call ``done(rows)`` (or ``failed``) on the result when it ended.

    A step an exception interrupts needs no call: the reporter marks what it left unfinished."""
    return _reporter.start(label)


@contextmanager
def reporting(reporter: Reporter) -> Iterator[None]:
    """Send the steps reported while the block runs to ``reporter``."""
    global _reporter
    previous, _reporter = _reporter, reporter
    try:
        yield
    finally:
        _reporter = previous
