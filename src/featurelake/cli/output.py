"""What the commands print with: one console for results, one for errors, and the live display of steps."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress, ProgressColumn, SpinnerColumn, Task, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Column
from rich.text import Text

from featurelake import progress

# Output read from a file, a pipe or a task log (Airflow's) is not cut at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)

err_console = Console(stderr=True, soft_wrap=True)


def seconds(span: dt.timedelta | None) -> str:
    """A duration in seconds with one decimal, ``-`` when unknown."""
    return "-" if span is None else f"{span.total_seconds():.1f}"


class _Mark(ProgressColumn):
    """A spinner while a step runs, then ✓ when it succeeded or ✗ when it failed."""

    spinner = SpinnerColumn()

    def render(self, task: Task) -> Text:
        if task.fields["failed"]:
            return Text("✗", style="bold red")
        return Text("✓", style="green") if task.finished else self.spinner.render(task)  # type: ignore[return-value]


class _Step:
    def __init__(self, display: Steps, label: str, task: TaskID | None = None):
        self.display, self.label = display, label
        if task is None:
            task = display.bar.add_task(label, total=None, detail="", failed=False)
            if display.lines:
                console.print(f"start  {label}", highlight=False)
        self.task = task

    def done(self, rows: int | None = None) -> None:
        self._end("" if rows is None else f"{rows:,} rows", failed=False)

    def failed(self, outcome: str) -> None:
        self._end(outcome, failed=True)

    def _end(self, detail: str, *, failed: bool) -> None:
        bar = self.display.bar
        bar.update(self.task, total=1, completed=0 if failed else 1, detail=detail, failed=failed)
        bar.stop_task(self.task)
        if self.display.lines:
            mark = "FAILED" if failed else "done"
            seconds = next(t.elapsed for t in bar.tasks if t.id == self.task) or 0
            console.print(
                "  ".join(filter(None, [f"{mark:6} {self.label}", detail, f"({seconds:.0f}s)"])), highlight=False
            )


class Steps:
    """Steps shown as they run: a live list on a terminal (mark, label, rows or outcome, elapsed time).

    Elsewhere nothing, or with ``lines`` a line as each step starts and ends (a log then shows what happened).
    """

    def __init__(self, *, lines: bool = False):
        self.lines = lines and not console.is_terminal
        columns = (
            _Mark(),
            TextColumn("{task.description}", table_column=Column(overflow="fold")),
            TextColumn("{task.fields[detail]}", table_column=Column(no_wrap=True)),
            TimeElapsedColumn(),
        )
        self.bar = Progress(*columns, console=console, disable=not console.is_terminal)

    def start(self, label: str) -> _Step:
        return _Step(self, label)


@contextmanager
def show_steps(*, lines: bool = False) -> Iterator[Steps]:
    """Show the steps the library reports while the block runs; a step left unfinished by an error is marked ✗."""
    steps = Steps(lines=lines)
    with steps.bar, progress.reporting(steps):
        try:
            yield steps
        except BaseException:
            for task in steps.bar.tasks:
                if not task.finished and not task.fields["failed"]:
                    _Step(steps, task.description, task.id).failed("failed")
            raise
