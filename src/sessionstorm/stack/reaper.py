"""Stops the stack's processes when the process that started them dies without stopping them
(SIGKILL, OOM killer): a watchdog child that owns nothing but a pipe from its parent.

The parent tells it, over the pipe, each process group it starts (``+PGID``) and stops
(``-PGID``), and each scratch folder it makes (``+dPATH``) and removes (``-dPATH``). When the
pipe ends without a goodbye (``.``), the parent died: the watchdog sends SIGTERM to every
group still listed, SIGKILL after a grace, then removes the folders. It acts only on what it
was told of, never on anything found by name.

    python -m sessionstorm.stack.reaper     # started by `watch`; reads its stdin
"""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

GRACE_S = 5.0  # between SIGTERM and SIGKILL

_lock = threading.Lock()
_child: subprocess.Popen[bytes] | None = None
_owner = 0  # the pid that started the watchdog: a forked child (Locust --processes) has its own


def _send(line: str) -> None:
    global _child, _owner
    with _lock:
        if _child is None or _owner != os.getpid():
            _child = subprocess.Popen([sys.executable, "-m", "sessionstorm.stack.reaper"], stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            _owner = os.getpid()
            atexit.register(_goodbye)
        assert _child.stdin is not None
        try:
            _child.stdin.write(line.encode() + b"\n")
            _child.stdin.flush()
        except OSError:  # the watchdog is gone: nothing to do but go on
            pass


def watch(pgid: int) -> None:
    """From now on the group ``pgid`` is stopped if this process dies without stopping it."""
    _send(f"+{pgid}")


def unwatch(pgid: int) -> None:
    _send(f"-{pgid}")


def watch_dir(path: str | os.PathLike[str]) -> None:
    """Remove ``path`` (a scratch folder) if this process dies without removing it."""
    _send(f"+d{os.fspath(path)}")


def unwatch_dir(path: str | os.PathLike[str]) -> None:
    _send(f"-d{os.fspath(path)}")


def pid() -> int | None:
    """The watchdog's pid in this process, if one runs (it lives as long as this process)."""
    return _child.pid if _child is not None and _owner == os.getpid() else None


def _goodbye() -> None:
    """A normal exit: whatever is still running was left on purpose (or already stopped)."""
    if _child is not None and _owner == os.getpid() and _child.stdin is not None:
        try:
            _child.stdin.write(b".\n")
            _child.stdin.close()
        except OSError:
            pass


def main() -> int:
    groups: set[int] = set()
    folders: set[str] = set()
    for raw in sys.stdin.buffer:
        line = raw.rstrip(b"\n").decode(errors="surrogateescape")
        if line == ".":
            return 0
        if line[:2] in ("+d", "-d"):
            (folders.add if line[0] == "+" else folders.discard)(line[2:])
        elif line[:1] in "+-" and line[1:].isdigit():
            (groups.add if line[0] == "+" else groups.discard)(int(line[1:]))
    # the pipe ended without a goodbye: the parent died
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for g in list(groups):
            try:
                os.killpg(g, sig)
            except (ProcessLookupError, PermissionError):
                groups.discard(g)
        deadline = time.monotonic() + GRACE_S
        while groups and time.monotonic() < deadline:
            time.sleep(0.1)
            for g in list(groups):
                try:
                    os.killpg(g, 0)
                except (ProcessLookupError, PermissionError):
                    groups.discard(g)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
