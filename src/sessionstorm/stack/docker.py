"""The docker backend: PostgreSQL, Redis, the stub provider and targets in containers,
through testcontainers-python.

Every container shares the host's network (``network_mode="host"``) and listens on a
free 127.0.0.1 port: no Docker network or port mapping is made, so it works with an
engine started ``--bridge=none --iptables=false`` and the URLs are the same as the
embedded backend's. Images (settings, env vars):

  SESSIONSTORM_POSTGRES_IMAGE  postgres:16            (the public image's env contract)
  SESSIONSTORM_REDIS_IMAGE     redis:7
  SESSIONSTORM_APP_IMAGE       sessionstorm/app:dev   (docker/sessionstorm.Dockerfile)

A missing image is pulled unless SESSIONSTORM_DOCKER_PULL=never. Where no registry
answers, docker/build-images.sh builds equivalents from Debian's packages and
docker/offline.env names them (and sets never). Every container carries the label
``sessionstorm.owner=<pid>`` and is removed by `stop` (the Testcontainers reaper is
off on machines without a bridge, so nothing else would). Readiness is a testcontainers
wait strategy (ProbeWait); a timeout names what it waited for and ends with the
container's last log lines.
"""
from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import portpicker
import psutil
import requests  # docker's own transport: its errors are not DockerException
from testcontainers.core.waiting_utils import WaitStrategy

from sessionstorm.errors import ConfigError, StartupError
from sessionstorm.stack.base import (
    Backend, PostgresInfo, Progress, RedisInfo, ServiceInfo, TargetHandle, fill,
)
from sessionstorm.stack.embedded import http_probe
from sessionstorm.stack.process import start_together

HOST = "127.0.0.1"
IMAGES = {  # part -> (env var, default)
    "postgres": ("SESSIONSTORM_POSTGRES_IMAGE", "postgres:16"),
    "redis": ("SESSIONSTORM_REDIS_IMAGE", "redis:7"),
    "app": ("SESSIONSTORM_APP_IMAGE", "sessionstorm/app:dev"),
}
OWNER_LABEL = "sessionstorm.owner"  # the pid that started the container
STACK_LABEL = "sessionstorm.stack"  # one id per stack: stop removes by it, also what start half-made
PG_PASSWORD = "sessionstorm"
LOG_LINES = 20
Probe = Callable[[], tuple[bool, str]]


def engine_answers() -> tuple[bool, str]:
    """Does a local Docker engine answer (DOCKER_HOST or the default socket)? (yes, where or why not).
    Only a unix socket counts: a remote engine's host network is not this machine's loopback."""
    host = os.environ.get("DOCKER_HOST", "")
    if host and not host.startswith("unix://"):
        return False, f"DOCKER_HOST={host} is not a local unix socket; unset it to use this machine's engine"
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            client.ping()
            return True, os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        finally:
            client.close()
    except Exception as e:  # no socket, refused, no permission: all mean "use another backend"
        return False, f"{type(e).__name__}: {str(e)[:120]}"


def _os_env() -> None:
    # No bridge here, so Ryuk (which needs one) cannot run: we remove our own containers.
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")


def pg_probe(info: PostgresInfo) -> Probe:
    async def ask() -> tuple[bool, str]:
        import asyncpg

        conn = await asyncpg.connect(info.dsn, timeout=2)
        try:
            return await conn.fetchval("SELECT 1") == 1, "SELECT 1 answered"
        finally:
            await conn.close()

    return lambda: asyncio.run(ask())


def redis_probe(info: RedisInfo) -> Probe:
    def ask() -> tuple[bool, str]:
        import redis

        client = redis.Redis(host=info.host, port=info.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping()), "PING answered"
        finally:
            client.close()

    return ask


class ContainerExited(Exception):
    pass


class ProbeWait(WaitStrategy):
    """A testcontainers wait strategy that polls ``probe`` from the host (the container shares
    its network), keeps the last state it saw for the error, and gives up at once when the
    container exits instead of waiting out the timeout."""

    def __init__(self, probe: Probe, timeout: float) -> None:
        super().__init__()
        self.probe, self.state = probe, "not asked yet"
        self.with_startup_timeout(timeout).with_poll_interval(0.1)

    def wait_until_ready(self, container: Any) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while True:
            wrapped = container.get_wrapped_container()
            wrapped.reload()
            if wrapped.status not in ("created", "running"):
                code = wrapped.attrs.get("State", {}).get("ExitCode")
                raise ContainerExited(f"container {wrapped.status} with code {code}; last probe: {self.state}")
            try:
                ready, self.state = self.probe()
            except Exception as e:  # refused, reset, auth not yet set up: not ready yet
                ready, self.state = False, f"{type(e).__name__}: {str(e)[:160]}"
            if ready:
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self.state} (after {self._startup_timeout:g} s)")
            time.sleep(self._poll_interval)


class DockerBackend(Backend):
    name = "docker"

    def __init__(self, workdir: os.PathLike[str] | str, options: dict[str, Any]) -> None:
        super().__init__(workdir, options)
        _os_env()
        ok, where = engine_answers()
        if not ok:
            raise ConfigError("backend", "docker", "a Docker engine that answers",
                              f"start one (docker/engine.sh on this kind of machine) or use --backend embedded ({where})")
        self.images = {part: options.get(f"{part}_image") or os.environ.get(var) or default
                       for part, (var, default) in IMAGES.items()}
        self.pull = options.get("pull") or os.environ.get("SESSIONSTORM_DOCKER_PULL") or "missing"
        if self.pull not in ("missing", "never"):
            raise ConfigError("SESSIONSTORM_DOCKER_PULL", self.pull, "missing or never",
                              "set it to never on a machine without a registry, else leave it unset")
        self.containers: list[Any] = []  # testcontainers DockerContainer, newest last
        self.labels: dict[int, str] = {}  # id(container) -> what it runs, for log file names
        self._targets: list[Any] = []
        self.probes: dict[int, Probe] = {}
        self.stack_id = uuid.uuid4().hex[:12]
        self.swept = sweep_orphans()

    # -- containers ------------------------------------------------------------------
    def _check_image(self, part: str) -> None:
        import docker

        image, var = self.images[part], IMAGES[part][0]
        fix = "run docker/build-images.sh and use the images in docker/offline.env"
        client = docker.from_env()
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            if self.pull == "never":
                raise ConfigError(var, image, "an image present on the engine (SESSIONSTORM_DOCKER_PULL=never)",
                                  fix) from None
            try:
                client.images.pull(image)
            except (docker.errors.DockerException, requests.RequestException) as e:
                raise ConfigError(var, image, "an image present on the engine or pullable",
                                  f"{fix} (pull said: {str(e)[:100]})") from None
        except (docker.errors.DockerException, requests.RequestException) as e:  # e.g. a malformed name
            raise ConfigError(var, image, "an image name the engine accepts", f"{fix} (engine said: {str(e)[:100]})") from None
        finally:
            client.close()

    def run_container(self, label: str, part: str, command: list[str], probe: Probe, waited_for: str,
                      env: dict[str, str] | None = None, timeout: float | None = None, checked: bool = False) -> Any:
        """Start a container on the host network; return it once ``probe`` says ready
        (``checked``: the image was checked already)."""
        import docker
        from testcontainers.core.container import DockerContainer

        if not checked:
            self._check_image(part)
        wait = ProbeWait(probe, timeout or self.options.get("start_timeout", 60))
        c = DockerContainer(self.images[part]).with_command(command).with_kwargs(
            network_mode="host", labels={OWNER_LABEL: str(os.getpid()), STACK_LABEL: self.stack_id,
                                         "sessionstorm.part": label}).waiting_for(wait)
        for k, v in (env or {}).items():
            c.with_env(k, v)
        self.containers.append(c)  # before start: a Ctrl-C mid-start must still remove it
        self.labels[id(c)] = label
        self.probes[id(c)] = probe  # a fault's start-again waits on it too
        try:
            c.start()
        except docker.errors.APIError as e:  # e.g. the command is not in the image
            self._fail(c, label, waited_for, f"container did not start: {e.explanation or e}")
        except (TimeoutError, ContainerExited) as e:
            self._fail(c, label, waited_for, str(e))
        return c

    def _fail(self, c: Any, label: str, waited_for: str, state: str) -> None:
        logs = self._logs(c)
        self._remove(c)
        raise StartupError.with_logs(label, waited_for, state, logs)

    @staticmethod
    def _logs(c: Any, lines: int | None = LOG_LINES) -> str:
        try:
            out, err = c.get_logs()
        except Exception as e:
            return f"(no logs: {e})"
        text = (out + err).decode(errors="replace").splitlines()
        return "\n".join(text[-lines:] if lines else text)

    def _remove(self, c: Any) -> None:
        try:
            c.stop()  # docker rm -f, with its volumes
        except Exception:
            pass  # already gone
        if c in self.containers:
            self.containers.remove(c)

    # -- the services ------------------------------------------------------------------
    def start(self, progress: Progress) -> None:
        """PostgreSQL, Redis and the provider start at once (none needs another to start)."""
        if self.swept:
            progress(f"removed {len(self.swept)} containers of gone sessionstorm processes: {', '.join(self.swept)}")
        for part in ("postgres", "redis", "app"):  # one engine call each, before the threads
            self._check_image(part)
        start_together([("postgres", self._start_postgres), ("redis", self._start_redis),
                        ("provider", self._start_provider)], progress)

    def _start_postgres(self) -> str:
        port = portpicker.pick_unused_port()
        pg = PostgresInfo(HOST, port, "postgres", PG_PASSWORD, "postgres")
        # fsync off, as embedded: test data, and fsync would dominate a short run. Commits are
        # written (not fsynced) before they are acknowledged, so a killed container keeps them.
        self.run_container("postgres", "postgres",
                  ["postgres", "-p", str(port), "-c", f"listen_addresses={HOST}", "-c", "fsync=off",
                   "-c", "synchronous_commit=on", "-c", "full_page_writes=off", "-c", "max_connections=300"],
                  pg_probe(pg), f"SELECT 1 on {HOST}:{port}",
                  # trust, as embedded: SCRAM costs each new pool connection ms of CPU, which
                  # staggered the reference target's first burst enough to hide its races.
                  env={"POSTGRES_USER": pg.user, "POSTGRES_PASSWORD": pg.password, "POSTGRES_DB": pg.dbname,
                       "POSTGRES_HOST_AUTH_METHOD": "trust"}, checked=True)
        self.postgres = pg
        return f"{pg.dsn} ({self.images['postgres']})"

    def _start_redis(self) -> str:
        port = portpicker.pick_unused_port()
        rinfo = RedisInfo(HOST, port, 0)
        self.run_container("redis", "redis",
                  ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "yes",
                   "--appendfsync", "no", "--dir", "/tmp",
                   "--databases", "1024", "--protected-mode", "no"],
                  redis_probe(rinfo), f"PING on {HOST}:{port}", checked=True)
        self.redis = rinfo
        return f"{rinfo.url} ({self.images['redis']})"

    def _start_provider(self) -> str:
        port = portpicker.pick_unused_port()
        url = f"http://{HOST}:{port}"
        self.run_container("stub provider", "app",
                  ["python", "-m", "sessionstorm.provider", "--host", HOST, "--port", str(port),
                   "--state", "/tmp/provider-sessions.json", *self.options.get("provider_args", [])],
                  lambda: http_probe(url + "/healthz"), f"GET {url}/healthz -> 200", checked=True)
        self.provider = ServiceInfo(url)
        return f"{url} ({self.images['app']})"

    def create_database(self, name: str) -> PostgresInfo:
        assert self.postgres is not None
        db = self._database_name(name)

        async def create() -> None:
            import asyncpg

            conn = await asyncpg.connect(self.postgres.dsn, timeout=10)  # type: ignore[union-attr]
            try:
                await conn.execute(f'CREATE DATABASE "{db}"')
            finally:
                await conn.close()

        asyncio.run(create())
        return self.postgres.with_db(db)

    def start_target(self, name: str, command: list[str], env: dict[str, str], ready_path: str,
                     postgres: PostgresInfo | None, redis: RedisInfo | None, timeout: float) -> TargetHandle:
        """The target runs in the app image: ``{python}`` is that image's python."""
        port = portpicker.pick_unused_port()
        values, full_env = self._target_setup(postgres, redis, port, HOST, env, python="python")
        url = f"http://{HOST}:{port}"
        c = self.run_container(f"target {name!r}", "app", [fill(part, values) for part in command],
                      lambda: http_probe(url + ready_path), f"GET {url}{ready_path} -> 200",
                      env=full_env, timeout=timeout)
        self._targets.append(c)

        def stop() -> None:
            self._remove(c)
            if c in self._targets:
                self._targets.remove(c)

        from sessionstorm.nemesis.components import ContainerControl
        return TargetHandle(name, url, postgres, redis, full_env, None, stop,
                            control=ContainerControl(f"target {name!r}", c, self.probes[id(c)]))

    def fault_control(self, component: str) -> Any:
        from sessionstorm.nemesis.components import ContainerControl
        label = {"provider": "stub provider"}.get(component, component)
        for c in self.containers:
            if self.labels.get(id(c)) == label:
                fast = ["sh", "-c", 'kill -INT "$(head -1 "${PGDATA:-/var/lib/postgresql/data}/postmaster.pid")"']
                return ContainerControl(component, c, self.probes[id(c)],
                                        stop_command=fast if component == "postgres" else None)
        return None

    def save_logs(self, dest: Path) -> list[Path]:
        dest.mkdir(parents=True, exist_ok=True)
        out = []
        for i, c in enumerate(self.containers):
            path = dest / f"{self.labels.get(id(c), 'container').replace('/', '_')}-{i}.log"
            path.write_text(self._logs(c, lines=None))
            out.append(path)
        return out

    def stop(self) -> None:
        for c in reversed(list(self.containers)):  # targets (started last) first
            self._remove(c)
        self._targets.clear()
        # A signal during testcontainers' create leaves a container it never handed back.
        remove_containers({"label": f"{STACK_LABEL}={self.stack_id}"})


def our_containers(owner: int | None = None) -> dict[str, str]:
    """Containers (any state) a sessionstorm stack started, of the ``owner`` pid: name -> part."""
    import docker

    label = OWNER_LABEL if owner is None else f"{OWNER_LABEL}={owner}"
    client = docker.from_env()
    try:
        return {c.name: c.labels.get("sessionstorm.part", "?")
                for c in client.containers.list(all=True, filters={"label": label}, ignore_removed=True)}
    finally:
        client.close()


def remove_containers(filters: dict[str, Any], keep: Callable[[Any], bool] = lambda c: False) -> list[str]:
    """Remove (force, with volumes) the containers matching ``filters`` that ``keep`` does not keep."""
    import docker

    client = docker.from_env()
    removed = []
    try:
        # ignore_removed: list() inspects each container it found, and one another stack removes in
        # between (xdist workers sweep and stop at once) raised NotFound out of the whole start
        for c in client.containers.list(all=True, filters=filters, ignore_removed=True):
            if keep(c):
                continue
            try:
                c.remove(force=True, v=True)
                removed.append(c.name)
            except docker.errors.NotFound:
                pass  # removed meanwhile
    finally:
        client.close()
    return removed


def sweep_orphans() -> list[str]:
    """Remove the containers of sessionstorm processes that are gone (killed, SIGKILL, a crashed
    xdist worker): with the reaper off nothing else would. A live owner's are kept."""
    def alive(c: Any) -> bool:
        owner = c.labels.get(OWNER_LABEL, "")
        return not owner.isdigit() or psutil.pid_exists(int(owner))

    return remove_containers({"label": OWNER_LABEL}, keep=alive)
