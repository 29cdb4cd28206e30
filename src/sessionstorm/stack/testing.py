"""pytest plugin (entry point ``sessionstorm``): a real stack for tests.

``sessionstorm_stack`` is one stack per pytest-xdist worker (per session without xdist).
Measured against one stack shared by all workers through a file lock (bench/stack.py, 2
loaded cores): sharing was 1.15x faster at -n 2 (7.6 vs 8.7 s) and 1.5x at -n 4 (8.9 vs
13.3 s), i.e. it saves one ~1.6 s stack start per extra worker. Isolation still wins: the
provider's faults are switched at run time for the whole provider (a fault test on one
worker would hit the others' tests), a shared stack must outlive the worker that started
it (a detached process nobody reaps if the last worker is killed), and workers still need
their own targets and databases.

``sessionstorm_start_target(command, env=..., name=..., ready_path=...)`` starts a target
with its own database and Redis db for one test; it is stopped after the test.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the stack is imported when a test asks for it, not on every pytest start
    from sessionstorm.stack import Stack, TargetHandle


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--sessionstorm-backend", default=None,
                     help="stack backend for the sessionstorm_stack fixture (default: SESSIONSTORM_BACKEND or embedded)")


@pytest.fixture(scope="session")
def sessionstorm_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A started stack (PostgreSQL, Redis, stub provider) for this worker's session."""
    from sessionstorm.stack import Stack

    with Stack(request.config.getoption("--sessionstorm-backend")) as stack:
        yield stack


@pytest.fixture
def sessionstorm_start_target(sessionstorm_stack: Stack) -> Iterator[Callable[..., TargetHandle]]:
    """Start targets for one test; each is stopped when the test ends."""
    started: list[TargetHandle] = []

    def start(command: list[str], **kwargs: Any) -> TargetHandle:
        handle = sessionstorm_stack.start_target(command, **kwargs)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()
