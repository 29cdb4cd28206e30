"""The exact, barrier-synchronised driver of the regression suite (httpx, asyncio).

    target = launch(profile, stack)           # sessionstorm.stack.launch; or attach(load_profile(...))
    result = await run_scenario(SharedKey, target, RunDir.create("shared_key"), users=20)
    check_run(result.run_dir)                 # sessionstorm.checker

A scenario is a class with class attributes (``users``, ``rounds``, ...); its ``run``
fires bursts: N operations built first, then released together through an
``asyncio.Barrier``, so they overlap on the target as tightly as one event loop
allows. Every op is written to the run's history, whatever happens to it: a timeout
or reset is outcome ``info``, never an exception. Each scenario ends with a snapshot
of the profile's SQL invariants (``when="after"``).
"""
from __future__ import annotations

import asyncio
import copy
import itertools
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sessionstorm.errors import ConfigError
from sessionstorm.history import HistoryWriter, process_name
from sessionstorm.rundir import RunDir
from sessionstorm.scenarios import SCENARIOS, Scenario
from sessionstorm.checker.online import check_op
from sessionstorm.endpoints import SpreadTransport, peer_of
from sessionstorm.exchange import Exchange
from sessionstorm.run import Wire
from sessionstorm.workload import snapshots
from sessionstorm.workload.keys import make_keys
from sessionstorm.stack.launch import RunningTarget
from sessionstorm.tls import shared_ssl_context
from sessionstorm.workload.op import Request
from sessionstorm.workload.prompts import PromptMaker

_PROMPT_POOLS: dict[str, PromptMaker] = {}
_POOLS_LOCK = threading.Lock()


def prompt_maker(llm: str, seed: int | None) -> PromptMaker:
    """A PromptMaker for one driver. Unseeded, it draws from this process's pools (built once
    per ``llm``) with its own random generator: building the pools with Faker cost about 0.5 s
    of CPU, once per run, and the suite makes dozens of runs per worker. The pools are only
    read after they are built, and each driver's draws are its own. Seeded, it is built from
    the seed (the same seed, the same prompts)."""
    if seed is not None:
        return PromptMaker(llm, seed=seed)
    with _POOLS_LOCK:
        if llm not in _PROMPT_POOLS:
            _PROMPT_POOLS[llm] = PromptMaker(llm)
        maker = copy.copy(_PROMPT_POOLS[llm])
    maker.rng = random.Random()
    return maker


POOL_SHARD = 8  # connections per client (see Driver.__init__)
KEEPALIVE_EXPIRY_S = 1.5  # below the keep-alive of the servers a run meets (gunicorn 2 s, uvicorn 5 s)


class Driver:
    """The httpx clients of a run, one history, and the in-flight count of what they send."""

    def __init__(self, target: RunningTarget, history: HistoryWriter, *, timeout_s: float | None = None,
                 max_connections: int = 100, seed: int | None = None, stop: threading.Event | None = None,
                 wire: Wire | None = None) -> None:
        self.target, self.profile, self.history = target, target.profile, history
        self.timeout_s = timeout_s if timeout_s is not None else self.profile.target.timeout_s
        self.prompts = prompt_maker(self.profile.target.llm, seed)
        self.in_flight = 0
        self.tag = secrets.token_hex(3)  # makes user ids fresh per run against a long-lived target
        self.ops: list[dict[str, Any]] = []
        self.stop = stop or threading.Event()
        self.wire = wire or Wire()
        # Several clients of POOL_SHARD connections, taken in turn: httpcore's pool walks all its
        # connections (a poll() each, and a quadratic idle count) on every request and reply, so
        # one pool of a 50-request burst's connections cost a third of the driver's CPU. Taken
        # in turn, a burst of n puts at most n/shards on each, within its limit.
        # Idle connections expire well before a server's keep-alive (uvicorn: 5 s, httpx's own
        # default too): at equal timeouts a request sent as the server closes is a ReadError,
        # seen on a busy machine when a burst came ~5 s after the pool was warmed.
        shards = -(-max_connections // POOL_SHARD)
        per_client = -(-max_connections // shards)
        limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client,
                              keepalive_expiry=KEEPALIVE_EXPIRY_S)
        tls = shared_ssl_context()
        timeout = httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 5.0))
        self._clients = [httpx.AsyncClient(
            base_url=target.url, timeout=timeout, limits=limits, verify=tls,
            transport=(SpreadTransport(self.wire.spreader, limits=limits, verify=tls)
                       if self.wire.spreader is not None else None)) for _ in range(shards)]
        self._turn = itertools.count()

    @property
    def _client(self) -> httpx.AsyncClient:
        """The next client in turn."""
        return self._clients[next(self._turn) % len(self._clients)]

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self._clients))

    async def __aenter__(self) -> Driver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def send(self, req: Request) -> dict[str, Any]:
        """Send one request and record its op; never raises for what the network does.
        A request the rails hold back (cap reached, run aborted) is not sent and not recorded."""
        wire = self.wire
        if wire.rails is not None and not await wire.rails.acquire_async():
            self.stop.set()
            return req.op
        self.in_flight += 1
        ex = Exchange(req, self.in_flight, wire.redact)
        try:
            # The whole op, stream included, is bounded: httpx's timeout is per read.
            async with asyncio.timeout(self.timeout_s * 2):
                if ex.streamed:
                    await self._stream(req, ex)
                else:
                    r = await self._client.request(req.method, req.path, headers=req.headers, content=req.body)
                    ex.connected(peer_of(r))
                    ex.reply(r.status_code, r.headers, r.content)
        except (httpx.TransportError, TimeoutError) as e:
            ex.transport(e if str(e) or not isinstance(e, TimeoutError)
                         else TimeoutError(f"op deadline {self.timeout_s * 2:g}s"))
        except BaseException as e:  # cancelled (Ctrl-C): recorded as unknown, then passed on
            ex.transport(e, event="cancelled")
            raise
        finally:
            self.in_flight -= 1
            op = ex.finish()
            self.history.op(**op)
            self.ops.append(op)
            if wire.rails is not None and wire.rails.record(op["outcome"]):
                self.stop.set()  # the error rate tripped the abort: no new burst
            if wire.metrics is not None:
                wire.metrics.observe_op(op)
                for code, _ in check_op(op):
                    wire.metrics.anomaly(code)
        return op

    async def _stream(self, req: Request, ex: Exchange) -> None:
        async with self._client.stream(req.method, req.path, headers=req.headers, content=req.body) as r:
            ex.connected(peer_of(r))
            ex.begin(r.status_code, r.headers)
            try:
                async for data in r.aiter_bytes():
                    ex.feed(data, time.monotonic())
            except (httpx.TransportError, TimeoutError) as e:
                ex.end_stream(e)  # keep the chunks that did arrive
                return
            ex.end_stream()

    async def burst(self, requests: Sequence[Request], label: str = "burst") -> list[dict[str, Any]]:
        """Release all requests together (built beforehand, so building costs no skew)."""
        if not requests or self.stop.is_set():
            return []
        barrier = asyncio.Barrier(len(requests))

        async def one(req: Request) -> dict[str, Any]:
            await barrier.wait()
            return await self.send(req)

        self.history.event("phase", name=label, size=len(requests))
        self._turn = itertools.count()  # from the first client, as warm() did: its connections are open
        return list(await asyncio.gather(*(one(r) for r in requests)))

    async def warm(self, n: int) -> None:
        """Open up to n pooled connections, so a burst does not pay connection setup unevenly."""
        async def ping() -> None:
            try:
                await self._client.get(self.profile.target.ready_path)
            except httpx.HTTPError:
                pass  # warming is best effort; the burst records what really happens
        self._turn = itertools.count()  # a burst of n takes the clients in the same turns (see burst)
        await asyncio.gather(*(ping() for _ in range(n)))

    async def snapshot(self, when: str) -> list[dict[str, Any]]:
        """Run every SQL invariant against the target's database; one snapshot event each."""
        results = await snapshots.take(self.target.dsn, self.profile.invariants, when)
        for data in results:
            self.history.event("snapshot", **data)
        return results

    async def keys(self, users: Sequence[str]) -> dict[str, str]:
        return await asyncio.to_thread(make_keys, self.target, list(users))


@dataclass
class ScenarioResult:
    scenario: str
    run_dir: RunDir
    history: Path
    ops: int
    outcomes: dict[str, int]
    duration_s: float
    snapshots: list[dict[str, Any]]
    settings: dict[str, int]


SNAPSHOT_EVERY_S = 1.0  # invariants are also read while the load runs: a transient duplicate counts


async def _snapshots_during(d: Driver, done: asyncio.Event) -> None:
    """Every SNAPSHOT_EVERY_S until ``done``; stopped between snapshots, never inside one: a
    connect cancelled halfway leaves asyncpg a future nobody reads, printed at exit as
    "Future exception was never retrieved" (24 in 300 cancelled snapshots, measured)."""
    while True:
        try:
            await asyncio.wait_for(done.wait(), SNAPSHOT_EVERY_S)
            return
        except TimeoutError:
            await d.snapshot("during")


async def run_scenario(scenario: type[Scenario] | str, target: RunningTarget, run_dir: RunDir,
                       seed: int | None = None, stop: threading.Event | None = None, wire: Wire | None = None,
                       **overrides: int) -> ScenarioResult:
    """Run one scenario against a running target into ``run_dir``'s history; returns what
    was recorded. ``stop`` set: no new burst starts (the one in flight completes).

    The verdict is the checker's (through `sessionstorm.run.Run.finish`).
    """
    if isinstance(scenario, str):
        if scenario not in SCENARIOS:
            raise ConfigError("scenario", scenario, f"one of {', '.join(SCENARIOS)}", "pick a listed scenario")
        scenario = SCENARIOS[scenario]
    sc = scenario(**overrides)
    if not sc.supports(target):
        raise ConfigError("scenario", sc.name, f"a target speaking {sc.flavor}",
                          f"add {sc.flavor!r} to target.flavors or pick another scenario")
    history_path = run_dir.history_path(process_name("driver"))
    started = time.time()
    with HistoryWriter(history_path, process=process_name("driver")) as history:
        async with Driver(target, history, seed=seed, max_connections=max(sc.widest(), 10), stop=stop,
                          wire=wire) as d:
            history.event("phase", name="start", scenario=sc.name, settings=sc.settings())
            await d.warm(sc.widest())
            done = asyncio.Event()
            during = asyncio.create_task(_snapshots_during(d, done))
            try:
                await sc.run(d)
            finally:
                done.set()  # a snapshot in flight ends first, within a bound (a paused database is not waited out)
                await asyncio.gather(asyncio.wait_for(during, 2 * SNAPSHOT_EVERY_S), return_exceptions=True)
                snapshots = await d.snapshot("after")
                history.event("phase", name="end", scenario=sc.name)
            ops = d.ops
    duration = time.time() - started
    outcomes = dict(Counter(op.get("outcome") for op in ops))
    return ScenarioResult(sc.name, run_dir, history_path, len(ops), outcomes, duration, snapshots, sc.settings())
