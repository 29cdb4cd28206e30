"""Locust user classes: each request carries a canary, is recorded in the history and is
checked the moment its reply arrives (a finding is a Locust failure named by its code).

Your own scenario subclasses a base and writes tasks with `self.send(request)`::

    from locust import task
    from sessionstorm import GatewayUser

    class LongPromptUser(GatewayUser):
        @task
        def ask(self):
            req = self.build_chat(model=self.models[0], max_tokens=512)
            self.send(req)
"""
from __future__ import annotations

import gc
import itertools
import time
from typing import Any, ClassVar

import gevent
from locust import FastHttpUser, between, task
from locust.exception import StopUser
from locust.user.task import LOCUST_STATE_STOPPING

from sessionstorm.checker.catalogue import CATALOGUE
from sessionstorm.checker.online import check_op
from sessionstorm.exchange import Exchange
from sessionstorm.locust.connection import tap_pool
from sessionstorm.workload import conversation, gateway, observe
from sessionstorm.workload.op import Lowered, Request, lower_headers

try:  # the response headers of FastHttpUser: stored by lower-cased name (see _headers)
    from geventhttpclient.header import Headers as _GHCHeaders
except ImportError:  # pragma: no cover
    _GHCHeaders = None

_numbers = itertools.count()
_in_flight = [0]  # this process's requests on the wire, for each op's in_flight
_frozen = [False]


class SessionstormUser(FastHttpUser):
    """Base of every sessionstorm user: the harness context, `send`, online checks."""

    abstract = True
    wait_time = between(0.0, 0.05)

    def on_start(self) -> None:
        from sessionstorm.locust.plugin import context
        self.ctx = context(self.environment)
        self.number = next(_numbers)
        if not _frozen[0]:
            # What the process holds before the load (Locust, the stack's clients, prompt pools)
            # is never garbage: out of the collector's sight, the full collections that the
            # load's allocations trigger cost a third as much (6 -> 2 µs a request, measured).
            # The start-up's own garbage goes first, or it would stay for good.
            _frozen[0] = True
            gc.collect()
            gc.freeze()
        self.deadline_s = self.ctx.profile.target.timeout_s * 2  # a whole op, stream included
        self.user_name = f"locust-{self.number}"  # the op's user, made once
        self.tap = tap_pool(self.client, self.host, self.ctx.profile.target.timeout_s, self.ctx.wire.spreader)

    def stop(self, force: bool = False) -> bool:
        """Stop between tasks, never mid-request. Locust kills a user it finds waiting, but a
        user whose wait ends in the same instant starts its next request and has it cut off:
        measured, 5 of 369 operations of a 4 s run ended unknown that way. Here a waiting user
        is only told to stop, and does so when its wait ends (at most its wait_time)."""
        if force or self._state is None:
            return bool(super().stop(force=True))
        self._state = LOCUST_STATE_STOPPING
        return False

    @property
    def profile(self) -> Any:
        return self.ctx.profile

    @property
    def models(self) -> list[str]:
        return self.ctx.profile.models.names

    def shared_key(self) -> str | None:
        """Teams share keys: users are spread over --shared-keys keys."""
        keys = self.ctx.keys
        return keys[self.number % len(keys)] if keys else None

    def send(self, req: Request, name: str | None = None) -> dict[str, Any]:
        """Send, record the exchange into the op, write it to the history, check it online.
        The op is recorded whatever happens, also when the run stops this user mid-request."""
        tap, ctx = self.tap, self.ctx
        wire = ctx.wire
        rails = wire.rails
        if rails is not None and not rails.acquire(gevent.sleep):
            self._stop_run(rails.stop_reason)
            raise StopUser()
        tap.reset()
        _in_flight[0] += 1
        ex = Exchange(req, _in_flight[0], wire.redact)
        op = ex.op
        # A new timer per request: one timer restarted per user (3 µs cheaper) once fired inside
        # a later request of its user, 4 s late, and made a clean run's last ops "unknown".
        try:
            with gevent.Timeout(self.deadline_s):
                with self.client.request(req.method, req.path, name=name or op["kind"], data=req.body,
                                         headers=req.headers, catch_response=True, stream=ex.streamed) as resp:
                    ex.connected(tap.peer)
                    self._read(ex, resp)
                    self._judge(op, resp)
        except gevent.Timeout as e:
            ex.transport(e, connected=tap.connected)
        except BaseException as e:  # stopped mid-request (GreenletExit, Ctrl-C): unknown, and passed on
            ex.transport(e, connected=tap.connected, event="cancelled")
            raise
        finally:
            _in_flight[0] -= 1
            ctx.history.record_op(ex.finish())
            if rails is not None and rails.record(op["outcome"]):
                self._stop_run(rails.stop_reason)
            if wire.metrics is not None:
                wire.metrics.observe_op(op)
        return op

    def _stop_run(self, reason: str | None) -> None:
        """The rails said stop (a cap reached, an error spike): stop this process's load, once."""
        if not getattr(self.environment, "sessionstorm_stopping", None):
            self.environment.sessionstorm_stopping = reason
            gevent.spawn(self.environment.runner.quit)

    def _read(self, ex: Exchange, resp: Any) -> None:
        status = resp.status_code
        if not status:  # no status line: the exchange model decides fail or unknown
            ex.transport(getattr(resp, "error", None) or ConnectionError("no response"), connected=self.tap.connected)
        elif ex.streamed:
            ex.begin(status, _headers(resp))
            try:
                while data := resp.read(8192):
                    ex.feed(data, time.monotonic())
            except Exception as e:  # a cut stream keeps what arrived
                ex.end_stream(e)
            else:
                ex.end_stream()
        else:
            ex.reply(status, _headers(resp), resp.content)

    def _judge(self, op: dict[str, Any], resp: Any) -> None:
        findings = check_op(op, self.ctx.expect_canary, self.ctx.profile.contract.request_id)
        if findings:  # a stable message, so Locust counts failures per code; details are in the history
            code = findings[0][0]
            if self.ctx.wire.metrics is not None:
                self.ctx.wire.metrics.anomaly(code)
            resp.failure(f"{code}: {CATALOGUE[code][1]}")
        elif op.get("outcome") == "fail":
            resp.failure(f"HTTP {op.get('status')}: {str(op.get('error'))[:80]}" if op.get("status")
                         else f"not sent ({op.get('transport')}): {str(op.get('error'))[:80]}")
        elif op.get("outcome") == "info":
            resp.failure(f"outcome unknown ({op.get('transport') or 'reply'}): {str(op.get('error'))[:80]}")
        else:
            resp.success()


def _headers(resp: Any) -> dict[str, str]:
    """The reply's headers by lower-cased name, the last line winning (as ``lower_headers``).
    geventhttpclient already keys them so, each as (name, value) or a list of such lines:
    read directly, that is a third of the cost of its items() generator. ``Lowered``: the
    parsers take them as they are, without lower-casing them again."""
    h = resp.headers
    if h is None:
        return Lowered()
    if type(h) is _GHCHeaders:
        return Lowered({k: v[1] if type(v) is tuple else v[-1][1] for k, v in dict.items(h)})
    return Lowered(lower_headers(h.items()))


class GatewayUser(SessionstormUser):
    """Base for chat-gateway scenarios: `build_chat(model=..., stream=...)`."""

    abstract = True

    def build_chat(self, model: str, stream: bool = False, key: str | None = None, **kw: Any) -> Request:
        ctx = self.ctx
        return gateway.build_chat(ctx.profile, ctx.prompts, key=key or self.shared_key(), model=model,
                                  user=self.user_name, stream=stream, **kw)


class SharedKeyUser(GatewayUser):
    """Many users on few API keys (--shared-keys), all asking at once, as teams do."""

    stream = False

    @task
    def ask(self) -> None:
        self.send(self.build_chat(self.ctx.profile.models.names[0], stream=self.stream))


class SharedKeyStreamUser(SharedKeyUser):
    stream = True


class ModelSwitchUser(GatewayUser):
    """Alternates models quickly on one key shared by every ModelSwitchUser."""

    stream = False

    @task
    def switch(self) -> None:
        self.turn = getattr(self, "turn", self.number) + 1
        key = self.ctx.keys[0] if self.ctx.keys else None
        self.send(self.build_chat(self.models[self.turn % len(self.models)], stream=self.stream, key=key))


class ModelSwitchStreamUser(ModelSwitchUser):
    stream = True


class ObserveUser(SessionstormUser):
    """Parallel observes on a few shared sessions, with read-backs (lost writes, spurious 404s)."""

    @task(5)
    def observe(self) -> None:
        sid = self.ctx.session_to_observe(self)
        self.send(observe.build_observe(self.profile, self.ctx.prompts, sid, user=f"locust-{self.number}"))

    @task(1)
    def read_back(self) -> None:
        sid = self.ctx.shared_sessions(self)[self.number % self.ctx.observe_sessions]
        self.send(observe.build_read(self.profile, sid, user=f"locust-{self.number}"))


class ConversationUser(SessionstormUser):
    """A multi-turn conversation per user: the turn must grow, the session must stay. After
    TURNS turns the user starts over as a new one: each reply carries the whole conversation,
    so an endless one would make a soak's records (and checking them) grow without bound."""

    TURNS: ClassVar[int] = 50
    turns = 0

    @task
    def talk(self) -> None:
        user = f"locust-{self.ctx.tag}-{self.number}-{self.turns // self.TURNS}"
        op = self.send(conversation.build_message(self.profile, self.ctx.prompts, user), name="message")
        if op.get("outcome") != "ok":
            return
        last = getattr(self, "last", None)
        if last is not None and (op.get("turn") or 0) <= last[1]:
            self.environment.events.request.fire(
                request_type="CHECK", name="continuity", response_time=0, response_length=0, context={},
                exception=AssertionError(f"CONTEXT_LOSS: {CATALOGUE['CONTEXT_LOSS'][1]}"))
        self.last = (op.get("session_seen"), op.get("turn") or 0)
        self.turns += 1
        if self.turns % self.TURNS == 0:
            self.last = None  # the next message is a new user's first


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"sessionstorm: timed out after {timeout:g} s waiting for {what}")
        gevent.sleep(0.05)
