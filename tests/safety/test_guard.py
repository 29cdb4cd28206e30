"""The loopback guard and the remote rails.

Unit tests below send nothing and resolve nothing (literal addresses and resolver
overrides only: a real lookup may ask a DNS server). Real lookups and traffic to a
non-loopback address happen only inside a network namespace of the test's own
(``unshare -n``), where 10.1.2.3 lives on that namespace's ``lo`` and no DNS server
is reachable.
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sessionstorm.errors import ConfigError
from sessionstorm.guard import RemoteRails, check_target, is_loopback, remote_allowed

CHILD = Path(__file__).with_name("netns_child.py")


@pytest.mark.parametrize("url, expected", [
    ("http://127.0.0.1:8000/v1", ["127.0.0.1"]),
    ("http://127.9.9.9/", ["127.9.9.9"]),
    ("https://[::1]:8443/", ["::1"]),
    ("http://[::ffff:127.0.0.1]/", ["::ffff:127.0.0.1"]),
])
def test_loopback_literals_pass(url: str, expected: list[str]) -> None:
    assert check_target(url) == expected


@pytest.mark.parametrize("url, shown", [
    ("http://10.1.2.3:8000/", "10.1.2.3"),
    ("http://[2001:db8::1]/", "2001:db8::1"),
    ("http://0.0.0.0:8000/", "0.0.0.0"),
    ("http://[::ffff:10.0.0.1]/", "::ffff:10.0.0.1"),
    ("http://staging.test/", "192.0.2.7 (from staging.test)"),
    ("http://both.test/", "::ffff:a00:1 (from both.test)")  # addresses are shown normalised,  # any one remote address refuses
])
def test_remote_refused_with_one_line(url: str, shown: str) -> None:
    resolve = {"staging.test": ["192.0.2.7"], "both.test": ["127.0.0.1", "::1", "::ffff:10.0.0.1"]}
    with pytest.raises(ConfigError) as e:
        check_target(url, resolve=resolve)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"target={shown}: expected a loopback address")
    assert "--allow-remote" in msg and "SESSIONSTORM_ALLOW_REMOTE=1" in msg and "allow_remote = true" in msg
    assert check_target(url, allow_remote=True, resolve=resolve)  # the switch lets it through


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/", "127.0.0.1:8000", "http://127.0.0.1:99999/", "http:///x"])
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^target="):
        check_target(url)


@pytest.mark.parametrize("flag, env, config, expected", [
    (None, {}, None, False), (None, {}, True, True), (None, {"SESSIONSTORM_ALLOW_REMOTE": "1"}, None, True),
    (None, {"SESSIONSTORM_ALLOW_REMOTE": "0"}, True, False), (False, {"SESSIONSTORM_ALLOW_REMOTE": "1"}, None, False),
    (True, {}, None, True),
])
def test_remote_allowed_precedence(flag, env, config, expected) -> None:
    assert remote_allowed(flag, env, config) is expected


def test_remote_allowed_rejects_junk() -> None:
    with pytest.raises(ConfigError, match="SESSIONSTORM_ALLOW_REMOTE=maybe"):
        remote_allowed(None, {"SESSIONSTORM_ALLOW_REMOTE": "maybe"})


# -- rails: pure logic over a fake clock ----------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_rate_cap_paces_requests_to_max_rps() -> None:
    clock = Clock()
    rails = RemoteRails(max_rps=50, clock=clock)
    start = clock.t
    for _ in range(500):
        assert rails.acquire(clock.sleep)
    # 500 requests at 50/s: the first goes at once, the last 499 intervals later
    assert clock.t - start == pytest.approx(499 / 50)


def test_burst_allows_that_many_at_once_then_paces() -> None:
    clock = Clock()
    rails = RemoteRails(max_rps=10, burst=3, clock=clock)
    assert [rails.reserve() for _ in range(5)] == pytest.approx([0, 0, 0, 0.1, 0.2])


def test_idle_time_does_not_bank_tokens_beyond_burst() -> None:
    clock = Clock()
    rails = RemoteRails(max_rps=10, clock=clock)
    rails.reserve()
    clock.t += 60  # a quiet minute must not allow a 600-request burst
    assert [rails.reserve() for _ in range(3)] == pytest.approx([0, 0.1, 0.2])


def test_request_cap_stops_exactly_at_max_requests() -> None:
    clock = Clock()
    rails = RemoteRails(max_rps=1000, max_requests=25, clock=clock)
    sent = sum(1 for _ in range(100) if rails.acquire(clock.sleep))
    assert sent == 25 and rails.issued == 25
    assert rails.stop_reason == "request cap reached: 25 requests (--max-requests 25)"
    assert rails.aborted is None


def test_error_window_needs_min_ops_then_trips_above_the_rate() -> None:
    clock = Clock()
    rails = RemoteRails(abort_error_rate=0.5, min_ops=20, clock=clock)
    for _ in range(19):
        assert rails.record("fail") is None  # 100 % errors, but too few ops to judge
    reason = rails.record("info")  # unknown outcomes count as errors
    assert reason == "error rate 100% over the last 30 s (20 of 20 requests) > --abort-error-rate 0.5"
    assert rails.reserve() is None and not rails.acquire(clock.sleep)
    assert rails.record("ok") == reason  # sticky


def test_error_rate_exactly_at_limit_does_not_trip() -> None:
    clock = Clock()
    rails = RemoteRails(abort_error_rate=0.5, min_ops=4, clock=clock)
    for outcome in ["ok", "fail"] * 10:
        assert rails.record(outcome) is None
    assert rails.error_rate() == (10, 20)


def test_old_errors_leave_the_30s_window() -> None:
    clock = Clock()
    rails = RemoteRails(abort_error_rate=0.5, min_ops=10, clock=clock)
    for _ in range(9):
        rails.record(False)
    clock.t += 31  # the outage is over: those errors no longer count
    for _ in range(10):
        assert rails.record(True) is None
    assert rails.error_rate() == (0, 10)
    for _ in range(10):
        assert rails.record(False) is None  # up to 10 of 20: not above 50 %
    assert rails.record(False) is not None  # 11 of 21


def test_window_counts_only_recent_seconds() -> None:
    clock = Clock()
    rails = RemoteRails(min_ops=1, clock=clock)
    for i in range(60):  # one op per second for a minute
        clock.t = 1000.0 + i
        rails.record(True)
    errors, ops = rails.error_rate()
    assert 30 <= ops <= 31 and errors == 0


def test_asyncio_acquire_paces_real_time() -> None:
    rails = RemoteRails(max_rps=100, max_requests=10)

    async def main() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        results = await asyncio.gather(*(rails.acquire_async() for _ in range(15)))
        return sum(results), loop.time() - t0

    sent, seconds = asyncio.run(main())
    assert sent == 10
    assert 0.08 <= seconds < 1.0  # 9 intervals of 10 ms


def test_gevent_acquire_uses_the_given_sleep() -> None:
    # In a fresh interpreter: other tests of this xdist worker may have driven greenlets
    # (Playwright's sync API) in this process, and gevent's hub is per process.
    code = """
import gevent
from sessionstorm.guard import RemoteRails
rails = RemoteRails(max_rps=200, max_requests=20)
got = []
jobs = [gevent.spawn(lambda: got.append(rails.acquire(gevent.sleep))) for _ in range(30)]
gevent.joinall(jobs, timeout=5)
print(got.count(True), got.count(False))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["20", "10"], out.stderr


@pytest.mark.parametrize("kwargs, setting", [
    ({"max_rps": 0}, "max-rps=0"), ({"max_rps": -5}, "max-rps=-5"), ({"max_requests": 0}, "max-requests=0"),
    ({"abort_error_rate": 5}, "abort-error-rate=5"), ({"abort_error_rate": 0}, "abort-error-rate=0"),
])
def test_bad_rail_settings_are_config_errors(kwargs: dict, setting: str) -> None:
    with pytest.raises(ConfigError, match=f"^{setting}:"):
        RemoteRails(**kwargs)


def test_banner_names_target_and_caps() -> None:
    line = RemoteRails(max_rps=20, max_requests=50000).banner("https://staging.example", ["192.0.2.7"])
    assert line == ("REMOTE TARGET https://staging.example (192.0.2.7): at most 20 req/s, 50000 requests, "
                    "abort when the error rate over 30 s exceeds 50%")


# -- the guard against a real non-loopback server, inside a private network namespace ------
def _unshare_works() -> str | None:
    try:
        r = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unshare not usable: {e}"
    return None if r.returncode == 0 else f"unshare -n not permitted here: {r.stderr.strip()}"


def test_guard_in_private_network_namespace() -> None:
    reason = _unshare_works()
    if reason:
        pytest.skip(reason)
    r = subprocess.run(["unshare", "-n", sys.executable, str(CHILD)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    hits = out["hits"]
    assert out["probe_status"] == 200 and hits["/probe"] == 1  # reachable: the refusal is the guard's
    assert out["refused_literal"]["sent"] == 0 and "/refused" not in hits
    assert out["refused_literal"]["refused"].startswith("target=10.1.2.3: expected a loopback address")
    assert out["refused_mixed"].startswith("target=10.1.2.3 (from staging.test)")
    assert out["capped"]["sent"] == 7 and hits["/capped"] == 7
    assert hits["/paced"] == 11 and out["paced"]["seconds"] >= 10 / 20 * 0.95  # 20 req/s cap
    assert hits["/fail"] == 5 and out["aborted"]["stop_reason"].startswith("error rate 100%")
    assert out["localhost"] and all(is_loopback(a) for a in out["localhost"])  # getaddrinfo, both families
    assert out["unresolvable"].startswith("target=nothing.invalid: expected a host name that resolves")
