"""Real runs for the report tests: the reference target on the plugin's stack, driven and checked."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from sessionstorm.checker import check_run
from sessionstorm.driver import run_scenario
from sessionstorm.profiles import REFERENCE
from sessionstorm.rundir import RunDir
from sessionstorm.stack.launch import RunningTarget, launch
from sessionstorm.profile import load_profile



@pytest.fixture(scope="session")
def reference(sessionstorm_stack) -> Callable[[str], RunningTarget]:
    """The reference target with a bug set, started once per worker: reference("no-request-id")."""
    started: dict[str, RunningTarget] = {}

    def get(bugs: str = "") -> RunningTarget:
        if bugs not in started:
            started[bugs] = launch(load_profile(REFERENCE), sessionstorm_stack, vars={"bugs": bugs},
                                   name=f"report-{bugs or 'clean'}")
        return started[bugs]
    return get


@pytest.fixture
def checked_run(reference, tmp_path) -> Callable[..., tuple[Path, dict[str, Any]]]:
    """Run a scenario against the reference target and check it: (run folder, results)."""
    def run(scenario: str, bugs: str = "", **overrides: int) -> tuple[Path, dict[str, Any]]:
        run_dir = RunDir.create(scenario, root=tmp_path / "reports")
        target = reference(bugs)
        with ThreadPoolExecutor(1) as pool:  # its own thread: Playwright's sync API holds this one's loop
            pool.submit(asyncio.run, run_scenario(scenario, target, run_dir, **overrides)).result()
        return run_dir.path, check_run(run_dir)
    return run
