"""`sessionstorm doctor URL`: exit 0 when consistent, 1 on a split, 2 (one line) on bad input."""
from __future__ import annotations

import pytest

from sessionstorm.cli import main

from .conftest import NAME, needs_ipv6


@needs_ipv6
def test_split_exits_1_with_the_table_and_the_fix(servers, port, capsys):
    servers.mini("127.0.0.1", port, "new")
    servers.mini("::1", port, "old")
    rc = main(["doctor", f"http://{NAME}:{port}", "--resolve", f"{NAME}=::1,127.0.0.1",
               "--session-path", "/sessions/{session_id}/observe", "--connections", "3"])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert f"[::1]:{port}: 3 of 3 connections answered" in out and f"127.0.0.1:{port}: 3 of 3" in out
    assert "openapi: sha256 of /openapi.json" in out and '{"detail":"Method Not Allowed"}' in out
    assert "SPLIT_ENDPOINT (error):" in out and f"fix: ss -ltnp 'sport = :{port}'" in out


@needs_ipv6
def test_clean_twin_exits_0(servers, port, capsys):
    servers.mini("127.0.0.1", port, "new")
    servers.mini("::1", port, "new")
    rc = main(["doctor", f"http://{NAME}:{port}", "--resolve", f"{NAME}=::1,127.0.0.1"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "OK: every address answers as the same server" in out


def test_nothing_answering_exits_1(port, capsys):
    assert main(["doctor", f"http://127.0.0.1:{port}", "--connections", "1"]) == 1
    assert "UNREACHABLE: no address of" in capsys.readouterr().out


@pytest.mark.parametrize("args, line", [
    (["--resolve", f"{NAME}=db.example"], f"target.resolve={NAME}=db.example: expected IP addresses"),
    (["--resolve", f"{NAME}=10.0.0.7"], f"target.resolve={NAME}=10.0.0.7: expected loopback addresses"),
    (["--resolve", "no-equals-sign"], "--resolve=no-equals-sign: expected NAME=ADDR[,ADDR...]"),
])
def test_bad_input_exits_2_in_one_line(args, line, capsys):
    assert main(["doctor", f"http://{NAME}:1", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sessionstorm: error: {line}") and err.count("\n") == 1


def test_bad_url_and_remote_host_exit_2(capsys):
    assert main(["doctor", "ftp://example"]) == 2
    assert main(["doctor", "http://10.9.8.7:80"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("sessionstorm: error: target.base_url=ftp://example: expected an http(s) URL")
    assert err[1].startswith("sessionstorm: error: target.base_url=http://10.9.8.7:80 -> 10.9.8.7: expected loopback")
    assert "--allow-remote" in err[1]
