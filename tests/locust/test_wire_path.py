"""What the Locust users' lean request path keeps equal to the stock one: a reply held for a
batch is parsed into the same op as one parsed at once (with the time it arrived); the lazy
cookie jar sends and keeps cookies as Locust's does; the pooled-socket check decides as
geventhttpclient's. The Locust parts run in a subprocess (importing Locust monkey-patches)."""
from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
import textwrap
import time

from sessionstorm.canary import format_echo
from sessionstorm.exchange import Exchange
from sessionstorm.profile import load_profile
from sessionstorm.profiles import REFERENCE
from sessionstorm.workload import gateway
from sessionstorm.workload.op import Lowered
from sessionstorm.workload.prompts import PromptMaker

TIMES = ("invoke_wall", "invoke_mono", "complete_wall", "complete_mono")


def _reply(op: dict, canary: str | None = None) -> tuple[int, Lowered, bytes]:
    echo = format_echo(op["model_asked"], None, op["id"], [canary or op["canaries_sent"][0]])
    body = b'{"model": "%s", "choices": [{"message": {"content": "%s filler"}}]}' % (op["model_asked"].encode(), echo.encode())
    return 200, Lowered({"content-type": "application/json", "x-request-id": op["id"]}), body


def test_a_held_reply_is_the_op_a_parsed_one_is_with_its_arrival_time():
    profile = load_profile(REFERENCE, check=False)
    prompts = PromptMaker("stub", seed=3)
    foreign = gateway.build_chat(profile, prompts, key="k", model=profile.models.names[0]).op["canaries_sent"][0]
    for canary in (None, foreign):  # its own canary, and another request's (CROSSTALK material)
        now = gateway.build_chat(profile, prompts, key="k", model=profile.models.names[0])
        later = dataclasses.replace(now, op=copy.deepcopy(now.op))
        a, b = Exchange(now, 1), Exchange(later, 1)
        a.reply(*_reply(now.op, canary))
        b.hold(*_reply(later.op, canary))
        assert b.held and "outcome" not in b.op  # nothing parsed yet
        arrived = b.op["complete_mono"]
        between = time.monotonic()
        op_a, op_b = a.finish(), b.finish()
        assert not b.held and op_b["complete_mono"] == arrived <= between
        assert {k: v for k, v in op_a.items() if k not in TIMES} == {k: v for k, v in op_b.items() if k not in TIMES}
        assert op_b["outcome"] == "ok" and op_b["request_id_seen"] == op_b["id"]
        assert op_b["canaries_seen"] == ([foreign] if canary else op_b["canaries_sent"])


def _run(code: str) -> str:
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=False, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout


def test_lazy_cookie_jar_keeps_and_sends_cookies_as_locusts_does():
    out = _run("""
        from geventhttpclient.header import Headers
        from geventhttpclient.useragent import CompatRequest
        from http.cookiejar import CookieJar
        from sessionstorm.locust.connection import LazyCookieJar

        class Resp:  # what UserAgent.urlopen hands the jar: info() -> the reply's headers
            def __init__(self, *pairs):
                self.headers = Headers(list(pairs))
            def info(self):
                return self.headers

        def exchange(jar, reply):
            req = CompatRequest("http://127.0.0.1:9/v1/chat", headers=Headers())
            jar.add_cookie_header(req)
            jar.extract_cookies(reply, req)
            return req.headers.get("cookie")

        replies = [Resp(("Content-Type", "application/json")), Resp(("Set-Cookie", "lb=a1; Path=/")),
                   Resp(), Resp(("SET-COOKIE", "lb=b2; Path=/"), ("Set-Cookie", "t=1")), Resp(("X-Other", "1"))]
        stock, lazy = CookieJar(), LazyCookieJar()
        sent = [(exchange(stock, r), exchange(lazy, r)) for r in replies]
        assert all(a == b for a, b in sent), sent
        assert [a for a, _ in sent] == [None, None, "lb=a1", "lb=a1", "t=1; lb=b2"], sent
        assert sorted((c.name, c.value) for c in lazy) == [("lb", "b2"), ("t", "1")]
        print("same")
    """)
    assert out.strip() == "same"


def test_pooled_socket_check_decides_as_geventhttpclients():
    out = _run("""
        from gevent import monkey; monkey.patch_all()
        import socket
        from geventhttpclient.connectionpool import ConnectionPool
        from sessionstorm.locust.connection import _idle_and_open

        stock = ConnectionPool._is_socket_alive
        a, b = socket.socketpair()
        seen = [(stock(None, a), _idle_and_open(a))]        # idle: reused
        b.send(b"stray")
        seen.append((stock(None, a), _idle_and_open(a)))  # bytes nobody asked for: not reused
        a.recv(16)
        b.close()
        seen.append((stock(None, a), _idle_and_open(a)))  # closed by the peer: not reused
        a.close()
        seen.append((stock(None, a), _idle_and_open(a)))  # closed here
        seen.append((stock(None, None), _idle_and_open(None)))
        assert seen == [(True, True), (False, False), (False, False), (False, False), (False, False)], seen
        print("same")
    """)
    assert out.strip() == "same"


def test_fixed_url_reads_as_geventhttpclients_url():
    out = _run("""
        from geventhttpclient.url import URL
        from sessionstorm.locust.connection import FixedURL

        names = ("hostname", "host", "port", "request_uri", "quoted_uri", "scheme", "netloc", "path", "query",
                 "username", "password")
        for s in ("http://127.0.0.1:8000/v1/chat/completions", "https://u:p@[::1]/a%20b;p?q=1&r=\\u00e9#f",
                  "http://h/x y?z", "https://example.test"):
            a, b = URL(s), FixedURL(s)
            assert [getattr(a, n) for n in names] == [getattr(b, n) for n in names], s
            assert str(a) == str(b) and a == b and tuple(a) == tuple(b), s
            for to in ("/other?x=1", "//elsewhere/x", "https://third.test:8443/y", "rel"):
                ra, rb = a.redirect(to), b.redirect(to)
                assert type(rb) is FixedURL and str(ra) == str(rb), (s, to)
                assert [getattr(ra, n) for n in names] == [getattr(rb, n) for n in names], (s, to)
        print("same")
    """)
    assert out.strip() == "same"


def test_record_op_writes_what_op_kwargs_writes(tmp_path):
    """The Locust users' record_op splices its head onto the op's bytes: the same record as op(**op)."""
    from sessionstorm.history import HistoryWriter, iter_records

    ops = [{"id": "a", "kind": "chat", "values": [1, 2], "reply_excerpt": 'é\n"q" \\'}, {"id": "b", "process": "other"},
           {"id": "c", "type": "odd"}, {}]
    spliced, plain = tmp_path / "spliced.jsonl", tmp_path / "plain.jsonl"
    with HistoryWriter(spliced, 'p"\\1', segment_records=None) as a, HistoryWriter(plain, 'p"\\1', segment_records=None) as b:
        for op in ops:
            assert a.record_op(dict(op))
            b.op(**op)
    assert list(iter_records([spliced])) == list(iter_records([plain]))
    assert not a.record_op({"id": "late"})  # closed: refused
    assert spliced.read_bytes().count(b'"type":"op"') == 3
