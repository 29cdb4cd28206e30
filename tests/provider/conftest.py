"""Fixtures: stub providers as processes (see stub_process.py), one per module and mode."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from stub_process import FAST, Running, start_provider, stop_provider


@pytest.fixture(scope="module")
def proxy_router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_provider(tmp_path_factory.mktemp("proxy_router"), "--mode", "proxy-router", "--models", "3",
                             "--seed", "11", *FAST)
    yield running
    stop_provider(running)


@pytest.fixture(scope="module")
def openai_stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_provider(tmp_path_factory.mktemp("openai_stub"), *FAST)
    yield running
    stop_provider(running)
