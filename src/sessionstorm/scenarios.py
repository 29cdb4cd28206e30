"""The regression scenarios: classes with class attributes (the knobs) and a ``run`` that
fires barrier-synchronised bursts through a `sessionstorm.driver.Driver`.

A burst's requests must overlap *on the target*, not only in the driver. On a busy machine
the driver's event loop writes a 50-request burst over hundreds of milliseconds, and the
target then serves the requests one by one, each long before the next arrives: a race window
of a few milliseconds is never open when the next request comes (bench/bugzoo_load.py: with
4 CPU hogs, 2 of 5 rounds of a lost update were caught). So a burst is released at the last
byte: each request with a body sends everything but its last byte, waits until every request
of the burst has got that far, then all last bytes go out together. The target cannot start
on a request before its last byte, so the whole burst becomes ready at once, however slowly
the driver wrote it. The wait is bounded (`Scenario.release_bound_s`, sized from a round trip
measured before the first burst); every burst's release is recorded (history event ``release``:
how many were held, how long, and whether the bound released it).

Add your own by subclassing `Scenario`; ``SCENARIOS`` maps a name to its class.
"""
from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from sessionstorm import plugins
from sessionstorm.errors import ConfigError
from sessionstorm.stack.launch import RunningTarget
from sessionstorm.workload import conversation, gateway, observe
from sessionstorm.workload.op import Request

if TYPE_CHECKING:
    from sessionstorm.driver import Driver


class LastByteRelease:
    """Holds the last body byte of every request of one burst until all have sent the rest.

    Each request's body becomes an async stream with an explicit Content-Length (the framing
    on the wire is unchanged); a request without a body is not held. httpx asks a stream for
    its next part only once the previous part is written, so a request waiting here has its
    headers and all but one byte of its body on the wire. ``record()`` says how it went.
    """

    def __init__(self, requests: Sequence[Request], bound_s: float) -> None:
        self.requests, self.bound_s = list(requests), bound_s
        self.held = [r for r in self.requests if r.body]
        self.ready = 0
        self.timed_out = False
        self.waited_s = 0.0
        self._open = asyncio.Event()
        self._first: float | None = None
        for r in self.held:
            body = r.body
            assert isinstance(body, bytes)
            r.headers = {**{k: v for k, v in r.headers.items() if k.lower() != "content-length"},
                         "Content-Length": str(len(body))}
            r.body = self._stream(body)  # type: ignore[assignment]  # httpx sends an async stream

    async def _stream(self, body: bytes) -> AsyncIterator[bytes]:
        if len(body) > 1:
            yield body[:-1]
        self.ready += 1
        now = time.monotonic()
        self._first = self._first if self._first is not None else now
        if self.ready >= len(self.held):
            self._open.set()
        if not self._open.is_set():
            try:
                await asyncio.wait_for(self._open.wait(), max(0.0, self._first + self.bound_s - now))
            except TimeoutError:  # one request never got its prefix out (say, no connection): go anyway
                self.timed_out = True
                self._open.set()
        self.waited_s = max(self.waited_s, time.monotonic() - self._first)
        yield body[-1:]

    def record(self) -> dict[str, Any]:
        return {"held": len(self.held), "ready": self.ready, "timed_out": self.timed_out,
                "waited_ms": round(self.waited_s * 1000, 1), "bound_ms": round(self.bound_s * 1000)}


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

    # A burst waits for its slowest request's first part at most `release_rtts` round trips
    # per request (the round trip measured before the first burst: writing a request costs the
    # driver about one round trip, and more on a busy machine), within these limits. The bound
    # costs time only when a request never gets its first part out (say, it cannot connect);
    # with 4 CPU hogs a 50-request burst waited 0.25-0.4 s (median) and 1 burst in 60 hit a
    # 1 s bound, hence the margin.
    release_min_s: ClassVar[float] = 2.0
    release_max_s: ClassVar[float] = 10.0
    release_rtts: ClassVar[float] = 10.0
    _rtt_s: float | None = None

    def widest(self) -> int:
        """The largest burst, for warming the connection pool."""
        return self.users

    async def probe(self, d: Driver, n: int = 3) -> float:
        """The median round trip of the target's ready path, in seconds (sequential requests)."""
        times = []
        for _ in range(n):
            t0 = time.monotonic()
            await d.warm(1)
            times.append(time.monotonic() - t0)
        return statistics.median(times)

    async def release_bound_s(self, d: Driver, n: int) -> float:
        """How long a burst of n may wait for its slowest request's first part."""
        if self._rtt_s is None:
            self._rtt_s = await self.probe(d)
            d.history.event("probe", rtt_ms=round(self._rtt_s * 1000, 2))
        return min(self.release_max_s, max(self.release_min_s, self.release_rtts * self._rtt_s * n))

    async def burst(self, d: Driver, requests: Sequence[Request], label: str) -> list[dict[str, Any]]:
        """``d.burst`` released at the last byte (see the module's doc)."""
        release = LastByteRelease(requests, await self.release_bound_s(d, len(requests)))
        ops = await d.burst(release.requests, label)
        d.history.event("release", burst=label, **release.record())
        return ops

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
            await self.burst(d, [gateway.build_chat(d.profile, d.prompts, key=keys[u], model=model, user=f"dev-{u}",
                                              stream=self.stream) for u in range(self.users)], f"round-{r}")


class StreamingSharedKey(SharedKey):
    """SharedKey with streamed replies: interleaved chunks show per chunk."""

    name = "streaming_shared_key"
    stream = True


class ModelSwitch(Scenario):
    """Rapid model switching on a key in use: each burst asks for every model at once.

    One request first gives each key its session, so every burst switches a session that has
    requests in flight (on a fresh key the first burst would only race to create one).
    """

    name = "model_switch"
    users = 6
    rounds = 2

    async def run(self, d: Driver) -> None:
        keys, models = await self.user_keys(d), d.profile.models.names
        for u in {k: u for u, k in reversed(list(enumerate(keys)))}.values():  # the first user of each key
            await d.send(gateway.build_chat(d.profile, d.prompts, key=keys[u], model=models[0], user=f"dev-{u}"))
        for r in range(self.rounds):
            await self.burst(d, [gateway.build_chat(d.profile, d.prompts, key=keys[u], model=models[(r + u) % len(models)],
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
        await self.burst(d, [conversation.build_message(d.profile, d.prompts, users[u], key=keys[u])
                       for u in range(self.users) for _ in range(self.concurrency)], "first-messages")
        for r in range(1, self.rounds):
            await self.burst(d, [conversation.build_message(d.profile, d.prompts, users[u], key=keys[u])
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
        created = await self.burst(d, [observe.build_create(d.profile, key=keys[u], user=f"obs-{u}")
                                 for u in range(self.users)], "create")
        live = [(u, op["session_seen"]) for u, op in enumerate(created) if op.get("outcome") == "ok" and op.get("session_seen")]
        for r in range(self.rounds):
            await self.burst(d, [observe.build_observe(d.profile, d.prompts, sid, key=keys[u], user=f"obs-{u}")
                           for u, sid in live for _ in range(self.observes)], f"observe-{r}")
            await self.burst(d, [observe.build_read(d.profile, sid, key=keys[u], user=f"obs-{u}") for u, sid in live],
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
            made = await self.burst(d, [observe.build_create(p, key=keys[u], user=f"mix-{u}") for u in range(2)], "create")
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
            await self.burst(d, batch, f"mix-{r}")
        if sessions:
            await self.burst(d, [observe.build_read(p, s, key=keys[0]) for s in sessions], "read-back")


class Steady(Scenario):
    """Steady load for ``seconds``, one small burst of every flavor each ``interval_ms``:
    the scenario for faults (``--fault``), whose windows and recovery need time on both
    sides. Long-lived observe sessions are written and read back every tick, so a write
    acknowledged before a restart is looked for after it."""

    name = "steady"
    flavor = "gateway"
    users = 4
    keys = 2
    sessions = 3
    seconds = 5   # a soak or a fault schedule sets its own (--seconds)
    interval_ms = 250
    # ``until(done)``: the load also ends, before ``seconds``, at the first tick where
    # done(driver) is true -- the regression suite ends a fault run once the fault is over and
    # every kind has recovered, instead of sleeping through a schedule sized for the worst case.
    done: ClassVar[Callable[[Driver], bool] | None] = None

    @classmethod
    def until(cls, done: Callable[[Driver], bool]) -> type[Steady]:
        """This scenario, ending early once ``done(driver)`` (checked before every tick)."""
        return type(cls.__name__, (cls,), {"done": staticmethod(done)})

    @classmethod
    def supports(cls, target: RunningTarget) -> bool:
        return bool(target.profile.target.flavors)

    def widest(self) -> int:
        return self.users * 2 + self.sessions * 2 + 1

    async def run(self, d: Driver) -> None:
        keys, p = await self.user_keys(d), d.profile
        flavors, model = p.target.flavors, (p.models.names or [""])[0]
        sessions: list[str] = []
        if "observe" in flavors:
            made = await d.burst([observe.build_create(p, key=keys[i % self.users], user=f"steady-{i}")
                                  for i in range(self.sessions)], "create")
            sessions = [op["session_seen"] for op in made if op.get("outcome") == "ok" and op.get("session_seen")]
        t0 = time.monotonic()
        for tick in range(self.seconds * 1000 // self.interval_ms + 1):  # bounded in count and in time
            if d.stop.is_set() or time.monotonic() - t0 >= self.seconds or (self.done is not None and self.done(d)):
                break
            batch: list[Request] = []
            for u in range(self.users):
                if "gateway" in flavors:
                    batch.append(gateway.build_chat(p, d.prompts, key=keys[u], model=model, user=f"steady-{u}"))
                if "conversation" in flavors:
                    batch.append(conversation.build_message(p, d.prompts, f"steady-{d.tag}-{u}", key=keys[u]))
            if "observe" in flavors:
                batch.append(observe.build_create(p, key=keys[0], user="steady-new"))
                for i, sid in enumerate(sessions):
                    batch.append(observe.build_observe(p, d.prompts, sid, key=keys[i % self.users], user=f"steady-{i}"))
                    batch.append(observe.build_read(p, sid, key=keys[i % self.users], user=f"steady-{i}"))
            await d.burst(batch, f"tick-{tick}")
            await asyncio.sleep(max(0.0, t0 + (tick + 1) * self.interval_ms / 1000 - time.monotonic()))
        if sessions:
            await d.burst([observe.build_read(p, sid, key=keys[0]) for sid in sessions], "read-back")


SCENARIOS: dict[str, type[Scenario]] = {
    c.name: c for c in (SharedKey, ModelSwitch, FirstMessages, ParallelObserve, StreamingSharedKey, Mixed, Steady)}
plugins.add_scenarios(SCENARIOS)  # installed entry points (group sessionstorm.scenarios)

# The reference target's bug zoo: (bug flags, the scenario that must catch them, any of these
# anomaly codes counts). The regression suite and bench/bugzoo_load.py both run this table.
BUG_ZOO: list[tuple[str, str, frozenset[str]]] = [
    ("no-request-id", "shared_key", frozenset({"CROSSTALK"})),
    ("no-request-id", "streaming_shared_key", frozenset({"CROSSTALK", "STREAM_INTERLEAVED"})),
    ("model-switch-race", "model_switch", frozenset({"WRONG_MODEL", "SESSION_EXPIRED_IN_FLIGHT"})),
    ("racy-get-or-create", "first_messages", frozenset({"DUPLICATE_ACTIVE_SESSION"})),
    ("bad-fallback", "first_messages", frozenset({"SESSION_CHURN", "CONTEXT_LOSS"})),
    ("racy-get-or-create,no-unique-index", "shared_key", frozenset({"INVARIANT_VIOLATED"})),
    ("unlocked-lazy-init", "parallel_observe", frozenset({"SPURIOUS_NOT_FOUND"})),
    ("lost-update-observe", "parallel_observe", frozenset({"LOST_WRITE"})),
    ("model-id-not-forwarded", "model_switch", frozenset({"WRONG_MODEL"})),
]
