"""Helpers shared by the stack tests and their child scripts."""
from __future__ import annotations

from pathlib import Path

import psutil

HERE = Path(__file__).parent
ENVSERVER = str(HERE / "envserver.py")


def alive(pids: list[list[float]]) -> list[int]:
    """The pids (with their create times, so a reused pid does not count) still running."""
    out = []
    for pid, created in pids:
        try:
            p = psutil.Process(int(pid))
            if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                out.append(int(pid))
        except psutil.NoSuchProcess:
            pass
    return out


def descendants() -> list[list[float]]:
    return [[p.pid, p.create_time()] for p in psutil.Process().children(recursive=True)]
