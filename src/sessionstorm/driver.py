"""The exact, barrier-synchronised driver of the regression suite (httpx, asyncio).

    target = profile.launch(stack)            # or load_profile(...).attach()
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
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx

from sessionstorm.errors import ConfigError
from sessionstorm.history import HistoryWriter, process_name
from sessionstorm.rundir import RunDir
from sessionstorm.workload import PARSERS, STREAM_KINDS, conversation, gateway, observe, snapshots
from sessionstorm.workload.gateway import ChatStream
from sessionstorm.workload.keys import make_keys
from sessionstorm.workload.launch import RunningTarget
from sessionstorm.workload.op import Request, complete, start, transport_error
from sessionstorm.workload.prompts import PromptMaker



def _peer(response: httpx.Response) -> str | None:
    """The ip:port the connection really reached (getpeername of the socket used)."""
    stream = response.extensions.get("network_stream")
    addr = stream.get_extra_info("server_addr") if stream is not None else None
    return f"{addr[0]}:{addr[1]}" if addr else None


class Driver:
    """One httpx client, one history, and the in-flight count of what it sends."""

    def __init__(self, target: RunningTarget, history: HistoryWriter, *, timeout_s: float | None = None,
                 max_connections: int = 100, seed: int | None = None) -> None:
        self.target, self.profile, self.history = target, target.profile, history
        self.timeout_s = timeout_s if timeout_s is not None else self.profile.target.timeout_s
        self.prompts = PromptMaker(self.profile.target.llm, seed=seed)
        self.in_flight = 0
        self.tag = secrets.token_hex(3)  # makes user ids fresh per run against a long-lived target
        self.ops: list[dict[str, Any]] = []
        self._client = httpx.AsyncClient(
            base_url=target.url, timeout=httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 5.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Driver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def send(self, req: Request) -> dict[str, Any]:
        """Send one request and record its op; never raises for what the network does."""
        op = req.op
        self.in_flight += 1
        start(op, self.in_flight)
        try:
            # The whole op, stream included, is bounded: httpx's timeout is per read.
            async with asyncio.timeout(self.timeout_s * 2):
                if op["kind"] in STREAM_KINDS:
                    await self._stream(req)
                else:
                    r = await self._client.request(req.method, req.path, headers=req.headers, content=req.body)
                    op["peer"] = _peer(r)
                    PARSERS[op["kind"]](op, r.status_code, r.headers, r.content)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
            transport_error(op, e, sent=False)
        except (httpx.TransportError, TimeoutError) as e:
            transport_error(op, e if str(e) or not isinstance(e, TimeoutError)
                            else TimeoutError(f"op deadline {self.timeout_s * 2:g}s"), sent=True)
        finally:
            self.in_flight -= 1
            op.setdefault("outcome", "info")
            complete(op)
            self.history.op(**op)
            self.ops.append(op)
        return op

    async def _stream(self, req: Request) -> None:
        op = req.op
        async with self._client.stream(req.method, req.path, headers=req.headers, content=req.body) as r:
            op["peer"] = _peer(r)
            s = ChatStream(op)
            s.begin(r.status_code, r.headers)
            try:
                async for data in r.aiter_bytes():
                    s.feed(data, time.monotonic())
            except (httpx.TransportError, TimeoutError) as e:
                s.finish(e)  # keep the chunks that did arrive
                return
            s.finish()

    async def burst(self, requests: Sequence[Request], label: str = "burst") -> list[dict[str, Any]]:
        """Release all requests together (built beforehand, so building costs no skew)."""
        if not requests:
            return []
        barrier = asyncio.Barrier(len(requests))

        async def one(req: Request) -> dict[str, Any]:
            await barrier.wait()
            return await self.send(req)

        self.history.event("phase", name=label, size=len(requests))
        return list(await asyncio.gather(*(one(r) for r in requests)))

    async def warm(self, n: int) -> None:
        """Open up to n pooled connections, so a burst does not pay connection setup unevenly."""
        async def ping() -> None:
            try:
                await self._client.get(self.profile.target.ready_path)
            except httpx.HTTPError:
                pass  # warming is best effort; the burst records what really happens
        await asyncio.gather(*(ping() for _ in range(n)))

    async def snapshot(self, when: str) -> list[dict[str, Any]]:
        """Run every SQL invariant against the target's database; one snapshot event each."""
        results = await snapshots.take(self.target.dsn, self.profile.invariants, when)
        for data in results:
            self.history.event("snapshot", **data)
        return results

    async def keys(self, users: Sequence[str]) -> dict[str, str]:
        return await asyncio.to_thread(make_keys, self.target, list(users))


class Scenario:
    """A regression scenario. Subclass, set class attributes, write ``run``.

    Class attributes are the knobs; ``run_scenario(Cls, target, run_dir, users=20)``
    overrides them per run (integers >= 1).
    """

    name: ClassVar[str] = "scenario"
    flavor: ClassVar[str] = "gateway"
    users: ClassVar[int] = 10
    rounds: ClassVar[int] = 3
    keys: ClassVar[int] = 1         # distinct API keys the users share

    def __init__(self, **overrides: int) -> None:
        for k, v in overrides.items():
            if k not in self.knobs():
                raise ConfigError(k, v, f"one of {', '.join(self.knobs())}", f"pick an option of {self.name}")
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(k, v, "an integer >= 1", f"set {k} to a positive integer")
            setattr(self, k, v)

    @classmethod
    def knobs(cls) -> list[str]:
        return [k for c in reversed(cls.__mro__) for k, v in vars(c).items()
                if not k.startswith("_") and isinstance(v, int) and not isinstance(v, bool)]

    @classmethod
    def supports(cls, target: RunningTarget) -> bool:
        return cls.flavor in target.profile.target.flavors

    def settings(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in dict.fromkeys(self.knobs())}

    def widest(self) -> int:
        """The largest burst, for warming the connection pool."""
        return self.users

    async def user_keys(self, d: Driver) -> list[str | None]:
        keys = await d.keys([f"team-{i}" for i in range(self.keys)])
        return [keys.get(f"team-{i % self.keys}") for i in range(self.users)]

    async def run(self, d: Driver) -> None:
        raise NotImplementedError


class SharedKey(Scenario):
    """10 developers on one key, all asking at once: crosstalk if the gateway cannot tell them apart."""

    name = "shared_key"
    stream: ClassVar[bool] = False

    async def run(self, d: Driver) -> None:
        keys = await self.user_keys(d)
        model = d.profile.models.names[0]
        for r in range(self.rounds):
            await d.burst([gateway.build_chat(d.profile, d.prompts, key=keys[u], model=model, user=f"dev-{u}",
                                              stream=self.stream) for u in range(self.users)], f"round-{r}")


class StreamingSharedKey(SharedKey):
    """SharedKey with streamed replies: interleaved chunks show per chunk."""

    name = "streaming_shared_key"
    stream = True


class ModelSwitch(Scenario):
    """Rapid model switching on one key: each burst asks for every model at once."""

    name = "model_switch"
    users = 6
    rounds = 4

    async def run(self, d: Driver) -> None:
        keys, models = await self.user_keys(d), d.profile.models.names
        for r in range(self.rounds):
            await d.burst([gateway.build_chat(d.profile, d.prompts, key=keys[u], model=models[(r + u) % len(models)],
                                              user=f"dev-{u}") for u in range(self.users)], f"round-{r}")


class FirstMessages(Scenario):
    """3 concurrent first messages per user (racy get-or-create), then follow-up turns."""

    name = "first_messages"
    flavor = "conversation"
    users = 5
    concurrency = 3
    rounds = 3

    def widest(self) -> int:
        return self.users * self.concurrency

    async def run(self, d: Driver) -> None:
        keys = await self.user_keys(d)
        users = [f"user-{d.tag}-{u}" for u in range(self.users)]  # fresh: first messages really are first
        await d.burst([conversation.build_message(d.profile, d.prompts, users[u], key=keys[u])
                       for u in range(self.users) for _ in range(self.concurrency)], "first-messages")
        for r in range(1, self.rounds):
            await d.burst([conversation.build_message(d.profile, d.prompts, users[u], key=keys[u])
                           for u in range(self.users)], f"turn-{r}")


class ParallelObserve(Scenario):
    """10 sessions x 5 parallel observes, then read every session back."""

    name = "parallel_observe"
    flavor = "observe"
    users = 10          # sessions
    observes = 5        # parallel observes per session per round
    rounds = 1

    def widest(self) -> int:
        return self.users * self.observes

    async def run(self, d: Driver) -> None:
        keys = await self.user_keys(d)
        created = await d.burst([observe.build_create(d.profile, key=keys[u], user=f"obs-{u}")
                                 for u in range(self.users)], "create")
        live = [(u, op["session_seen"]) for u, op in enumerate(created) if op.get("outcome") == "ok" and op.get("session_seen")]
        for r in range(self.rounds):
            await d.burst([observe.build_observe(d.profile, d.prompts, sid, key=keys[u], user=f"obs-{u}")
                           for u, sid in live for _ in range(self.observes)], f"observe-{r}")
            await d.burst([observe.build_read(d.profile, sid, key=keys[u], user=f"obs-{u}") for u, sid in live],
                          f"read-back-{r}")


class Mixed(Scenario):
    """Every flavor the target speaks, in the same bursts."""

    name = "mixed"
    flavor = "gateway"
    users = 8
    rounds = 3

    @classmethod
    def supports(cls, target: RunningTarget) -> bool:
        return bool(target.profile.target.flavors)

    def widest(self) -> int:
        return self.users * 3

    async def run(self, d: Driver) -> None:
        keys, p = await self.user_keys(d), d.profile
        flavors, models = p.target.flavors, p.models.names
        sessions: list[str] = []
        if "observe" in flavors:
            made = await d.burst([observe.build_create(p, key=keys[u], user=f"mix-{u}") for u in range(2)], "create")
            sessions = [op["session_seen"] for op in made if op.get("outcome") == "ok" and op.get("session_seen")]
        for r in range(self.rounds):
            batch: list[Request] = []
            for u in range(self.users):
                if "gateway" in flavors:
                    batch.append(gateway.build_chat(p, d.prompts, key=keys[u], model=models[(r + u) % len(models)],
                                                    user=f"mix-{u}", stream=u % 2 == 1))
                if sessions:
                    batch.append(observe.build_observe(p, d.prompts, sessions[u % len(sessions)], key=keys[u], user=f"mix-{u}"))
                if "conversation" in flavors:
                    batch.append(conversation.build_message(p, d.prompts, f"mix-{d.tag}-{u}", key=keys[u]))
            await d.burst(batch, f"mix-{r}")
        if sessions:
            await d.burst([observe.build_read(p, s, key=keys[0]) for s in sessions], "read-back")


SCENARIOS: dict[str, type[Scenario]] = {
    c.name: c for c in (SharedKey, ModelSwitch, FirstMessages, ParallelObserve, StreamingSharedKey, Mixed)}


@dataclass
class ScenarioResult:
    scenario: str
    run_dir: RunDir
    history: Path
    ops: int
    outcomes: dict[str, int]
    duration_s: float
    snapshots: list[dict[str, Any]]


SNAPSHOT_EVERY_S = 1.0  # invariants are also read while the load runs: a transient duplicate counts


async def _snapshots_during(d: Driver) -> None:
    while True:
        await asyncio.sleep(SNAPSHOT_EVERY_S)
        await d.snapshot("during")


async def run_scenario(scenario: type[Scenario] | str, target: RunningTarget, run_dir: RunDir,
                       seed: int | None = None, **overrides: int) -> ScenarioResult:
    """Run one scenario against a running target into ``run_dir``; returns what was recorded.

    The verdict is the checker's: ``sessionstorm.checker.check_run(result.run_dir)``.
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
    run_dir.write_json("run.json", {"scenario": sc.name, "driver": "regression", "settings": sc.settings(),
                                    "target": {"url": target.url, "profile": target.profile.redacted()},
                                    "started": started})
    with HistoryWriter(history_path, process=process_name("driver")) as history:
        async with Driver(target, history, seed=seed, max_connections=max(sc.widest(), 10)) as d:
            history.event("phase", name="start", scenario=sc.name, settings=sc.settings())
            await d.warm(sc.widest())
            during = asyncio.create_task(_snapshots_during(d))
            try:
                await sc.run(d)
            finally:
                during.cancel()
                await asyncio.gather(during, return_exceptions=True)
                snapshots = await d.snapshot("after")
                history.event("phase", name="end", scenario=sc.name)
            ops = d.ops
    duration = time.time() - started
    outcomes = dict(Counter(op.get("outcome") for op in ops))
    run_dir.write_json("run.json", {**run_dir.read_json("run.json"), "finished": time.time(),
                                    "duration_s": duration, "ops": len(ops)})
    return ScenarioResult(sc.name, run_dir, history_path, len(ops), outcomes, duration, snapshots)
