"""resolve(): addresses of a URL's host, resolve overrides, and the one-line errors."""
from __future__ import annotations

import socket

import pytest

from sessionstorm.endpoints import Address, Spreader, resolve
from sessionstorm.errors import ConfigError

V4, V6 = Address(socket.AF_INET, "127.0.0.1"), Address(socket.AF_INET6, "::1")


def test_an_override_pins_a_name_in_its_order_without_duplicates():
    got = resolve("http://Twin.Test:8000/x", {"twin.test": ["::1", "127.0.0.1", "::1"]})
    assert got == [V6, V4]
    assert [a.hostport(8000) for a in got] == ["[::1]:8000", "127.0.0.1:8000"]


def test_ip_literals_and_hosts_file_names_resolve_to_loopback():
    assert resolve("http://[::1]:9") == [V6]
    assert resolve("http://127.0.0.2:9") == [Address(socket.AF_INET, "127.0.0.2")]
    got = resolve("http://localhost:9")  # /etc/hosts: no DNS query leaves the machine
    assert got and V4 in got and all(a.ip in ("127.0.0.1", "::1") for a in got)


@pytest.mark.parametrize("overrides, shown", [
    ({"twin.test": ["db.example"]}, "target.resolve=twin.test=db.example: expected IP addresses"),
    ({"twin.test": ["10.0.0.5"]}, "target.resolve=twin.test=10.0.0.5: expected loopback addresses"),
    ({"twin.test": []}, "target.resolve=twin.test=[]: expected a non-empty list"),
    ({"twin.test": "127.0.0.1"}, "target.resolve=twin.test='127.0.0.1': expected a non-empty list"),
])
def test_a_bad_resolve_entry_is_one_line_naming_the_setting(overrides, shown):
    with pytest.raises(ConfigError) as e:
        resolve("http://twin.test:8000", overrides)
    assert str(e.value).startswith(shown) and "\n" not in str(e.value)


def test_checked_even_when_the_entry_is_for_another_name():
    with pytest.raises(ConfigError, match="target.resolve=other=nope"):
        resolve("http://[::1]:8000", {"other": ["nope"]})


def test_remote_addresses_need_allow_remote():
    with pytest.raises(ConfigError, match=r"target.base_url=http://10.1.2.3:80 -> 10.1.2.3: expected loopback"):
        resolve("http://10.1.2.3:80")
    assert resolve("http://10.1.2.3:80", allow_remote=True) == [Address(socket.AF_INET, "10.1.2.3")]
    assert resolve("http://twin.test", {"twin.test": ["10.0.0.5"]}, allow_remote=True)[0].ip == "10.0.0.5"


def test_a_host_that_does_not_resolve(monkeypatch):
    # The resolver's answer is replaced, not asked: tests send no DNS query off the machine.
    def fail(*a, **k):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(ConfigError) as e:
        resolve("http://nowhere.test:8000")
    msg = str(e.value)
    assert msg.startswith("target.base_url=http://nowhere.test:8000: expected a host that resolves")
    assert '"nowhere.test" = ["127.0.0.1"]' in msg and "\n" not in msg


@pytest.mark.parametrize("url", ["ftp://x/", "localhost:8000", "http://", "http://[::1"])
def test_a_url_without_http_host_is_one_line(url):
    with pytest.raises(ConfigError, match="target.base_url=.*expected an http"):
        resolve(url)


def test_spreader_rotates_and_first_does_not():
    s = Spreader("twin.test", [V6, V4])
    assert [s.order()[0] for _ in range(4)] == [V6, V4, V6, V4]
    assert s.order() == [V6, V4] and s.order() == [V4, V6]  # the others stay as fallback
    f = Spreader("twin.test", [V6, V4], "first")
    assert all(f.order() == [V6, V4] for _ in range(3))
    with pytest.raises(ConfigError, match='target.addresses=random: expected "first" or "spread"'):
        Spreader("twin.test", [V4], "random")
    assert s.matches("TWIN.test") and s.matches(b"twin.test") and not s.matches("other")
