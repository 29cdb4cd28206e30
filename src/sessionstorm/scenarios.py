"""The regression scenarios: classes with class attributes (the knobs) and a ``run`` that
fires barrier-synchronised bursts through a `sessionstorm.driver.Driver`.

Add your own by subclassing `Scenario`; ``SCENARIOS`` maps a name to its class.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from sessionstorm.errors import ConfigError
from sessionstorm.workload import conversation, gateway, observe
from sessionstorm.workload.launch import RunningTarget
from sessionstorm.workload.op import Request

if TYPE_CHECKING:
    from sessionstorm.driver import Driver


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
