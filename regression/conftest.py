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
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sessionstorm.profile import Profile, load_profile
from sessionstorm.profiles import REFERENCE
from sessionstorm.stack.launch import RunningTarget, attach, launch, provider_args

if TYPE_CHECKING:
    from sessionstorm.run import Run
# sessionstorm.run, .driver and .scenarios (httpx, Faker, DuckDB: ~0.5 s) are imported by the
# tests that run scenarios, not here: xdist's controller loads this file before it starts
# the workers, and runs no test itself.

ROOT = Path(__file__).resolve().parent.parent
REPORTS = Path(os.environ.get("SESSIONSTORM_REPORTS", ROOT / "reports")) / "regression"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--target-profile", default=os.environ.get("SESSIONSTORM_TARGET_PROFILE"),
                     help="target profile (TOML) of the service under test; default: the reference target")


@pytest.hookimpl(optionalhook=True)  # without xdist (-p no:xdist) the hook is unknown, not an error
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: two workers per core, at most 8 (PYTEST_XDIST_AUTO_NUM_WORKERS overrides,
    as in xdist). The suite mostly waits -- fault windows and restarts, the stub provider's
    token delays, bursts held for their last byte -- so two workers share a core well: on 2
    shared cores, back to back, -n 2 took 71 s and -n 4 40 s (with 2 workers about one core
    was busy)."""
    env = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")
    if env and env.isdigit():
        return int(env)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(cores, min(2 * cores, 8))


# The order tests are handed out in (xdist's load scheduling sends them in collection order,
# two at a time at first). Long ones first, so none is the suite's tail while the other
# workers sit idle: the two split-endpoint tests (the longest) each beside a bug-zoo test, so
# two workers start one each. Every module's tests stay together, and the fault module comes
# last: entering it stops the worker's targets (faults restart the stack's parts), so a
# test of another module after it would start them again (~0.7 s of CPU and ~1.5 s each).
_ORDER = ("test_split_endpoints.py::", "test_bug_zoo.py::", "test_clean.py::", "test_faults.py::test_fault_reveals_bug",
          "test_faults.py::test_bug_is_invisible", "test_faults.py::")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((i for i, key in enumerate(_ORDER) if key in item.nodeid), len(_ORDER))

    items.sort(key=rank)  # stable: the module's order within a group
    split = [i for i in items if rank(i) == 0]
    if split:  # each split test followed by another module's, so the first chunks part them
        rest = items[len(split):]
        paired = [t for pair in zip(split, rest) for t in pair]
        items[:] = paired + split[len(paired) // 2:] + rest[len(paired) // 2:]


def pytest_configure(config: pytest.Config) -> None:
    if not config.option.xmlpath and not hasattr(config, "workerinput"):
        REPORTS.mkdir(parents=True, exist_ok=True)
        config.option.xmlpath = str(REPORTS / "junit.xml")


@pytest.fixture(scope="session")
def profile(request: pytest.FixtureRequest) -> Profile:
    path = request.config.getoption("--target-profile")
    return load_profile(path) if path else reference_profile()


def reference_profile() -> Profile:
    """The reference target's profile without its latency limits (p99 5 s: a soak's): on a CI
    machine beside other work, or 4 CPU hogs, a latency is the machine's, and the suite judges
    safety and availability only (tests never assert on timing). Your profile's limits stay."""
    p = load_profile(str(REFERENCE))
    t = p.thresholds
    return replace(p, thresholds=replace(t, p50_ms=None, p95_ms=None, p99_ms=None, ttft_p95_ms=None))


@pytest.fixture(scope="session")
def is_reference(request: pytest.FixtureRequest) -> bool:
    return not request.config.getoption("--target-profile")


@pytest.fixture(scope="session")
def suite_stack(profile: Profile, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The stack of this worker's tests: the plugin's, or one of the suite's own when the
    profile's [provider] table sets the provider. Fault tests act on it too (see test_faults)."""
    if profile.target.base_url:
        yield None
    elif provider_args(profile):
        from sessionstorm.stack import Stack
        with Stack(request.config.getoption("--sessionstorm-backend"), provider_args=provider_args(profile)) as stack:
            yield stack
    else:
        yield request.getfixturevalue("sessionstorm_stack")


class Targets:
    """Running targets by bug set, started on first use and reused by this worker's tests."""

    def __init__(self, profile: Profile, is_reference: bool, request: pytest.FixtureRequest) -> None:
        self.profile, self.is_reference, self.request = profile, is_reference, request
        self.started: dict[str, Future[RunningTarget]] = {}
        self._lock = threading.Lock()

    def __call__(self, bugs: str = "") -> RunningTarget:
        with self._lock:  # one start per bug set, even when two threads ask at once
            future, mine = self.started.get(bugs), False
            if future is None:
                future, mine = self.started.setdefault(bugs, Future()), True
        if mine:
            try:
                future.set_result(self._start(bugs))
            except BaseException as e:
                with self._lock:
                    self.started.pop(bugs, None)
                future.set_exception(e)
                raise
        return future.result()

    def many(self, *bug_sets: str) -> list[RunningTarget]:
        """Several at once (a bug and its clean twin): a start mostly waits for the new
        process to import and answer, so two cost about one."""
        with ThreadPoolExecutor(len(bug_sets), thread_name_prefix="regression-start") as pool:
            return list(pool.map(self, bug_sets))

    def _start(self, bugs: str) -> RunningTarget:
        if self.profile.target.base_url:
            return attach(self.profile)
        stack = self.request.getfixturevalue("suite_stack")  # set up already (see target_for)
        return launch(self.profile, stack, vars={"bugs": bugs} if self.is_reference else None,
                      name=(bugs or "clean").replace(",", "+"))

    def drop_all(self, keep: str | None = None) -> RunningTarget | None:
        """Stop them all: a fault test restarts the stack's parts, and a target that lived
        through that must not serve a later test as if nothing had happened. ``keep``: the
        target of that bug set is not stopped but handed to the caller (and forgotten here)."""
        with self._lock:
            started, self.started = self.started, {}
        ready = {b: f.result() for b, f in started.items() if f.done() and f.exception() is None}
        kept = ready.pop(keep, None) if keep is not None else None
        stop_all(list(ready.values()))
        return kept


def stop_all(targets: list[Any]) -> None:
    """Stop targets at once: each stop waits for its process to exit."""
    if targets:
        with ThreadPoolExecutor(len(targets), thread_name_prefix="regression-stop") as pool:
            list(pool.map(lambda t: t.stop(), targets))


@pytest.fixture(scope="session")
def target_for(profile: Profile, is_reference: bool, request: pytest.FixtureRequest) -> Iterator[Targets]:
    """A running target per bug set (one per worker, reused by its tests)."""
    if not profile.target.base_url:
        request.getfixturevalue("suite_stack")  # here, not from a thread that starts a target
    targets = Targets(profile, is_reference, request)
    yield targets
    targets.drop_all()


@pytest.fixture
def run_checked(request: pytest.FixtureRequest) -> Callable[..., dict[str, Any]]:
    """Run a scenario into its own run folder and check it: returns results.json plus `where`.

    ``until(run, driver) -> bool`` ends a steady run early (`Steady.until`), e.g. once its
    faults are over and every kind has recovered. With faults it also gets ``run.fault_gate``
    to open: fault times count from then (`sessionstorm.nemesis.Nemesis`), not from the
    run's start, so a fault lands on the running load however long the preparation took."""

    def run(scenario: str, target: RunningTarget, faults: tuple[str, ...] = (), fault_stack: Any = None,
            thresholds: dict[str, float] | None = None, until: Callable[[Run, Any], bool] | None = None,
            **overrides: int) -> dict[str, Any]:
        """``faults``: specs as --fault takes them, acting on ``fault_stack`` (and the target)."""
        from sessionstorm.driver import run_scenario
        from sessionstorm.run import Run
        from sessionstorm.scenarios import SCENARIOS

        r = Run(scenario, driver="regression", target=target, reports_dir=REPORTS / _safe(request.node.name),
                settings=overrides, faults=faults, fault_stack=fault_stack, thresholds=thresholds)
        if faults and until is not None:
            r.fault_gate = threading.Event()  # read by nemesis.start_for
        r.start()
        sc = SCENARIOS[scenario] if until is None else SCENARIOS[scenario].until(lambda d: until(r, d))
        try:  # r.target: a drop fault puts a proxy in front of the target
            r.settings = asyncio.run(run_scenario(sc, r.target, r.dir, wire=r.wire, **overrides)).settings
        finally:
            results = r.finish()
        results["where"] = str(r.dir.path)
        results["summary"] = "\n".join(r.summary())
        return results

    return run


@pytest.fixture
def run_pair(run_checked: Callable[..., dict[str, Any]]) -> Callable[..., tuple[dict[str, Any], dict[str, Any]]]:
    """The same scenario against two targets at the same time (a bug and its clean twin):
    each run gets the machine exactly as busy as the other, and the pair costs one run's wait."""

    def pair(scenario: str, a: RunningTarget, b: RunningTarget, **overrides: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        with ThreadPoolExecutor(2, thread_name_prefix="regression-pair") as pool:
            fa, fb = (pool.submit(run_checked, scenario, t, **overrides) for t in (a, b))
            return fa.result(), fb.result()

    return pair


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:120]
