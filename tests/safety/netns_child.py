"""Run inside ``unshare -n`` only: exercises the loopback guard against a counting server
on a non-loopback address that exists nowhere but in this private network namespace.

Prints one JSON object with the results. Refuses to send anything unless the namespace
is private (its only interface is ``lo``), so a broken guard cannot reach the real network.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from sessionstorm.errors import ConfigError
from sessionstorm.guard import RemoteRails, check_target

REMOTE = "10.1.2.3"


class Counter(BaseHTTPRequestHandler):
    hits: dict[str, int] = {}
    lock = threading.Lock()

    def do_GET(self) -> None:  # noqa: N802
        with self.lock:
            self.hits[self.path] = self.hits.get(self.path, 0) + 1
        status = 500 if self.path.startswith("/fail") else 200
        self.send_response(status)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


def guarded_loop(url: str, allow_remote: bool, rails: RemoteRails | None, attempts: int) -> dict:
    """What a driver does: the guard first, then requests through the rails."""
    sent = 0
    try:
        addresses = check_target(url, allow_remote=allow_remote)
    except ConfigError as e:
        return {"refused": str(e), "sent": 0}
    with httpx.Client(timeout=5, trust_env=False) as client:
        for _ in range(attempts):  # bounded
            if rails is not None and not rails.acquire():
                break
            r = client.get(url)
            sent += 1
            if rails is not None and rails.record("ok" if r.status_code < 400 else "fail"):
                break
    return {"refused": None, "sent": sent, "addresses": addresses,
            "stop_reason": rails.stop_reason if rails else None}


def main() -> int:
    # if_nameindex asks the kernel about this process's namespace (/sys/class/net may not).
    interfaces = sorted(name for _, name in socket.if_nameindex())
    if interfaces != ["lo"]:
        print(json.dumps({"error": f"not in a private network namespace: interfaces {interfaces}"}))
        return 2
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", f"{REMOTE}/32", "dev", "lo"], check=True)
    server = ThreadingHTTPServer((REMOTE, 0), Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://{REMOTE}:{server.server_port}"
    out: dict = {"base": base}

    # The address is reachable here (proof the refusal below is the guard, not the network).
    out["probe_status"] = httpx.get(base + "/probe", timeout=5, trust_env=False).status_code

    t0 = time.perf_counter()
    out["refused_literal"] = guarded_loop(base + "/refused", False, None, 20)
    out["guard_ms"] = (time.perf_counter() - t0) * 1000
    # A name with one loopback and one remote address: refused too (any address counts).
    try:
        check_target(f"http://staging.test:{server.server_port}/x", resolve={"staging.test": ["127.0.0.1", REMOTE]})
        out["refused_mixed"] = None
    except ConfigError as e:
        out["refused_mixed"] = str(e)

    # Real lookups, here where no DNS server can be reached: /etc/hosts, then a failure.
    out["localhost"] = check_target(f"http://localhost:{server.server_port}/")
    try:
        check_target("http://nothing.invalid/")  # .invalid never resolves (RFC 6761)
        out["unresolvable"] = None
    except ConfigError as e:
        out["unresolvable"] = str(e)

    out["capped"] = guarded_loop(base + "/capped", True, RemoteRails(max_rps=500, max_requests=7), 50)

    rails = RemoteRails(max_rps=20, max_requests=11)
    t0 = time.perf_counter()
    out["paced"] = guarded_loop(base + "/paced", True, rails, 50)
    out["paced"]["seconds"] = time.perf_counter() - t0

    out["aborted"] = guarded_loop(base + "/fail", True, RemoteRails(max_rps=500, min_ops=5), 50)

    server.shutdown()
    out["hits"] = dict(Counter.hits)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
