"""Progress display for long work: a rich bar with ETA and the key metric, or plain log lines.

With ``quiet`` (or when stderr is not a terminal) a log line is printed every ``log_every`` iterations
instead, so that CI logs and files stay readable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")


def _fmt_metric(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class ProgressReporter:
    """``with ProgressReporter(total, "train", key) as p: p.update(i, metrics)``."""

    def __init__(
        self,
        total: int,
        description: str,
        key_metric: str | None = None,
        *,
        quiet: bool = False,
        log_every: int | None = None,
        start: int = 0,
        console: Console | None = None,
    ) -> None:
        self.total = total
        self.description = description
        self.key_metric = key_metric
        self.console = console or Console(stderr=True)
        self.fancy = not quiet and self.console.is_terminal
        self.log_every = log_every or max(1, total // 10)
        self.start = start
        self._t0 = time.monotonic()
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> ProgressReporter:
        if self.fancy:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[metric]}"),
                console=self.console,
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(
                self.description, total=self.total, completed=self.start, metric=""
            )
        return self

    def update(self, done: int, metrics: dict[str, Any] | None = None) -> None:
        metric = ""
        if metrics and self.key_metric and self.key_metric in metrics:
            metric = f"{self.key_metric}={_fmt_metric(metrics[self.key_metric])}"
        if self._progress is not None:
            self._progress.update(self._task, completed=done, metric=metric)
        elif done % self.log_every == 0 or done == self.total:
            elapsed = time.monotonic() - self._t0
            rate = (done - self.start) / elapsed if elapsed > 0 else 0.0
            eta = (self.total - done) / rate if rate > 0 else float("nan")
            print(
                f"[{self.description}] {done}/{self.total} {metric} elapsed={elapsed:.0f}s eta={eta:.0f}s",
                file=sys.stderr,
                flush=True,
            )

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)


def make_tracker(quiet: bool, console: Console | None = None) -> Any:
    """A ``track(iterable, description, total)`` function for BenchContext."""

    def track(iterable: Iterable[T], description: str = "", total: int | None = None) -> Iterator[T]:
        items = iterable
        n = total if total is not None else (len(items) if hasattr(items, "__len__") else None)  # type: ignore[arg-type]
        if n is None:
            yield from items
            return
        with ProgressReporter(n, description or "working", quiet=quiet, console=console) as rep:
            for i, item in enumerate(items, 1):
                yield item
                rep.update(i)

    return track
