"""The regression suite: every scenario against the clean target, and the bug zoo.

Runs against the reference target (sessionstorm/profiles/reference.toml) on the stack of the
``sessionstorm`` pytest plugin, one stack per xdist worker. Point it at your own service
with ``--target-profile FILE`` (or SESSIONSTORM_TARGET_PROFILE): the same scenarios run
against it and the bug-zoo tests skip. Each test leaves a run folder (with report.html) under
reports/regression/ and the suite writes JUnit XML to reports/regression/junit.xml: one
test case per scenario, the anomaly summary and the report path in a failure's message.
"""
from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sessionstorm.driver import run_scenario
from sessionstorm.profiles import REFERENCE
from sessionstorm.run import Run
from sessionstorm.scenarios import SCENARIOS
from sessionstorm.stack.launch import RunningTarget, attach, launch, provider_args
from sessionstorm.profile import Profile, load_profile

ROOT = Path(__file__).resolve().parent.parent
REPORTS = Path(os.environ.get("SESSIONSTORM_REPORTS", ROOT / "reports")) / "regression"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--target-profile", default=os.environ.get("SESSIONSTORM_TARGET_PROFILE"),
                     help="target profile (TOML) of the service under test; default: the reference target")


def pytest_configure(config: pytest.Config) -> None:
    if not config.option.xmlpath and not hasattr(config, "workerinput"):
        REPORTS.mkdir(parents=True, exist_ok=True)
        config.option.xmlpath = str(REPORTS / "junit.xml")


@pytest.fixture(scope="session")
def profile(request: pytest.FixtureRequest) -> Profile:
    path = request.config.getoption("--target-profile")
    return load_profile(path or str(REFERENCE))


@pytest.fixture(scope="session")
def is_reference(request: pytest.FixtureRequest) -> bool:
    return not request.config.getoption("--target-profile")


@pytest.fixture(scope="session")
def target_for(profile: Profile, is_reference: bool, request: pytest.FixtureRequest) -> Iterator[Callable[[str], RunningTarget]]:
    """A running target per bug set (one per worker, reused by its tests)."""
    started: dict[str, RunningTarget] = {}
    own: list[Any] = []  # a stack of the suite's own when the profile's [provider] table sets the provider

    def get(bugs: str = "") -> RunningTarget:
        if bugs not in started:
            if profile.target.base_url:
                started[bugs] = attach(profile)
            else:
                if provider_args(profile) and not own:
                    from sessionstorm.stack import Stack
                    own.append(Stack(request.config.getoption("--sessionstorm-backend"),
                                     provider_args=provider_args(profile)).start())
                stack = own[0] if own else request.getfixturevalue("sessionstorm_stack")
                started[bugs] = launch(profile, stack, vars={"bugs": bugs} if is_reference else None,
                                       name=(bugs or "clean").replace(",", "+"))
        return started[bugs]

    yield get
    for stack in own:
        stack.stop()


@pytest.fixture
def run_checked(request: pytest.FixtureRequest) -> Callable[..., dict[str, Any]]:
    """Run a scenario into its own run folder and check it: returns results.json plus `where`."""

    def run(scenario: str, target: RunningTarget, faults: tuple[str, ...] = (), fault_stack: Any = None,
            thresholds: dict[str, float] | None = None, **overrides: int) -> dict[str, Any]:
        """``faults``: specs as --fault takes them, acting on ``fault_stack`` (and the target)."""
        r = Run(scenario, driver="regression", target=target, reports_dir=REPORTS / _safe(request.node.name),
                settings=overrides, faults=faults, fault_stack=fault_stack, thresholds=thresholds).start()
        try:  # r.target: a drop fault puts a proxy in front of the target
            r.settings = asyncio.run(run_scenario(SCENARIOS[scenario], r.target, r.dir, wire=r.wire, **overrides)).settings
        finally:
            results = r.finish()
        results["where"] = str(r.dir.path)
        results["summary"] = "\n".join(r.summary())
        return results

    return run


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:120]
