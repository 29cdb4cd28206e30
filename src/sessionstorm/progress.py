"""Progress on long work (`check`, `report`, `compare` of large runs), on a terminal only.

A bar (Rich) is drawn on stderr when stderr is a terminal and the work is still going
``DELAY_S`` after it began, so a small run shows nothing; it is erased when the work is
done. Off a terminal (pipes, CI logs, tests) nothing is printed and nothing is added to
the callers' loops: `for_files` and `steps` return None, and a None callback costs the
history reader nothing per record (see `sessionstorm.history.iter_records`).

Callbacks are called rarely: the history reader reports every ``history.PROGRESS_LINES``
records (bytes read over the total size of the history files), a multi-step command
once per step.
"""
from __future__ import annotations

import atexit
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

# work done sooner than this never shows a bar (tests set 0: a fast machine must still show one)
DELAY_S = float(os.environ.get("SESSIONSTORM_PROGRESS_DELAY_S", "0.5"))

Update = Callable[[int], None]


def on_terminal(stream: TextIO | None = None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):  # closed or replaced stream
        return False


class Bar:
    """One Rich progress bar, started lazily (after DELAY_S) and closed once done reaches total."""

    def __init__(self, description: str, total: int, unit: str, stream: TextIO) -> None:
        self.description, self.total, self.unit, self.stream = description, max(total, 1), unit, stream
        self.t0 = time.monotonic()
        self._progress: Any = None
        self._task: Any = None
        self.closed = False

    def update(self, done: int) -> None:
        if self.closed:
            return
        if done >= self.total:
            self.close()
            return
        if self._progress is None:
            if time.monotonic() - self.t0 < DELAY_S:
                return
            self._start()
        self._progress.update(self._task, completed=done)
        self._progress.refresh()  # no refresh thread: the caller's thread draws, so gevent or a busy loop is no problem

    def describe(self, text: str) -> None:
        self.description = text
        if self._progress is not None:
            self._progress.update(self._task, description=text)

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        amount = DownloadColumn() if self.unit == "bytes" else MofNCompleteColumn()
        self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(), amount,
                                  TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                  console=Console(file=self.stream), transient=True, auto_refresh=False)
        self._progress.start()
        self._task = self._progress.add_task(self.description, total=self.total)
        atexit.register(self.close)  # an exception mid-way must not leave the terminal's cursor hidden

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._progress is not None:
            self._progress.stop()
            atexit.unregister(self.close)


def bar(description: str, total: int, unit: str = "bytes", stream: TextIO | None = None) -> Bar | None:
    """A bar over `total` units, or None when the output is not a terminal."""
    stream = sys.stderr if stream is None else stream
    return Bar(description, total, unit, stream) if on_terminal(stream) else None


def for_files(description: str, files: Sequence[str | os.PathLike[str]], stream: TextIO | None = None) -> Update | None:
    """An update(bytes_read) callback over the files' total size, or None off a terminal.
    The bar closes itself when bytes_read reaches the total."""
    if not on_terminal(stream):
        return None
    total = 0
    for f in files:
        try:
            total += os.stat(f).st_size
        except OSError:
            pass
    b = bar(description, total, "bytes", stream)
    return b.update if b is not None else None


class Steps:
    """Named steps of a command (`compare`): step(name) before each, done() at the end."""

    def __init__(self, description: str, n: int, stream: TextIO | None = None) -> None:
        self.description, self._bar, self._i = description, bar(description, n, "steps", stream), 0

    def step(self, what: str) -> None:
        if self._bar is not None:
            self._bar.describe(f"{self.description}: {what}")
            self._bar.update(self._i)
        self._i += 1

    def done(self) -> None:
        if self._bar is not None:
            self._bar.close()
