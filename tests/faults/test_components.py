"""The nemesis's hands on real processes and sockets: a server killed, stopped, paused and
started again on the same port; a proxy that resets connections while dropping."""
from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import httpx
import portpicker
import pytest

from sessionstorm.history import iter_records
from sessionstorm.nemesis import DropProxy, Nemesis, parse_faults
from sessionstorm.nemesis.components import ProcessControl
from sessionstorm.stack.embedded import http_probe
from sessionstorm.stack.process import Service

SERVER = """
import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = str(os.getpid()).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


@pytest.fixture
def server(tmp_path: Path):
    port = portpicker.pick_unused_port()
    url = f"http://127.0.0.1:{port}"
    svc = Service("tiny", [sys.executable, "-c", SERVER, str(port)], lambda: http_probe(url + "/"),
                  f"GET {url}/ -> 200", tmp_path / "tiny.log", timeout=30)
    svc.launch()
    yield svc, url
    svc.shutdown()


def _pid(url: str) -> int:
    return int(httpx.get(url + "/", timeout=2).text)


def test_kill_and_restart_come_back_on_the_same_port(server):
    svc, url = server
    control = ProcessControl("tiny", svc)
    first = _pid(url)
    control.kill()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/", timeout=2)
    control.start()
    second = _pid(url)
    assert second != first
    control.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/", timeout=2)
    control.start()
    assert _pid(url) not in (first, second)
    assert "starting again" in (svc.log_path.read_text())


def test_pause_holds_requests_until_resume(server):
    svc, url = server
    control = ProcessControl("tiny", svc)
    pid = _pid(url)
    control.pause()
    try:
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(url + "/", timeout=httpx.Timeout(1.0, connect=1.0))
    finally:
        control.resume()
    assert _pid(url) == pid  # the same process, it only stopped


def test_the_proxy_resets_connections_while_dropping(server):
    _, url = server
    port = int(url.rsplit(":", 1)[1])
    proxy = DropProxy("127.0.0.1", port).start()
    try:
        with httpx.Client(base_url=proxy.url, timeout=2) as c:
            assert c.get("/").status_code == 200           # through the proxy, kept alive
            proxy.drop(True)
            with pytest.raises(httpx.TransportError):      # the open connection was reset
                c.get("/")
            with pytest.raises(httpx.TransportError):      # and a new one is reset at once
                httpx.get(proxy.url + "/", timeout=2)
            proxy.drop(False)
            assert c.get("/").status_code == 200
        raw = socket.create_connection(("127.0.0.1", proxy.port))
        proxy.drop(True)
        raw.settimeout(2)
        with pytest.raises(ConnectionResetError):          # RST, not a clean close
            raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            raw.recv(10)
        assert proxy.resets >= 2
    finally:
        proxy.stop()


def test_the_nemesis_applies_on_schedule_and_records_it(server, tmp_path):
    svc, url = server
    path = tmp_path / "history" / "h-1-nemesis.jsonl"
    n = Nemesis(parse_faults(["kill:target@0.2+0.3", "restart:target@5"]), path, {"target": ProcessControl("t", svc)})
    n.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len([r for r in n.records if r["phase"] == "end"]) < 1:
        time.sleep(0.05)
    n.stop()  # before restart@5: recorded as skipped
    faults = [r["data"] for r in iter_records([path]) if r.get("kind") == "fault"]
    assert [(f["id"], f["phase"], f["applied"]) for f in faults] == [
        ("kill:target@0.2+0.3", "start", True), ("kill:target@0.2+0.3", "end", True),
        ("restart:target@5", "skipped", False)]
    assert faults[0]["at_s"] >= 0.2 and faults[1]["at_s"] >= 0.5
    assert http_probe(url + "/")[0]


def test_a_fault_that_fails_is_recorded_not_applied(tmp_path):
    path = tmp_path / "history" / "h-1-nemesis.jsonl"
    n = Nemesis(parse_faults(["kill:redis@0+1"]), path, {}).start()  # no control of redis in this run
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not n.records:
        time.sleep(0.05)
    n.stop()
    f = n.records[0]
    assert (f["phase"], f["applied"]) == ("start", False) and "no control of redis" in f["error"]


def test_a_drop_resets_a_request_in_flight_at_once(server):
    """The request waits on a paused server; the drop must reset it now, not at its timeout."""
    import threading

    svc, url = server
    proxy = DropProxy("127.0.0.1", int(url.rsplit(":", 1)[1])).start()
    control = ProcessControl("tiny", svc)
    outcome: dict[str, object] = {}

    def ask() -> None:
        t0 = time.monotonic()
        try:
            httpx.get(proxy.url + "/", timeout=20)
            outcome["error"] = None
        except httpx.TransportError as e:
            outcome["error"] = e
        outcome["s"] = time.monotonic() - t0

    control.pause()
    try:
        t = threading.Thread(target=ask)
        t.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not proxy._open:  # wait until it is connected through
            time.sleep(0.02)
        time.sleep(0.2)
        proxy.drop(True)
        t.join(10)
    finally:
        control.resume()
        proxy.stop()
    assert isinstance(outcome.get("error"), (httpx.RemoteProtocolError, httpx.ReadError)), outcome
    assert outcome["s"] < 5, outcome  # the reset reached the client; it did not wait for its timeout
