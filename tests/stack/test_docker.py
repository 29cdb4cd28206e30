"""The docker backend on a real engine (`make test` runs docker/engine.sh and
docker/build-images.sh first and sets SESSIONSTORM_REQUIRE_DOCKER=1, or 0 with
SESSIONSTORM_DOCKER=skip; elsewhere these skip when no engine answers). The regression suite's docker run is in the Makefile."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import docker
import portpicker
import pytest
from pg_helpers import sql

from sessionstorm.errors import ConfigError, StartupError
from sessionstorm.stack import Stack, resolve_backend
from sessionstorm.stack.base import PostgresInfo
from sessionstorm.stack.docker import DockerBackend, ProbeWait, engine_answers, our_containers, pg_probe

SESSIONSTORM = str(Path(sys.executable).with_name("sessionstorm"))
# whether postgres runs on the data the image was built with (docker/postgres-entrypoint.sh)
BAKED_MARK = "SELECT count(*) > 0 FROM pg_ls_dir('.') AS f WHERE f = '.sessionstorm-baked'"
ENGINE, WHERE = engine_answers()


@pytest.fixture(autouse=True)
def _engine() -> None:
    if os.environ.get("SESSIONSTORM_REQUIRE_DOCKER") == "0":
        pytest.skip("SESSIONSTORM_DOCKER=skip")
    if not ENGINE:
        if os.environ.get("SESSIONSTORM_REQUIRE_DOCKER") == "1":
            pytest.fail(f"no Docker engine answers ({WHERE}); run docker/engine.sh", pytrace=False)
        pytest.skip(f"no Docker engine answers ({WHERE})")


@pytest.fixture(scope="module")
def docker_stack():
    with Stack("docker", start_timeout=60) as stack:
        yield stack


def test_a_target_that_never_gets_ready_fails_in_its_timeout_with_its_last_log_lines(docker_stack) -> None:
    t0 = time.monotonic()
    with pytest.raises(StartupError) as err:
        docker_stack.start_target(["sh", "-c", "echo warming up; echo still warming up; exec sleep 600"],
                                  name="sleepy", timeout=3)
    took = time.monotonic() - t0
    msg = str(err.value)
    assert msg.startswith("target 'sleepy' did not become ready: waited for GET http://127.0.0.1:"), msg
    assert "/healthz -> 200" in msg and "(after 3 s)" in msg and msg.endswith("last log line: still warming up")
    assert err.value.logs.splitlines()[-2:] == ["warming up", "still warming up"]
    assert took < 3 + 30, f"a 3 s readiness timeout took {took:.0f} s"  # bound, not a speed goal
    parts = set(our_containers(os.getpid()).values())
    assert "target 'sleepy'" not in parts and {"postgres", "redis", "stub provider"} <= parts


def test_a_failed_start_removes_the_containers_that_ran() -> None:
    before = our_containers(os.getpid())
    lines: list[str] = []
    stack = Stack("docker", progress=lines.append, provider_args=["--min-tokens", "1.5"])  # provider exits 2
    with pytest.raises(StartupError) as err:
        stack.start()
    msg = str(err.value)
    assert msg.startswith("stub provider did not become ready: waited for GET http://127.0.0.1:"), msg
    assert "container exited with code 2" in msg and "min-tokens" in err.value.logs
    assert sorted(line.split()[0] for line in lines) == ["postgres", "redis"]  # they had run (started at once)...
    assert our_containers(os.getpid()) == before                          # ...and are gone


@pytest.mark.parametrize("when, sig", [("up", signal.SIGINT), ("up", signal.SIGTERM), ("starting", signal.SIGINT)])
def test_a_signal_removes_every_container(when: str, sig: signal.Signals) -> None:
    proc = subprocess.Popen([SESSIONSTORM, "up", "--backend", "docker", "--no-target"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for = "stack up in" if when == "up" else "postgres ready on"
        seen = []
        for line in proc.stderr:  # type: ignore[union-attr]
            seen.append(line)
            if wait_for in line:
                break
        assert any(wait_for in line for line in seen), "".join(seen)
        assert our_containers(proc.pid), "premise: the stack's containers run"
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert our_containers(proc.pid) == {}


def test_the_postgres_image_keeps_the_public_env_contract(tmp_path) -> None:
    backend = DockerBackend(tmp_path, {"start_timeout": 60})
    port = portpicker.pick_unused_port()
    cmd = ["postgres", "-p", str(port), "-c", "listen_addresses=127.0.0.1"]
    info = PostgresInfo("127.0.0.1", port, "alice", "s3cret", "shop")
    try:
        backend.run_container("postgres", "postgres", cmd, pg_probe(info), "SELECT 1",
                              env={"POSTGRES_USER": "alice", "POSTGRES_PASSWORD": "s3cret", "POSTGRES_DB": "shop"})

        async def ask() -> tuple[str, str, bool]:
            conn = await asyncpg.connect(info.dsn)
            try:
                return (await conn.fetchval("SELECT current_user"), await conn.fetchval("SELECT current_database()"),
                        await conn.fetchval(BAKED_MARK))
            finally:
                await conn.close()

        # other settings than the image was baked for: their own initdb, not the image's data
        assert asyncio.run(ask()) == ("alice", "shop", False)
        with pytest.raises(asyncpg.InvalidPasswordError):
            asyncio.run(asyncpg.connect(info.with_db("shop").dsn.replace("s3cret", "wrong")))
        # No password and no trust: the image refuses to start, and says why.
        bob = PostgresInfo("127.0.0.1", portpicker.pick_unused_port(), "bob", "", "bob")
        with pytest.raises(StartupError) as err:
            backend.run_container("postgres", "postgres", ["postgres", "-p", str(bob.port)],
                                  pg_probe(bob), "SELECT 1", env={"POSTGRES_USER": "bob"}, timeout=30)
        assert "exited with code 1" in str(err.value) and "POSTGRES_PASSWORD is empty" in str(err.value)
    finally:
        backend.stop()
    assert backend.containers == []


def test_auto_picks_docker_when_an_engine_answers_else_embedded(monkeypatch) -> None:
    said: list[str] = []
    assert resolve_backend("auto", said.append) == "docker"
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert resolve_backend("auto", said.append) == "embedded"
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")  # its host network is not our loopback
    assert resolve_backend("auto", said.append) == "embedded"
    assert said[0].startswith("backend auto: docker (docker engine at")
    assert said[1].startswith("backend auto: embedded (docker engine not usable: ")
    assert said[2] == ("backend auto: embedded (docker engine not usable: DOCKER_HOST=tcp://127.0.0.1:2375 is not "
                       "a local unix socket; unset it to use this machine's engine)")
    with pytest.raises(ConfigError) as err:
        Stack("docker").start()
    assert "DOCKER_HOST=tcp://127.0.0.1:2375 is not a local unix socket" in str(err.value)
    assert "\n" not in str(err.value)


def test_containers_of_a_killed_process_are_removed_by_the_next_stack(tmp_path, docker_stack) -> None:
    mine = our_containers(os.getpid())
    assert mine, "premise: this process's stack runs"
    proc = subprocess.Popen([SESSIONSTORM, "up", "--backend", "docker", "--no-target"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # type: ignore[union-attr]
            if "stack up in" in line:
                break
        left = our_containers(proc.pid)
        assert len(left) == 3, "premise: postgres, redis and the provider run"
    finally:
        proc.kill()  # SIGKILL: no teardown runs
        proc.wait(timeout=30)
    backend = DockerBackend(tmp_path, {})
    assert our_containers(proc.pid) == {}
    # Nothing else removes them (SIGKILL, reaper off): this stack's sweep did, or, under
    # xdist, another worker's stack that started in between.
    assert set(backend.swept) <= set(left)
    assert our_containers(os.getpid()) == mine  # a live owner's are kept


@pytest.mark.parametrize("image, expected", [("sessionstorm/no-such-image:none", "an image present"),
                                             ("Not A Valid:Name!", "an image name the engine accepts")])
def test_a_bad_image_is_one_line_naming_the_setting(monkeypatch, tmp_path, image, expected) -> None:
    monkeypatch.setenv("SESSIONSTORM_DOCKER_PULL", "never")
    backend = DockerBackend(tmp_path, {"redis_image": image})
    with pytest.raises(ConfigError) as err:
        backend.run_container("redis", "redis", ["redis-server"], lambda: (False, ""), "PING")
    assert str(err.value).startswith(f"SESSIONSTORM_REDIS_IMAGE={image}: expected {expected}")
    assert "docker/build-images.sh" in str(err.value) and "\n" not in str(err.value)


def test_the_backends_postgres_runs_on_the_images_baked_data(docker_stack) -> None:
    """The image's PGDATA was initialised at build time for the backend's settings: no initdb at start."""
    assert sql(docker_stack.postgres.dsn, BAKED_MARK)[0][0] is True


def test_the_postgres_image_never_wipes_data_a_server_ran_on(tmp_path) -> None:
    """A named volume is filled from the image (its baked data and mark); once a server ran on
    it, a start with other settings keeps it, as the public image keeps existing data."""
    image = os.environ.get("SESSIONSTORM_POSTGRES_IMAGE", "sessionstorm/postgres:offline")
    volume = f"sessionstorm-test-{os.getpid()}-{portpicker.pick_unused_port()}"
    subprocess.run(["docker", "volume", "create", volume], capture_output=True, check=True)

    def serve(password: str, *queries: str) -> list[Any]:
        info = PostgresInfo("127.0.0.1", portpicker.pick_unused_port(), "postgres", password, "postgres")
        cid = subprocess.run(["docker", "run", "-d", "--network", "host", "-v", f"{volume}:/var/lib/postgresql/data",
                              "--env=POSTGRES_PASSWORD=" + password, "--env=POSTGRES_HOST_AUTH_METHOD=trust", image,
                              "postgres", "-p", str(info.port), "-c", "listen_addresses=127.0.0.1"],
                             capture_output=True, text=True, check=True).stdout.strip()
        try:
            container = docker.from_env().containers.get(cid)  # what ProbeWait watches for an early exit
            ProbeWait(pg_probe(info), 60).wait_until_ready(SimpleNamespace(get_wrapped_container=lambda: container))
            return [sql(info.dsn, q) for q in queries]
        finally:
            subprocess.run(["docker", "stop", "-t", "10", cid], capture_output=True)
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True)

    try:
        serve("sessionstorm", "CREATE TABLE kept (v int)", "INSERT INTO kept VALUES (42)")  # the baked settings
        assert serve("another-password", "SELECT v FROM kept")[0][0][0] == 42
    finally:
        subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True)
