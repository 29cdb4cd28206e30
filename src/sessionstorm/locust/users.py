"""Locust user classes: each request carries a canary, is recorded in the history and is
checked online by `check_op` (a finding is a Locust failure named by its code): the moment its
reply arrives, or, for the built-in tasks that never read the op (``send(..., hold=True)``), with
the next batch of replies, within BATCH_S. Either way the op is in the history before Locust counts it.

Requests go out through FastHttpUser's own user agent (its cookies, redirects and status codes),
not through ``FastHttpSession.request``, whose per-request wrapping the harness does not need;
Locust's stats come from its own request event, fired here with the same fields.

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
import logging
import time
from typing import Any, ClassVar

import gevent
from gevent import getcurrent
from geventhttpclient.url import URL
from locust import FastHttpUser, between, task
from locust.contrib.fasthttp import FAILURE_EXCEPTIONS, ErrorResponse
from locust.exception import CatchResponseError, StopUser
from locust.user.task import LOCUST_STATE_STOPPING

from sessionstorm.checker.catalogue import CATALOGUE
from sessionstorm.checker.online import check_op
from sessionstorm.exchange import Exchange
from sessionstorm.locust.connection import FixedURL, lazy_cookies, tap_pool
from sessionstorm.workload import PARSERS, conversation, gateway, observe
from sessionstorm.workload.op import Lowered, Request, lower_headers

try:  # the response headers of FastHttpUser: stored by lower-cased name (see _headers)
    from geventhttpclient.header import Headers as _GHCHeaders
except ImportError:  # pragma: no cover
    _GHCHeaders = None

log = logging.getLogger("sessionstorm")
_numbers = itertools.count()
_in_flight = [0]  # this process's requests on the wire, for each op's in_flight
_frozen = [False]
ACCEPT_ENCODING = "gzip, deflate, br"  # what FastHttpSession.request adds to every request

# Replies held to be judged together: parsing, checking, recording and counting BATCH replies in a
# row keeps that code and its data warm, where one at a time between HTTP calls each cost 2-3x
# what it costs alone. Judged when BATCH are held, every BATCH_S, and before the history is flushed
# or closed (plugin: test_stop, quitting). Each entry: (user, exchange, Locust request fields).
_HELD: list[tuple[Any, Exchange, dict[str, Any] | None]] = []
BATCH = 64
BATCH_S = 0.1
URL_CACHE = 64  # parsed URLs kept per user: the fixed paths of its task
_judging = [False]


def judge_held() -> None:
    """Settle every held reply, in arrival order (nothing here yields: no other greenlet runs)."""
    while _HELD:
        batch = _HELD[:]
        _HELD.clear()
        for i, (user, ex, meta) in enumerate(batch):
            try:
                user._settle(ex, meta)
            except Exception:  # one op's failure (logged, as Locust logs a task's) loses none of the others
                log.exception("sessionstorm: settling a held reply failed")
            except BaseException:  # this greenlet killed mid-batch: the rest stay held for the next judge
                _HELD[:0] = batch[i + 1:]
                raise


def _judge_every(seconds: float) -> None:
    """Bounds how long a reply stays held when few arrive (Locust's stats lag by at most this)."""
    while True:
        gevent.sleep(seconds)
        judge_held()


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
        self._agent = self.client.client  # FastHttpSession's user agent: cookies, redirects, status codes
        lazy_cookies(self.client)
        self._urls: dict[str, tuple[URL, str]] = {}
        self._ready: list[Request] = []  # requests built ahead (SharedKeyUser)
        if not _judging[0]:
            _judging[0] = True
            gevent.spawn(_judge_every, BATCH_S)
        self._loop = gevent.get_hub().loop
        self._request_event = self.client.request_event

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

    def send(self, req: Request, name: str | None = None, *, hold: bool = False) -> dict[str, Any]:
        """Send, record the exchange into the op, write it to the history, check it online, and
        count it in Locust's stats (its request event, once the op is in the history). The op is
        recorded whatever happens, also when the run stops this user mid-request. ``hold``: the
        caller does not read the op, so a complete reply is parsed, checked, written and counted
        with its batch (`judge_held`), and the op returned is filled only then (the built-in
        tasks; a subclass's own task gets its op judged). Not with remote rails, whose caps
        count outcomes as they come."""
        tap, ctx = self.tap, self.ctx
        wire = ctx.wire
        rails = wire.rails
        if rails is not None and not rails.acquire(gevent.sleep):
            self._stop_run(rails.stop_reason)
            raise StopUser()
        tap.peer = None
        tap.connected = False
        _in_flight[0] += 1
        ex = Exchange(req, _in_flight[0], wire.redact)
        op = ex.op
        meta = None
        # The op's deadline: what `with gevent.Timeout(deadline_s)` does (a gevent.Timeout thrown into
        # this greenlet when it fires), on the hub's timer directly: 0.8 µs, not 2.2. A new timer
        # per request: one timer restarted per user once fired inside a later request of its user,
        # 4 s late, and made a clean run's last ops "unknown".
        timer = self._loop.timer(self.deadline_s, ref=True, priority=-1)
        timer.start(_expire, getcurrent(), self.deadline_s)
        try:
            meta = self._exchange(ex, req, name or op["kind"], hold and rails is None)
        except gevent.Timeout as e:
            ex.transport(e, connected=tap.connected)
        except BaseException as e:  # stopped mid-request (GreenletExit, Ctrl-C): unknown, and passed on
            ex.transport(e, connected=tap.connected, event="cancelled")
            raise
        finally:
            timer.close()
            _in_flight[0] -= 1
            if ex.held:  # judged with the next batch (`judge_held`), within BATCH_S
                _HELD.append((self, ex, meta))
                if len(_HELD) >= BATCH:
                    judge_held()
            else:
                self._settle(ex, meta)
        return op

    def _settle(self, ex: Exchange, meta: dict[str, Any] | None) -> None:
        """The op's end: parsed (if its reply was held), written to the history, then checked and
        counted in Locust's stats (so every request Locust counts is in the history)."""
        try:
            op = ex.finish()
        except Exception as e:  # a held reply the parser choked on: unknown, and said so
            log.exception("sessionstorm: parsing a reply failed")
            ex.transport(e, event="unknown")
            op = ex.op
        ctx = self.ctx
        wire = ctx.wire
        if not ctx.history.record_op(op):  # the history is closed (the run is over): nor counted by Locust
            return
        rails = wire.rails
        if rails is not None and rails.record(op["outcome"]):
            self._stop_run(rails.stop_reason)
        if wire.metrics is not None:
            wire.metrics.observe_op(op)
        if meta is not None:
            meta["exception"] = self._judge(op)
            self._request_event.fire(**meta)

    def _exchange(self, ex: Exchange, req: Request, name: str, hold: bool = False) -> dict[str, Any]:
        """One request on the wire, as ``FastHttpSession.request(..., catch_response=True)`` makes it
        (same headers, the same user agent: its cookies, redirects and status check), without what
        that wrapper costs per request and the harness does not use (a response context manager that
        copies the response, a second status check). Returns Locust's request event fields.
        ``hold``: a complete reply is kept in the exchange, to be parsed with a batch."""
        session, tap = self.client, self.tap
        headers = req.headers
        if "Accept-Encoding" not in headers and "accept-encoding" not in headers:  # as FastHttpSession.request
            headers = {**headers, "Accept-Encoding": ACCEPT_ENCODING}
        if session.auth_header:  # credentials in the host URL
            headers = {**headers, "Authorization": session.auth_header}
        urls = self._urls.get(req.path)
        if urls is None:  # parsed once per path, its parts too (FixedURL): immutable, a redirect makes a new one
            built = session._build_url(req.path)
            urls = (FixedURL(built), built)
            if len(self._urls) < URL_CACHE:  # paths with ids (sessions, conversations) must not grow it
                self._urls[req.path] = urls
        parsed, url = urls
        start_time = time.time()
        t0 = time.perf_counter()
        length = 0
        try:
            resp = self._agent.urlopen(parsed, method=req.method, payload=req.body, headers=headers)
        except FAILURE_EXCEPTIONS as e:  # as FastHttpSession: a bad status still brings its reply
            resp = getattr(e, "response", None)
            if resp is None:  # nothing came back: the exchange model decides fail or unknown
                ex.connected(tap.peer)
                ex.transport(e, connected=tap.connected)
                return _meta(req, name, url, start_time, t0, ErrorResponse(getattr(e, "request", None), e), 0, self)
        ex.connected(tap.peer)
        status = resp.status_code
        if ex.streamed:
            h = resp.headers
            if h and "content-length" in h:
                length = int(h["content-length"])
            meta = _meta(req, name, url, start_time, t0, resp, length, self)  # Locust times a stream to its headers
            ex.begin(status, _headers(resp))
            try:
                while data := resp.read(8192):
                    ex.feed(data, time.monotonic())
            except Exception as e:  # noqa: BLE001  a cut stream keeps what arrived
                ex.end_stream(e)
            else:
                ex.end_stream()
            return meta
        try:
            body = resp.content
        except FAILURE_EXCEPTIONS as e:  # the reply broke off mid-body: may have been processed
            ex.transport(e, connected=True)
        else:
            if body:
                length = len(body)
            if hold and (req.parse or ex.op["kind"] in PARSERS):
                ex.hold(status, _headers(resp), body)
            else:
                ex.reply(status, _headers(resp), body)
        return _meta(req, name, url, start_time, t0, resp, length, self)

    def _stop_run(self, reason: str | None) -> None:
        """The rails said stop (a cap reached, an error spike): stop this process's load, once."""
        if not getattr(self.environment, "sessionstorm_stopping", None):
            self.environment.sessionstorm_stopping = reason
            gevent.spawn(self.environment.runner.quit)

    def _judge(self, op: dict[str, Any]) -> CatchResponseError | None:
        """The op's failure for Locust's stats, or None: a finding by its code (a stable message, so
        Locust counts failures per code; details are in the history), else a failed or unknown outcome."""
        findings = check_op(op, self.ctx.expect_canary, self.ctx.profile.contract.request_id)
        if findings:
            code = findings[0][0]
            if self.ctx.wire.metrics is not None:
                self.ctx.wire.metrics.anomaly(code)
            return CatchResponseError(f"{code}: {CATALOGUE[code][1]}")
        outcome = op.get("outcome")
        if outcome == "fail":
            return CatchResponseError(f"HTTP {op.get('status')}: {str(op.get('error'))[:80]}" if op.get("status")
                                      else f"not sent ({op.get('transport')}): {str(op.get('error'))[:80]}")
        if outcome == "info":
            return CatchResponseError(f"outcome unknown ({op.get('transport') or 'reply'}): {str(op.get('error'))[:80]}")
        return None


def _expire(greenlet: Any, seconds: float) -> None:
    """An op's deadline passed: what gevent.Timeout throws when it expires."""
    greenlet.throw(gevent.Timeout(seconds))


def _meta(req: Request, name: str, url: str, start_time: float, t0: float, resp: Any, length: int,
          user: Any) -> dict[str, Any]:
    """Locust's request event fields, as FastHttpSession.request fills them (the exception is the verdict's)."""
    return {"request_type": req.method, "name": name, "context": user.context(), "response": resp,
            "exception": None, "start_time": start_time, "url": url, "response_length": length,
            "response_time": (time.perf_counter() - t0) * 1000}


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
    # Requests built PREBUILD at a time (each with its own id, canary and prompt; stamped when sent):
    # built in a row, not between HTTP calls, they cost 8 µs a request less in Locust (measured
    # side by side). A few KB per user; the ones left unsent at the stop were never ops.
    PREBUILD: ClassVar[int] = 16

    @task
    def ask(self) -> None:
        ready = self._ready
        if not ready:
            model = self.ctx.profile.models.names[0]
            ready.extend([self.build_chat(model, stream=self.stream) for _ in range(self.PREBUILD)])
            ready.reverse()  # sent in the order built
            for r in ready:  # what _exchange adds, set on each request's own headers: no copy when sent
                h = r.headers
                if "Accept-Encoding" not in h and "accept-encoding" not in h:
                    h["Accept-Encoding"] = ACCEPT_ENCODING
        self.send(ready.pop(), hold=True)  # this task never reads the op


class SharedKeyStreamUser(SharedKeyUser):
    stream = True


class ModelSwitchUser(GatewayUser):
    """Alternates models quickly on one key shared by every ModelSwitchUser."""

    stream = False

    @task
    def switch(self) -> None:
        self.turn = getattr(self, "turn", self.number) + 1
        key = self.ctx.keys[0] if self.ctx.keys else None
        self.send(self.build_chat(self.models[self.turn % len(self.models)], stream=self.stream, key=key),
                  hold=True)  # this task never reads the op


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
