"""pytest plugin (entry point ``sessionstorm``): a real stack for tests.

One stack per pytest-xdist worker: an embedded stack starts in about a second, so
sharing one across workers through a file lock would save ~1 s per worker but couple
their databases, Redis and provider faults; isolation wins.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from sessionstorm.stack import Stack, TargetHandle


@pytest.fixture(scope="session")
def sessionstorm_stack() -> Iterator[Stack]:
    with Stack(os.environ.get("SESSIONSTORM_BACKEND")) as stack:
        yield stack


@pytest.fixture
def start_target(sessionstorm_stack: Stack) -> Iterator[Callable[..., TargetHandle]]:
    """Start targets for one test (``start_target(command, env=..., name=...)``); stopped after it."""
    started: list[TargetHandle] = []

    def start(command: list[str], **kwargs: object) -> TargetHandle:
        handle = sessionstorm_stack.start_target(command, **kwargs)  # type: ignore[arg-type]
        started.append(handle)
        return handle

    yield start
    for h in started:
        h.stop()
        if h in sessionstorm_stack.targets:
            sessionstorm_stack.targets.remove(h)
